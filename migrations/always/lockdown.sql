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
--     is_time_zone as the client), or service_role's EXECUTE on enqueue / enqueue_many;
--   * the apps' read path (migrations/0020) changed: public.broseph_job_status not running with
--     its reader's rights (security_invoker), authenticated's SELECT on broseph.job_records
--     other than exactly the view's columns (a table-wide SELECT reads params and last_error),
--     or — where the supabase_realtime publication exists, whenever it was created —
--     broseph.job_records not in it with exactly those columns as its column list.
-- `broseph health` reports the findings; this file applies every fix it may (a fix refused for
-- lack of privilege, e.g. on a publication another role owns, is reported and skipped).

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
    ), client_columns (name) AS (
        -- What a member may see of a job record: the columns of the apps' read path (0020).
        SELECT a.attname::text
          FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = to_regclass('public.broseph_job_status')
           AND a.attnum > 0 AND NOT a.attisdropped
    ), allowed (object, role, privilege) AS (
        SELECT format('broseph.job_records (%I)', c.name), 'authenticated', 'SELECT'
          FROM client_columns c
        UNION ALL
        VALUES ('broseph.is_member(uuid)', 'authenticated', 'EXECUTE'),
               ('broseph.is_time_zone(text)', 'authenticated', 'EXECUTE'),
               ('public.broseph_job_status', 'authenticated', 'SELECT'),
               ('broseph.job_types', 'authenticated', 'SELECT'),
               ('broseph.time_zone_names', 'anon', 'SELECT'),
               ('broseph.time_zone_names', 'authenticated', 'SELECT'),
               ('schema broseph', 'anon', 'USAGE'),
               ('schema broseph', 'authenticated', 'USAGE'),
               ('schema public', 'anon', 'USAGE'),
               ('schema public', 'authenticated', 'USAGE'),
               ('schema public', 'PUBLIC', 'USAGE')
    ), relations AS (
        SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS name, c.relkind, c.relacl,
               c.relowner
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
           AND ((n.nspname = 'public'
                 AND (c.relname LIKE 'procrastinate\_%' OR c.relname LIKE 'broseph\_%'))
                OR n.nspname = 'broseph')
    ), objects (object, target, col, acl) AS (
        -- Relations: table-level grants (target: what follows ON in the fix).
        SELECT r.name,
               CASE WHEN r.relkind = 'S' THEN 'SEQUENCE ' ELSE 'TABLE ' END || r.name, NULL::text,
               coalesce(r.relacl, acldefault(CASE WHEN r.relkind = 'S' THEN 's' ELSE 'r'
                                             END::"char", r.relowner))
          FROM relations r
        UNION ALL
        -- Column-level grants, one object per column ("broseph.job_records (params)"): a
        -- table-level REVOKE would take the columns clients may read along with the rest.
        SELECT format('%s (%I)', r.name, att.attname), 'TABLE ' || r.name, att.attname::text,
               att.attacl
          FROM relations r JOIN pg_catalog.pg_attribute att ON att.attrelid = r.oid
         WHERE att.attacl IS NOT NULL AND att.attnum > 0 AND NOT att.attisdropped
        UNION ALL
        SELECT format('%I.%I(%s)', n.nspname, p.proname, oidvectortypes(p.proargtypes)),
               'FUNCTION ' || p.oid::regprocedure::text, NULL,
               coalesce(p.proacl, acldefault('f', p.proowner))
          FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE (n.nspname = 'public'
                AND (p.proname LIKE 'procrastinate\_%' OR p.proname LIKE 'broseph\_%'))
            OR n.nspname = 'broseph'
        UNION ALL
        SELECT 'schema ' || n.nspname, 'SCHEMA ' || quote_ident(n.nspname), NULL,
               coalesce(n.nspacl, acldefault('n', n.nspowner))
          FROM pg_catalog.pg_namespace n WHERE n.nspname IN ('public', 'broseph')
    ), granted AS (
        SELECT DISTINCT o.object, o.target, o.col, c.role, c.keyword,
               g.privilege_type AS privilege
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
                      string_agg(g.privilege || coalesce(' (' || quote_ident(g.col) || ')', ''),
                                 ', ' ORDER BY o.rank),
                      g.target, g.keyword) AS fix
          FROM granted g JOIN order_of o ON o.privilege = g.privilege
         GROUP BY g.object, g.target, g.col, g.role, g.keyword
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
               ('public.broseph_job_status', 'TABLE', 'authenticated', 'SELECT',
                'users read their job records'),
               ('broseph', 'SCHEMA', 'authenticated', 'USAGE', 'users read their job records'),
               ('broseph.enqueue(text, jsonb, text, timestamptz, integer, text, jsonb, text, text)',
                'FUNCTION', 'service_role', 'EXECUTE', 'producers enqueue'),
               ('broseph.enqueue_many(text, jsonb[], text[], timestamptz, integer, text, jsonb, text, text)',
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
    ), missing_columns AS (
        -- The view reads these as its caller; Realtime sends a subscriber only these.
        SELECT 'broseph.job_records', 'authenticated', ARRAY['SELECT'],
               format('authenticated cannot SELECT broseph.job_records (%s) (users read their job records)',
                      string_agg(quote_ident(c.name), ', ' ORDER BY c.name)),
               format('GRANT SELECT (%s) ON TABLE broseph.job_records TO authenticated',
                      string_agg(quote_ident(c.name), ', ' ORDER BY c.name))
          FROM client_columns c
         WHERE NOT has_column_privilege('authenticated', 'broseph.job_records', c.name, 'SELECT')
        HAVING count(*) > 0
    ), invoker AS (
        SELECT 'public.broseph_job_status', NULL::text, NULL::text[],
               'public.broseph_job_status runs with its owner''s rights (security_invoker is off): every job record is readable through it',
               'ALTER VIEW public.broseph_job_status SET (security_invoker = true)'
          FROM pg_catalog.pg_class c
         WHERE c.oid = to_regclass('public.broseph_job_status')
           AND NOT EXISTS (SELECT 1 FROM unnest(c.reloptions) o
                            WHERE lower(o) IN ('security_invoker=true', 'security_invoker=on',
                                               'security_invoker=1', 'security_invoker=yes'))
    ), realtime AS (
        -- Supabase Realtime streams what supabase_realtime publishes (where the publication
        -- exists: not on plain PostgreSQL until someone creates it). broseph.job_records is in it
        -- with the view's columns as its column list: a consumer of the publication gets no
        -- internals, whatever it does with column privileges. One step per run of the fixes: an
        -- entry with other columns is dropped, then added again (no ALTER changes a column list).
        SELECT 'publication supabase_realtime', NULL::text, NULL::text[],
               CASE WHEN pr.oid IS NULL
                    THEN 'broseph.job_records is not published to supabase_realtime (apps cannot subscribe to job progress)'
                    WHEN EXISTS (SELECT 1 FROM unnest(published.names) n
                                  WHERE n <> ALL (wanted.names))
                    THEN format('supabase_realtime publishes internals of broseph.job_records (%s)',
                                (SELECT string_agg(n, ', ' ORDER BY n) FROM unnest(published.names) n
                                  WHERE n <> ALL (wanted.names)))
                    ELSE format('supabase_realtime publishes broseph.job_records without %s',
                                (SELECT string_agg(n, ', ' ORDER BY n) FROM unnest(wanted.names) n
                                  WHERE n <> ALL (published.names)))
               END,
               CASE WHEN pr.oid IS NULL
                    THEN format('ALTER PUBLICATION supabase_realtime ADD TABLE broseph.job_records (%s)',
                                (SELECT string_agg(quote_ident(n), ', ' ORDER BY n)
                                   FROM unnest(wanted.names) n))
                    ELSE 'ALTER PUBLICATION supabase_realtime DROP TABLE broseph.job_records'
               END
          FROM pg_catalog.pg_publication p
          -- Generated columns (group_id, user_id) cannot be in a column list before PostgreSQL
          -- 18 (nor are they decoded): Realtime's RLS check reads them from the table.
          CROSS JOIN (SELECT array_agg(c.name ORDER BY c.name) AS names
                        FROM client_columns c JOIN pg_catalog.pg_attribute a
                          ON a.attrelid = to_regclass('broseph.job_records') AND a.attname = c.name
                       WHERE a.attgenerated = '') wanted
          LEFT JOIN pg_catalog.pg_publication_rel pr
                 ON pr.prpubid = p.oid AND pr.prrelid = to_regclass('broseph.job_records')
          LEFT JOIN LATERAL (
              -- NULL prattrs: every column.
              SELECT array_agg(a.attname::text ORDER BY a.attname) AS names
                FROM pg_catalog.pg_attribute a
               WHERE a.attrelid = pr.prrelid AND a.attnum > 0 AND NOT a.attisdropped
                 AND a.attgenerated = ''
                 AND (pr.prattrs IS NULL OR a.attnum = ANY (pr.prattrs))) published ON true
         WHERE p.pubname = 'supabase_realtime'
           -- FOR ALL TABLES / TABLES IN SCHEMA: no table entry to add, drop or narrow.
           AND NOT p.puballtables
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication_namespace pn
                            WHERE pn.pnpubid = p.oid)
           AND wanted.names IS NOT NULL
           AND (pr.oid IS NULL OR published.names IS DISTINCT FROM wanted.names)
    )
    SELECT * FROM grants
    UNION ALL SELECT * FROM rls
    UNION ALL SELECT * FROM missing
    UNION ALL SELECT * FROM missing_columns
    UNION ALL SELECT * FROM invoker
    UNION ALL SELECT * FROM realtime
    ORDER BY 1, 2
