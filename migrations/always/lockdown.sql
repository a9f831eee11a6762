-- always/lockdown.sql — the lock-down of the queue and of broseph's internals.
--
-- Run by `broseph migrate` on EVERY run, after the numbered migrations, under the same advisory
-- lock, in one transaction; idempotent. Not checksummed: it is the current rule, not history.
--
-- Why every run: on Supabase every object created in `public` is granted to anon and
-- authenticated by default privileges, and every function is executable by PUBLIC on any
-- PostgreSQL. A procrastinate upgrade drops and re-creates its functions (and may add tables),
-- which brings those grants back; so may a GRANT typed by hand. After applying procrastinate's
-- upgrade SQL, run `broseph migrate`; until then `broseph health` reports every grant below.
--
-- broseph.security_findings() → one row per way a client reaches what is not theirs, or lacks
-- what RLS needs, each with the statement that fixes it:
--   * a privilege held by anon, authenticated or PUBLIC (which every role has) on a table, view,
--     sequence or function of procrastinate's (public.procrastinate_*), on broseph's RPC
--     wrappers for service_role (public.broseph_*, migrations/0017), on anything in schema
--     broseph beyond the list `allowed` below, or CREATE on schema public or broseph;
--   * row-level security off on broseph.job_records, or on the domain tables broseph created
--     (not on tables it adopted from the app: their security is the app's);
--   * a grant clients need missing (RLS policies and CHECK constraints call is_member /
--     is_time_zone as the client), or service_role's EXECUTE on enqueue / enqueue_many.
-- `broseph health` reports the findings; this file applies every fix.

-- Nothing below may resolve a name through a path a client could have set up.
SET LOCAL search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION broseph.security_findings()
    RETURNS TABLE (object text, role text, privileges text[], problem text, fix text)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH clients (oid, role, keyword) AS (
        SELECT 0::oid, 'PUBLIC', 'PUBLIC'
        UNION ALL
        SELECT r.oid, r.rolname::text, format('%I', r.rolname)
          FROM pg_catalog.pg_roles r WHERE r.rolname IN ('anon', 'authenticated')
    ), allowed (object, role, privilege) AS (
        VALUES ('broseph.is_member(uuid)', 'authenticated', 'EXECUTE'),
               ('broseph.is_time_zone(text)', 'authenticated', 'EXECUTE'),
               ('broseph.job_records', 'authenticated', 'SELECT'),
               ('broseph.job_types', 'authenticated', 'SELECT'),
               ('broseph.time_zone_names', 'anon', 'SELECT'),
               ('broseph.time_zone_names', 'authenticated', 'SELECT'),
               ('schema broseph', 'anon', 'USAGE'),
               ('schema broseph', 'authenticated', 'USAGE'),
               ('schema public', 'anon', 'USAGE'),
               ('schema public', 'authenticated', 'USAGE'),
               ('schema public', 'PUBLIC', 'USAGE')
    ), objects (object, kind, acl) AS (
        -- Relations: table-level grants, and column-level ones (a table-level REVOKE removes
        -- those too).
        SELECT format('%I.%I', n.nspname, c.relname),
               CASE WHEN c.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
               coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r'
                                             END::"char", c.relowner))
                   || coalesce((SELECT array_agg(a)
                                  FROM pg_catalog.pg_attribute att, unnest(att.attacl) a
                                 WHERE att.attrelid = c.oid AND att.attacl IS NOT NULL),
                               '{}')
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
           AND ((n.nspname = 'public'
                 AND (c.relname LIKE 'procrastinate\_%' OR c.relname LIKE 'broseph\_%'))
                OR n.nspname = 'broseph')
        UNION ALL
        SELECT format('%I.%I(%s)', n.nspname, p.proname, oidvectortypes(p.proargtypes)),
               'FUNCTION ' || p.oid::regprocedure::text,
               coalesce(p.proacl, acldefault('f', p.proowner))
          FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE (n.nspname = 'public'
                AND (p.proname LIKE 'procrastinate\_%' OR p.proname LIKE 'broseph\_%'))
            OR n.nspname = 'broseph'
        UNION ALL
        SELECT 'schema ' || n.nspname, 'SCHEMA ' || quote_ident(n.nspname),
               coalesce(n.nspacl, acldefault('n', n.nspowner))
          FROM pg_catalog.pg_namespace n WHERE n.nspname IN ('public', 'broseph')
    ), granted AS (
        SELECT DISTINCT o.object, o.kind, c.role, c.keyword, g.privilege_type AS privilege
          FROM objects o, aclexplode(o.acl) g, clients c
         WHERE g.grantee = c.oid
           AND NOT EXISTS (SELECT 1 FROM allowed a
                            WHERE a.object = o.object AND a.role = c.role
                              AND a.privilege = g.privilege_type)
    ), order_of (privilege, rank) AS (
        SELECT p, r FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE',
                                      'REFERENCES', 'TRIGGER', 'MAINTAIN', 'USAGE', 'CREATE',
                                      'EXECUTE'])
                         WITH ORDINALITY AS u (p, r)
    ), grants AS (
        SELECT g.object, g.role,
               array_agg(g.privilege ORDER BY o.rank) AS privileges,
               format('%s can %s %s', g.role,
                      array_to_string(array_agg(g.privilege ORDER BY o.rank), ', '), g.object)
                   AS problem,
               format('REVOKE %s ON %s FROM %s',
                      array_to_string(array_agg(g.privilege ORDER BY o.rank), ', '),
                      CASE WHEN g.kind IN ('TABLE', 'SEQUENCE')
                           THEN g.kind || ' ' || g.object ELSE g.kind END,
                      g.keyword) AS fix
          FROM granted g JOIN order_of o ON o.privilege = g.privilege
         GROUP BY g.object, g.kind, g.role, g.keyword
    ), rls_tables (name) AS (
        SELECT 'broseph.job_records'
        UNION ALL
        SELECT 'public.' || t
          FROM unnest(ARRAY['profiles', 'groups', 'group_members', 'prompts', 'messages',
                            'device_tokens', 'notification_preferences', 'notifications',
                            'group_engagement_daily']) AS t
         -- Adopted (the runner records adopt/0002_domain.sql): the app's tables, the app's RLS.
         WHERE NOT EXISTS (SELECT 1 FROM broseph.schema_migrations
                            WHERE name = 'adopt/0002_domain.sql')
    ), rls AS (
        SELECT t.name AS object, NULL::text AS role, NULL::text[] AS privileges,
               format('row-level security is off on %s', t.name) AS problem,
               format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', t.name) AS fix
          FROM rls_tables t JOIN pg_catalog.pg_class c ON c.oid = to_regclass(t.name)
         WHERE NOT c.relrowsecurity
    ), required (object, kind, role, privilege, why) AS (
        VALUES ('broseph.is_member(uuid)', 'FUNCTION', 'authenticated', 'EXECUTE',
                'RLS policies call it'),
               ('broseph.is_time_zone(text)', 'FUNCTION', 'authenticated', 'EXECUTE',
                'the time-zone CHECKs call it'),
               ('broseph.time_zone_names', 'TABLE', 'authenticated', 'SELECT',
                'the time-zone CHECKs read it'),
               ('broseph.job_records', 'TABLE', 'authenticated', 'SELECT',
                'users read their job records'),
               ('broseph', 'SCHEMA', 'authenticated', 'USAGE', 'users read their job records'),
               ('broseph.enqueue(text, jsonb, text, timestamptz, integer, text, jsonb)',
                'FUNCTION', 'service_role', 'EXECUTE', 'producers enqueue'),
               ('broseph.enqueue_many(text, jsonb[], text[], timestamptz, integer, text, jsonb)',
                'FUNCTION', 'service_role', 'EXECUTE', 'producers enqueue')
    ), missing AS (
        SELECT q.object, q.role, ARRAY[q.privilege],
               format('%s cannot %s %s%s (%s)', q.role, q.privilege,
                      CASE q.kind WHEN 'SCHEMA' THEN 'schema ' ELSE '' END, q.object, q.why),
               format('GRANT %s ON %s %s TO %I', q.privilege, q.kind, q.object, q.role)
          FROM required q
         WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = q.role)
           AND NOT CASE q.kind
                   WHEN 'FUNCTION' THEN coalesce(has_function_privilege(
                       q.role, to_regprocedure(q.object), q.privilege), true)
                   WHEN 'TABLE' THEN coalesce(has_table_privilege(
                       q.role, to_regclass(q.object), q.privilege), true)
                   ELSE has_schema_privilege(q.role, q.object, q.privilege) END
    )
    SELECT * FROM grants
    UNION ALL SELECT * FROM rls
    UNION ALL SELECT * FROM missing
    ORDER BY 1, 2
