-- always/procrastinate.sql — what broseph put on procrastinate's own objects, put back.
--
-- Run by `broseph migrate` on EVERY run, after the numbered migrations, in one transaction;
-- idempotent: on a database where all of it is in place it changes nothing and says nothing.
--
-- Why: procrastinate's upgrade files drop and re-create its functions and triggers. 03.03.00
-- re-creates procrastinate_fetch_job_v2, and with it go the plan settings migrations/0012 put on
-- it; an upgrade that rebuilt procrastinate_jobs would take broseph's triggers (migrations/0003)
-- and its lock index (0012) along. `broseph migrate` applies procrastinate's upgrades before the
-- numbered migrations and this file after them, so no upgrade it applies leaves them undone; a
-- worker refuses to start, and `broseph health` reports, while one is missing
-- (broseph/queries/procrastinate.sql, procrastinate_dependents). Grants: always/lockdown.sql.
--
-- The definitions are those of migrations/0003, 0012 and 0028, word for word; tests/
-- test_procrastinate_upgrade.py checks that what this file re-creates equals what they created.
-- Each repair is reported by `broseph migrate` (a NOTICE starting "restored:").

-- Nothing below may resolve a name through a path a client could have set up.
SET LOCAL search_path = pg_catalog, pg_temp;

DO $$
DECLARE
    fetch_v2 regprocedure :=
        to_regprocedure('public.procrastinate_fetch_job_v2(character varying[], bigint)');
    jobs regclass := to_regclass('public.procrastinate_jobs');
    stock name;
BEGIN
    IF jobs IS NULL THEN
        RETURN;  -- no procrastinate schema: nothing of ours is on it yet
    END IF;
    IF fetch_v2 IS NOT NULL AND NOT coalesce(
           (SELECT proconfig FROM pg_proc WHERE oid = fetch_v2)
               @> ARRAY['enable_sort=off', 'enable_bitmapscan=off'], false) THEN
        ALTER FUNCTION public.procrastinate_fetch_job_v2(character varying[], bigint)
            SET enable_sort = off
            SET enable_bitmapscan = off;
        RAISE NOTICE 'restored: the plan settings of migrations/0012 on procrastinate_fetch_job_v2 (a procrastinate upgrade had re-created it)';
    END IF;
    IF to_regclass('public.procrastinate_jobs_waiting_lock_idx') IS NULL THEN
        CREATE INDEX procrastinate_jobs_waiting_lock_idx ON public.procrastinate_jobs (lock)
            WHERE status IN ('todo', 'doing');
        RAISE NOTICE 'restored: index procrastinate_jobs_waiting_lock_idx of migrations/0012';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_trigger
                    WHERE tgrelid = jobs AND tgname = 'broseph_sync_job_record_update') THEN
        CREATE TRIGGER broseph_sync_job_record_update
            AFTER UPDATE OF status ON public.procrastinate_jobs
            FOR EACH ROW
            WHEN (OLD.status IS DISTINCT FROM NEW.status)
            EXECUTE FUNCTION broseph.sync_job_record();
        RAISE NOTICE 'restored: trigger broseph_sync_job_record_update of migrations/0003';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_trigger
                    WHERE tgrelid = jobs AND tgname = 'broseph_sync_job_record_delete') THEN
        CREATE TRIGGER broseph_sync_job_record_delete
            AFTER DELETE ON public.procrastinate_jobs
            FOR EACH ROW
            WHEN (OLD.status IN ('todo', 'doing'))
            EXECUTE FUNCTION broseph.sync_job_record();
        RAISE NOTICE 'restored: trigger broseph_sync_job_record_delete of migrations/0003';
    END IF;
    IF EXISTS (SELECT FROM pg_trigger
                WHERE tgrelid = jobs AND tgenabled = 'D'
                  AND tgname IN ('broseph_sync_job_record_update',
                                 'broseph_sync_job_record_delete')) THEN
        ALTER TABLE public.procrastinate_jobs ENABLE TRIGGER broseph_sync_job_record_update;
        ALTER TABLE public.procrastinate_jobs ENABLE TRIGGER broseph_sync_job_record_delete;
        RAISE NOTICE 'restored: broseph''s triggers on procrastinate_jobs were disabled; enabled';
    END IF;
    -- migrations/0028: procrastinate's per-row INSERT triggers, replaced by one statement-level
    -- trigger. An upgrade that re-creates an original (under any name: found by its function)
    -- would make every job send its notifications and events twice, or, with ours gone, once
    -- per row again: drop the originals, put ours back.
    FOR stock IN
        SELECT t.tgname FROM pg_trigger t
         WHERE t.tgrelid = jobs AND NOT t.tgisinternal
           AND t.tgfoid IN (
               to_regprocedure('public.procrastinate_notify_queue_job_inserted_v1()'),
               to_regprocedure('public.procrastinate_trigger_function_status_events_insert_v1()'))
         ORDER BY t.tgname
    LOOP
        EXECUTE format('DROP TRIGGER %I ON public.procrastinate_jobs', stock);
        RAISE NOTICE 'restored: procrastinate''s per-row insert trigger % dropped again (a procrastinate upgrade had re-created it; migrations/0028 replaces it)', stock;
    END LOOP;
    IF NOT EXISTS (SELECT FROM pg_trigger
                    WHERE tgrelid = jobs AND tgname = 'broseph_queue_rows_inserted') THEN
        CREATE TRIGGER broseph_queue_rows_inserted
            AFTER INSERT ON public.procrastinate_jobs
            REFERENCING NEW TABLE AS inserted_jobs
            FOR EACH STATEMENT
            EXECUTE FUNCTION broseph.queue_rows_inserted();
        RAISE NOTICE 'restored: trigger broseph_queue_rows_inserted of migrations/0028';
    ELSIF EXISTS (SELECT FROM pg_trigger
                   WHERE tgrelid = jobs AND tgname = 'broseph_queue_rows_inserted'
                     AND tgenabled = 'D') THEN
        ALTER TABLE public.procrastinate_jobs ENABLE TRIGGER broseph_queue_rows_inserted;
        RAISE NOTICE 'restored: trigger broseph_queue_rows_inserted was disabled; enabled';
    END IF;
END;
$$;