$$;

REVOKE ALL ON FUNCTION broseph.security_findings() FROM PUBLIC;

DO $$
DECLARE
    finding record;
    revoked integer := 0;
    objects text[] := '{}';
    other text[] := '{}';
    refused text[] := '{}';
    applied integer;
    item record;
BEGIN
    -- A fix can uncover the next one (a table-wide REVOKE takes the columns clients may read
    -- with it; a publication entry with other columns is dropped before it is added again):
    -- look again until nothing is left to do. Three rounds are enough for any of them.
    FOR round IN 1..3 LOOP
        applied := 0;
        FOR finding IN SELECT * FROM broseph.security_findings() LOOP
            CONTINUE WHEN finding.fix = ANY (refused);
            BEGIN
                EXECUTE finding.fix;
            EXCEPTION WHEN insufficient_privilege THEN
                -- Not the migrating role's to change (on Supabase `postgres` is no superuser:
                -- e.g. a supabase_realtime publication some other role owns). Say so; go on.
                refused := refused || finding.fix;
                RAISE NOTICE 'lock-down: could not fix: % (%); run as a role that may: %;',
                    finding.problem, SQLERRM, finding.fix;
                CONTINUE;
            END;
            applied := applied + 1;
            IF finding.fix LIKE 'REVOKE %' THEN
                revoked := revoked + cardinality(finding.privileges);
                objects := objects || finding.object;
            ELSE
                other := other || finding.problem;
            END IF;
        END LOOP;
        EXIT WHEN applied = 0;
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
