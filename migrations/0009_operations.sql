-- 0009 — Operations: rescue of jobs whose worker was lost, and an index for pruning.
--
--   broseph.rescue_lost_jobs(lost_after_seconds) → (job_id, record_id, worker_id, action)
--       Called by the worker's `ops_rescue` periodic task (broseph/ops/rescue.py); callable from
--       psql too. See its header below.
--
-- Indexes: pruning (broseph/ops/retention.py, broseph/queries/ops.sql) walks final events in
-- (at, id) order, and records in (finished_at, id) order. On an existing database with many
-- rows, create them first by hand, without blocking writers (the statements below, with
-- CONCURRENTLY after CREATE INDEX), and this migration then does nothing for them.

CREATE INDEX IF NOT EXISTS procrastinate_events_final_at_idx
    ON public.procrastinate_events (at, id)
    WHERE type IN ('succeeded', 'failed', 'cancelled', 'aborted');
-- Records left without a queue row are walked in (finished_at, id) order the same way.
CREATE INDEX IF NOT EXISTS job_records_finished_id_idx
    ON broseph.job_records (finished_at, id)
    WHERE finished_at IS NOT NULL;

-- broseph.rescue_lost_jobs(lost_after_seconds) — give back the jobs of lost workers.
--
-- A job is lost when it is `doing` and its worker's heartbeat is older than lost_after_seconds
-- (or its worker row is gone: procrastinate deletes stale workers when another one starts).
-- Each lost job, in one transaction with its record:
--   abort requested            → aborted   (record: cancelled)
--   attempts left              → todo now  (record: retrying), workers woken by NOTIFY
--   attempts exhausted, or no  → failed    (record: failed)
--   record (a periodic tick)
-- and the record's last_error says `worker lost (worker N, last heartbeat …)`. Jobs queued behind
-- a rescued job's lock can run again as soon as it leaves `doing`. The lost workers' rows are
-- deleted, so they no longer count as live. Rows locked by someone else are skipped (another
-- rescuer, or a worker finishing that very job right now).
-- Grants: service_role (and the owner).
CREATE FUNCTION broseph.rescue_lost_jobs(lost_after_seconds double precision)
    RETURNS TABLE (job_id bigint, record_id uuid, worker_id bigint, action text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public
AS $$
DECLARE
    lost record;
    reason text;
    wake text;
BEGIN
    FOR lost IN
        SELECT j.id, j.worker_id, j.attempts, j.abort_requested, j.queue_name,
               w.last_heartbeat, r.id AS rid, r.max_attempts AS max_attempts
          FROM procrastinate_jobs j
          LEFT JOIN procrastinate_workers w ON w.id = j.worker_id
          LEFT JOIN broseph.job_records r ON r.procrastinate_job_id = j.id
         WHERE j.status = 'doing'
           AND (w.id IS NULL
                OR w.last_heartbeat < now() - make_interval(secs => lost_after_seconds))
         ORDER BY j.id
           FOR UPDATE OF j SKIP LOCKED
    LOOP
        reason := format('worker lost (worker %s, last heartbeat %s)',
                         coalesce(lost.worker_id::text, 'gone'),
                         coalesce(to_char(now() - lost.last_heartbeat, 'HH24:MI:SS') || ' ago',
                                  'unknown'));
        UPDATE broseph.job_records SET last_error = reason, updated_at = now()
         WHERE id = lost.rid;
        IF lost.abort_requested THEN
            action := 'cancelled';
            PERFORM procrastinate_finish_job_v1(lost.id, 'aborted', false);
        ELSIF lost.attempts + 1 < coalesce(lost.max_attempts, 1) THEN
            action := 'retried';
            PERFORM procrastinate_retry_job_v2(lost.id, now(), NULL, NULL, NULL);
            -- procrastinate only notifies on INSERT; wake the workers like its trigger would.
            wake := json_build_object('type', 'job_inserted', 'job_id', lost.id)::text;
            PERFORM pg_notify('procrastinate_queue_v1#' || lost.queue_name, wake);
            PERFORM pg_notify('procrastinate_any_queue_v1', wake);
        ELSE
            action := 'failed';
            PERFORM procrastinate_finish_job_v1(lost.id, 'failed', false);
        END IF;
        job_id := lost.id;
        record_id := lost.rid;
        worker_id := lost.worker_id;
        RETURN NEXT;
    END LOOP;
    DELETE FROM procrastinate_workers w
     WHERE w.last_heartbeat < now() - make_interval(secs => lost_after_seconds);
END;
$$;

REVOKE EXECUTE ON FUNCTION broseph.rescue_lost_jobs(double precision) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION broseph.rescue_lost_jobs(double precision) TO service_role;
