-- 0011 — Fast time-zone validation.
--
-- broseph.is_time_zone() (0002) scanned pg_timezone_names on every call: ~55 ms per group or
-- profile insert, 9 minutes for 10,000 groups. The names are now copied into a table once, and
-- only a name missing from it (invalid, or added by a tzdata update since this migration) pays
-- the scan.

CREATE TABLE broseph.time_zone_names (name text PRIMARY KEY);
INSERT INTO broseph.time_zone_names (name) SELECT name FROM pg_timezone_names ON CONFLICT DO NOTHING;
GRANT SELECT ON broseph.time_zone_names TO anon, authenticated, service_role;

CREATE OR REPLACE FUNCTION broseph.is_time_zone(tz text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT EXISTS (SELECT 1 FROM broseph.time_zone_names WHERE name = tz)
        OR EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = tz)
$$;