$$;

REVOKE ALL ON FUNCTION broseph.security_findings() FROM PUBLIC;

DO $$
DECLARE
    finding record;
    revoked integer := 0;
    objects text[] := '{}';
    other text[] := '{}';
    item record;
BEGIN
    FOR finding IN SELECT * FROM broseph.security_findings() LOOP
        EXECUTE finding.fix;
        IF finding.fix LIKE 'REVOKE %' THEN
            revoked := revoked + cardinality(finding.privileges);
            objects := objects || finding.object;
        ELSE
            other := other || finding.problem;
        END IF;
    END LOOP;

    -- service_role is the operators' and producers' role: it runs the queue (a worker or
    -- `broseph jobs` connected as it, broseph.rescue_lost_jobs) on plain PostgreSQL as on
    -- Supabase, where default privileges already give it all of this.
    FOR item IN
        SELECT CASE WHEN c.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS kind,
               format('public.%I', c.relname) AS name
          FROM pg_catalog.pg_class c
         WHERE c.relnamespace = 'public'::regnamespace AND c.relname LIKE 'procrastinate\_%'
           AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
        UNION ALL
        SELECT 'FUNCTION', p.oid::regprocedure::text
          FROM pg_catalog.pg_proc p
         WHERE p.pronamespace = 'public'::regnamespace AND p.proname LIKE 'procrastinate\_%'
    LOOP
        EXECUTE format('GRANT ALL ON %s %s TO service_role', item.kind, item.name);
    END LOOP;
    GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA broseph TO service_role;

    IF revoked > 0 THEN
        RAISE NOTICE 'lock-down: revoked % privileges of anon, authenticated and PUBLIC on % queue and broseph objects',
            revoked, (SELECT count(DISTINCT o) FROM unnest(objects) AS o);
    END IF;
    IF cardinality(other) > 0 THEN
        RAISE NOTICE 'lock-down: fixed: %', array_to_string(other, '; ');
    END IF;
END;
$$;
