-- A database prepared the way Supabase prepares one, for the Supabase-like test profile
-- (tests/profiles.py). Follows Supabase's own init script (repository supabase/postgres,
-- migrations/db/init-scripts/00000000000000-initial-schema.sql) and its auth functions
-- (auth.uid() reads request.jwt.claims' sub), and its later migrations that demote `postgres`
-- (migrations/db/migrations/10000000000000_demote-postgres.sql and after). Run as a superuser:
-- it plays supabase_admin. `broseph migrate`, the tests and the worker then connect as
-- supabase_postgres_like, which is what `postgres` is on Supabase: NOT a superuser (CREATEROLE,
-- CREATEDB, REPLICATION, BYPASSRLS), owner of the database (so of schema public, through
-- pg_database_owner), of the extensions schema and of the supabase_realtime publication, member
-- of anon, authenticated and service_role, with USAGE only on schema auth, whose functions
-- belong to supabase_auth_admin.
--
-- Roles are cluster-wide and other tests create or alter the same ones at the same time, so every
-- role statement tolerates losing a race (duplicate_object, unique_violation, and the
-- "tuple concurrently updated" internal_error of two ALTER ROLEs at once). Per-database role
-- settings are in tests/supabase_role_settings.sql (they do not travel with CREATE DATABASE …
-- TEMPLATE, so every clone gets them again).

DO $$
DECLARE
    spec text[];
    specs text[] := ARRAY[
        ARRAY['anon', 'NOLOGIN NOINHERIT'],
        ARRAY['authenticated', 'NOLOGIN NOINHERIT'],
        ARRAY['service_role', 'NOLOGIN NOINHERIT BYPASSRLS'],
        ARRAY['authenticator', 'LOGIN NOINHERIT'],
        -- Owns Supabase's auth schema functions (they are not the migrating role's).
        ARRAY['supabase_auth_admin', 'NOLOGIN NOINHERIT'],
        -- Supabase's `postgres` (the name is taken by this cluster's superuser). No password:
        -- it logs in where the server trusts local connections (tests/profiles.py).
        ARRAY['supabase_postgres_like',
              'LOGIN NOSUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS INHERIT']
    ];
    grants text[] := ARRAY[
        ARRAY['anon', 'authenticator'], ARRAY['authenticated', 'authenticator'],
        ARRAY['service_role', 'authenticator'],
        ARRAY['anon', 'supabase_postgres_like'], ARRAY['authenticated', 'supabase_postgres_like'],
        ARRAY['service_role', 'supabase_postgres_like'],
        ARRAY['pg_monitor', 'supabase_postgres_like'],
        ARRAY['pg_read_all_data', 'supabase_postgres_like'],
        ARRAY['pg_signal_backend', 'supabase_postgres_like']
    ];
    pair text[];
BEGIN
    FOREACH spec SLICE 1 IN ARRAY specs LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = spec[1]) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I %s', spec[1], spec[2]);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
        BEGIN
            EXECUTE format('ALTER ROLE %I %s', spec[1], spec[2]);
        EXCEPTION WHEN internal_error OR unique_violation THEN
            NULL;  -- someone else altered it at the same moment, to the same attributes
        END;
    END LOOP;
    FOREACH pair SLICE 1 IN ARRAY grants LOOP
        IF NOT pg_catalog.pg_has_role(pair[2], pair[1], 'MEMBER') THEN
            BEGIN
                EXECUTE format('GRANT %I TO %I', pair[1], pair[2]);
            EXCEPTION WHEN duplicate_object OR unique_violation OR internal_error THEN
                NULL;
            END;
        END IF;
    END LOOP;
    EXECUTE format('ALTER DATABASE %I OWNER TO supabase_postgres_like', current_database());
END;
$$;
-- As in Supabase's own dump: public belongs to pg_database_owner (PostgreSQL 15's default, set
-- here for servers whose template says otherwise).
ALTER SCHEMA public OWNER TO pg_database_owner;

CREATE PUBLICATION supabase_realtime;
ALTER PUBLICATION supabase_realtime OWNER TO supabase_postgres_like;

CREATE SCHEMA extensions AUTHORIZATION supabase_postgres_like;
-- Where the server ships them (contrib): the embedded server of tests/pg.py does not, and
-- broseph uses neither (gen_random_uuid() is core PostgreSQL).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'uuid-ossp') THEN
        CREATE EXTENSION "uuid-ossp" WITH SCHEMA extensions;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'pgcrypto') THEN
        CREATE EXTENSION pgcrypto WITH SCHEMA extensions;
    END IF;
END;
$$;
GRANT USAGE ON SCHEMA extensions TO supabase_postgres_like, anon, authenticated, service_role;

GRANT USAGE ON SCHEMA public TO supabase_postgres_like, anon, authenticated, service_role;

-- Every table, function and sequence created later in public — by supabase_postgres_like, the
-- role `broseph migrate` runs as, or by this one (supabase_admin's) — is fully granted to the
-- client roles. Functions are executable by PUBLIC as well (PostgreSQL's own default).
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_postgres_like IN SCHEMA public
    GRANT ALL ON TABLES TO supabase_postgres_like, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_postgres_like IN SCHEMA public
    GRANT ALL ON FUNCTIONS TO supabase_postgres_like, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_postgres_like IN SCHEMA public
    GRANT ALL ON SEQUENCES TO supabase_postgres_like, anon, authenticated, service_role;
DO $$
BEGIN
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public '
                   'GRANT ALL ON TABLES TO supabase_postgres_like, anon, authenticated, '
                   'service_role', current_user);
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public '
                   'GRANT ALL ON FUNCTIONS TO supabase_postgres_like, anon, authenticated, '
                   'service_role', current_user);
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public '
                   'GRANT ALL ON SEQUENCES TO supabase_postgres_like, anon, authenticated, '
                   'service_role', current_user);
END;
$$;

-- Supabase's auth helpers: the JWT PostgREST puts in request.jwt.claims (older versions:
-- request.jwt.claim.sub / .role). Owned by supabase_auth_admin, as on Supabase.
CREATE SCHEMA auth;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role, supabase_postgres_like;

CREATE FUNCTION auth.uid() RETURNS uuid
    LANGUAGE sql STABLE
AS $$
    SELECT coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
    )::uuid
$$;

CREATE FUNCTION auth.role() RETURNS text
    LANGUAGE sql STABLE
AS $$
    SELECT coalesce(
        nullif(current_setting('request.jwt.claim.role', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
    )::text
$$;

CREATE FUNCTION auth.jwt() RETURNS jsonb
    LANGUAGE sql STABLE
AS $$
    SELECT coalesce(
        nullif(current_setting('request.jwt.claim', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')
    )::jsonb
$$;

ALTER FUNCTION auth.uid() OWNER TO supabase_auth_admin;
ALTER FUNCTION auth.role() OWNER TO supabase_auth_admin;
ALTER FUNCTION auth.jwt() OWNER TO supabase_auth_admin;
