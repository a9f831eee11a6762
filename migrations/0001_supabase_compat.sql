-- 0001 — Supabase compatibility.
--
-- On Supabase the roles anon / authenticated / service_role and the function auth.uid() already
-- exist; on plain Postgres this file creates stand-ins with the same names and behaviour, so every
-- later migration (RLS policies, grants) runs unchanged on both.

-- Roles are cluster-wide: two databases migrated at once may race to create them, so a
-- duplicate_object from the loser is expected and ignored.
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
    -- Supabase's service_role bypasses RLS; the stand-in must too, or worker-side code run as
    -- service_role would see an empty world.
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role' AND NOT rolbypassrls) THEN
        BEGIN
            ALTER ROLE service_role BYPASSRLS;
        EXCEPTION WHEN insufficient_privilege THEN
            NULL;
        END;
    END IF;
END;
$$;

CREATE SCHEMA IF NOT EXISTS auth;

-- auth.uid(): the user id of the request. Supabase reads it from the JWT claims that PostgREST
-- puts in the request.jwt.* settings; the stand-in reads the same settings, so tests can act as a
-- user with `SET LOCAL request.jwt.claim.sub = '<uuid>'`.
DO $$
BEGIN
    IF to_regprocedure('auth.uid()') IS NULL THEN
        CREATE FUNCTION auth.uid() RETURNS uuid
            LANGUAGE sql STABLE
        AS $fn$
            SELECT coalesce(
                nullif(current_setting('request.jwt.claim.sub', true), ''),
                (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
            )::uuid
        $fn$;
    END IF;
END;
$$;

GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION auth.uid() TO anon, authenticated, service_role;
