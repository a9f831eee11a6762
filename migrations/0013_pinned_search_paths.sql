-- 0013 — Functions pin their search_path; enqueue runs as the queue's owner; time zones already
-- stored are read safely.
--
-- Search paths. A function without a pinned search_path resolves unqualified names through its
-- CALLER's path, and PostgreSQL searches the caller's temporary schema first (even before
-- pg_catalog) unless the path lists pg_temp. So any client could shadow pg_timezone_names with
-- a TEMP VIEW, store 'Mars/Olympus' past the time-zone CHECK (broseph.is_time_zone), and every
-- reminder tick then failed for all users. Every function of ours now pins
--     pg_catalog, pg_temp            when it names everything else schema-qualified, or
--     pg_catalog, public, pg_temp    when it — or procrastinate's triggers, which it fires —
--                                    names objects in public unqualified;
-- pg_temp last: temporary objects never shadow anything. Catalog relations are named
-- pg_catalog.<name>. CREATE OR REPLACE without a SET clause drops the pin again:
-- tests/test_security_functions.py scans pg_proc for every function of ours.
-- Cost: a function with a SET clause is never inlined and sets the path per call — measured
-- here, broseph.params_valid over 20,000 params 112 → 152 ms, 20,000 broseph.field_key calls
-- 17 → 31 ms (about 2 µs per row of an enqueue_many).
--
-- enqueue / enqueue_many run as their owner (SECURITY DEFINER): service_role — the role the
-- README gives producers — could not enqueue on plain PostgreSQL (no privilege on
-- procrastinate's sequence), and no client role should need any privilege on the queue at all.
-- EXECUTE stays with service_role (and the owner); migrations/always/lockdown.sql keeps it so.
--
-- Stored time zones. A profile or group may already hold a zone PostgreSQL does not know (a
-- row stored through the hole above, or an app-owned table without our CHECK). Nothing is
-- rewritten; readers go through broseph.usable_time_zone(), which reads such a zone as UTC.

CREATE OR REPLACE FUNCTION broseph.is_time_zone(tz text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM broseph.time_zone_names WHERE name = tz)
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names WHERE name = tz)
$$;

-- broseph.usable_time_zone(tz) → tz when PostgreSQL knows it, else 'UTC' (NULL included).
-- For READING stored zones (AT TIME ZONE raises on an unknown one); writes keep the CHECK.
CREATE FUNCTION broseph.usable_time_zone(tz text) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN broseph.is_time_zone(tz) THEN tz ELSE 'UTC' END
$$;

-- 0005's trigger, reading the group's zone through usable_time_zone: one group's bad zone must
-- not make every message insert of that group fail.
CREATE OR REPLACE FUNCTION broseph.on_messages_inserted() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    PERFORM broseph.enqueue_many(
        'ProcessEngagement',
        ARRAY(
            SELECT DISTINCT jsonb_build_object(
                       'group_id', m.group_id,
                       'local_date',
                       (m.created_at AT TIME ZONE broseph.usable_time_zone(g.time_zone))::date)
              FROM new_messages m
              JOIN public.groups g ON g.id = m.group_id
             ORDER BY 1),
        NULL,
        now() + (SELECT coalesce_delay FROM broseph.job_types WHERE name = 'ProcessEngagement'),
        0, 'trigger');
    RETURN NULL;
END;
$$;

-- Everything else of ours: the same body, a pinned path.
ALTER FUNCTION broseph.field_key(text, text[], jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION broseph.is_date(text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION broseph.check_params(text, jsonb, jsonb, text)
    SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION broseph.job_type(text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION broseph.params_valid(jsonb, jsonb[]) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION broseph.notify_inline_max() SET search_path = pg_catalog, pg_temp;

ALTER FUNCTION broseph.is_member(uuid) SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION broseph.sync_job_record() SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION broseph.notify_inline(uuid) SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION broseph.notify_new_messages() SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION broseph.notify_members_joined() SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION broseph.notify_new_prompts() SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION broseph.ingress_enqueue(text, text, text, text, text, jsonb, timestamptz, text,
    jsonb, timestamptz, integer, jsonb) SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION broseph.rescue_lost_jobs(double precision)
    SET search_path = pg_catalog, public, pg_temp;

-- public stays in these paths: procrastinate's triggers on procrastinate_jobs name its tables
-- unqualified and run with the path of the statement that fires them.
ALTER FUNCTION broseph.enqueue_many(text, jsonb[], text[], timestamptz, integer, text, jsonb)
    SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION broseph.enqueue(text, jsonb, text, timestamptz, integer, text, jsonb)
    SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp;

-- auth.uid(): pinned only where it is our stand-in (migrations/0001, owned by the migrating
-- role); on Supabase it belongs to Supabase's auth admin and is left alone.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_proc
                WHERE oid = pg_catalog.to_regprocedure('auth.uid()')
                  AND proowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user))
    THEN
        ALTER FUNCTION auth.uid() SET search_path = pg_catalog, pg_temp;
    END IF;
END;
$$;

-- Clients call only what RLS policies and CHECK constraints call as them; the rest (these new
-- functions included) is revoked from PUBLIC by migrations/always/lockdown.sql on every run.
GRANT EXECUTE ON FUNCTION broseph.is_time_zone(text) TO authenticated;
