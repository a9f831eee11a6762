-- Queries about procrastinate's schema in this database (broseph/procrastinate_schema.py). Some run
-- through procrastinate's connector, which always binds parameters: no literal percent sign here.

-- name: schema_record_access
-- Whether broseph.schema_migrations exists and whether the current role may read it (a worker may
-- connect as service_role: migrations/0023 grants it SELECT). readable is NULL without the table.
SELECT to_regclass('broseph.schema_migrations') IS NOT NULL AS present,
       CASE WHEN to_regclass('broseph.schema_migrations') IS NOT NULL
            THEN has_table_privilege('broseph.schema_migrations', 'SELECT') END AS readable;

-- name: procrastinate_recorded
-- procrastinate's rows of broseph.schema_migrations: its base schema and each upgrade file applied.
SELECT name, checksum FROM broseph.schema_migrations WHERE starts_with(name, 'procrastinate/');

-- name: procrastinate_found_migrations
-- The procrastinate upgrade files (3.0 on) whose changes this database holds, each recognised by an
-- object it creates, changes or drops: the level of a procrastinate schema broseph did not install
-- (procrastinate_schema.adopt). Every packaged file from 03.00.00 on must have its line here — the
-- seam refuses a procrastinate that ships one without (broseph/engine.py), so that each new
-- procrastinate migration is read before broseph runs on it.
SELECT name
  FROM (VALUES
    ('03.00.00_01_pre_cancel_notification.sql',
     to_regprocedure('public.procrastinate_finish_job_v1(bigint, public.procrastinate_job_status,'
                     ' boolean)') IS NOT NULL),
    ('03.00.00_50_post_cancel_notification.sql',
     EXISTS (SELECT FROM pg_catalog.pg_trigger
              WHERE tgrelid = to_regclass('public.procrastinate_jobs')
                AND tgname = 'procrastinate_jobs_notify_queue_job_inserted_v1')),
    ('03.01.00_01_pre_add_heartbeat.sql',
     to_regclass('public.procrastinate_workers') IS NOT NULL),
    ('03.01.00_50_post_add_heartbeat.sql',  -- 03.00.00 created it, 03.01.00's post drops it
     to_regprocedure('public.procrastinate_fetch_job_v1(character varying[])') IS NULL),
    ('03.02.00_01_pre_batch_defer_jobs.sql',
     to_regtype('public.procrastinate_job_to_defer_v1') IS NOT NULL),
    ('03.02.00_50_post_batch_defer_jobs.sql',  -- likewise
     NOT EXISTS (SELECT FROM pg_catalog.pg_proc
                  WHERE proname = 'procrastinate_defer_job_v1'
                    AND pronamespace = 'public'::regnamespace)),
    ('03.03.00_01_pre_priority_lock_fetch_job.sql',
     coalesce(position('other_jobs.priority > jobs.priority' IN pg_get_functiondef(
         to_regprocedure('public.procrastinate_fetch_job_v2(character varying[], bigint)'))) > 0,
         false)),
    ('03.04.00_01_pre_add_retry_failed_job_procedure.sql',
     to_regprocedure('public.procrastinate_retry_job_v2(bigint, timestamp with time zone, integer,'
                     ' character varying, character varying)') IS NOT NULL),
    ('03.04.00_50_post_add_retry_failed_job_procedure.sql',
     coalesce(position('''retried''' IN pg_get_functiondef(
         to_regprocedure('public.procrastinate_trigger_function_status_events_update_v1()'))) > 0,
         false))
  ) AS marker (name, present)
 WHERE present;

-- name: procrastinate_dependents
-- What broseph relies on in procrastinate's schema, and what it put on procrastinate's objects, that
-- is missing: one row per problem, naming its fix. A worker refuses to start on any
-- (procrastinate_schema.check), `broseph health` reports them. %(functions)s and %(columns)s come
-- from procrastinate_schema.FUNCTIONS / COLUMNS, which the seam also checks in the installed
-- package. procrastinate's upgrades drop and re-create its own objects (03.03.00 re-created
-- procrastinate_fetch_job_v2 without the settings of migrations/0012); `broseph migrate` puts what
-- is ours back (migrations/always/procrastinate.sql).
SELECT 'procrastinate function ' || sig || ' is missing: the database does not hold the schema'
       ' broseph.schema_migrations records for it' AS problem
  FROM unnest(%(functions)s::text[]) AS sig
 WHERE to_regprocedure('public.' || sig) IS NULL
UNION ALL
SELECT 'column public.' || col || ' is missing: the database does not hold the procrastinate'
       ' schema broseph.schema_migrations records for it'
  FROM unnest(%(columns)s::text[]) AS col
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid = to_regclass('public.' || split_part(col, '.', 1))
                      AND a.attname = split_part(col, '.', 2)
                      AND a.attnum > 0 AND NOT a.attisdropped)
UNION ALL
SELECT 'trigger ' || t || ' on procrastinate_jobs is missing or disabled: job records no longer'
       ' follow their queue rows (run broseph migrate)'
  FROM unnest(ARRAY['broseph_sync_job_record_update', 'broseph_sync_job_record_delete']) AS t
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_trigger tr
                    WHERE tr.tgrelid = to_regclass('public.procrastinate_jobs')
                      AND tr.tgname = t AND tr.tgenabled <> 'D')
UNION ALL
SELECT 'trigger broseph_queue_rows_inserted on procrastinate_jobs (migrations/0028) is missing or'
       ' disabled: new jobs neither wake workers nor record their events (run broseph migrate)'
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_trigger tr
                    WHERE tr.tgrelid = to_regclass('public.procrastinate_jobs')
                      AND tr.tgname = 'broseph_queue_rows_inserted' AND tr.tgenabled <> 'D')
UNION ALL
SELECT 'procrastinate''s per-row insert trigger ' || tr.tgname || ' is back on procrastinate_jobs'
       ' (a procrastinate upgrade re-created it; migrations/0028 replaced it): every job pays it'
       ' again, twice with broseph_queue_rows_inserted (run broseph migrate)'
  FROM pg_catalog.pg_trigger tr
 WHERE tr.tgrelid = to_regclass('public.procrastinate_jobs') AND NOT tr.tgisinternal
   AND tr.tgfoid IN (
       to_regprocedure('public.procrastinate_notify_queue_job_inserted_v1()'),
       to_regprocedure('public.procrastinate_trigger_function_status_events_insert_v1()'))
UNION ALL
SELECT 'index procrastinate_jobs_waiting_lock_idx (migrations/0012) is missing (run broseph migrate)'
 WHERE to_regclass('public.procrastinate_jobs_waiting_lock_idx') IS NULL
UNION ALL
SELECT 'procrastinate_fetch_job_v2 lacks the plan settings of migrations/0012 (run broseph migrate)'
  FROM pg_catalog.pg_proc p
 WHERE p.oid = to_regprocedure('public.procrastinate_fetch_job_v2(character varying[], bigint)')
   AND NOT coalesce(p.proconfig @> ARRAY['enable_sort=off', 'enable_bitmapscan=off'], false);
