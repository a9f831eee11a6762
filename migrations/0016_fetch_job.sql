-- 0016 — The worker's own fetch: a job waiting for a later time never blocks a due one.
--
-- procrastinate's fetch (procrastinate_fetch_job_v2) lets a job run only when no job with the
-- same lock is running AND no earlier waiting job (higher priority, or same priority and lower
-- id) has that lock — even one scheduled for next month. So one GeneratePrompt scheduled far ahead
-- held back every later GeneratePrompt of its group, the daily one included (lock = group_id),
-- and a job stored with run_at 'infinity' held its lock for ever.
--
-- broseph.fetch_job(queues, worker_id) is procrastinate_fetch_job_v2 with one change: an earlier
-- waiting job blocks only when it is due itself (scheduled_at NULL or past). Same columns (the
-- whole procrastinate_jobs row), same order (priority DESC, id), same SKIP LOCKED, same
-- one-running-job-per-lock rule. The worker calls it through broseph/queries/records.sql
-- (fetch_job_with_record, swapped in by broseph.worker.WorkerConnector). It is a function of
-- ours rather than a CREATE OR REPLACE of procrastinate's, which a procrastinate upgrade would
-- silently undo.
--
-- A race the old rule could not have: fetch B (whose now() is a moment earlier) takes job Y while
-- fetch A takes X, an earlier job of the same lock that became due between their starts. Both
-- would hold the lock; procrastinate's unique index on running locks makes the second writer
-- fail — and an error in a fetch stops procrastinate's worker. That fetch returns no job instead
-- (the subtransaction of the EXCEPTION block costs microseconds; the job waits for the next
-- fetch, behind the lock as it should).
--
-- Plan: as 0012 does for procrastinate's function, sorts and bitmap scans are off, so the only
-- plan walks procrastinate_jobs_priority_idx_v1 (priority DESC, id; todo only) and stops at the
-- first free job, probing procrastinate_jobs_waiting_lock_idx (lock; todo/doing) per candidate,
-- whatever the statistics say (tests/test_fetch_lock.py checks no sequential scan is made).
-- The lock probe's extra condition (due) is a filter on rows the index returns. jit is off: a
-- plan pushed onto a disabled path is costed past jit_above_cost, and compiling it would cost far
-- more than the fetch (enqueue's batch screen paid ~0.4 s per call that way, see 0015).
-- search_path: every name is qualified, but procrastinate's triggers on procrastinate_jobs (run by
-- the UPDATE) name procrastinate_events without a schema; pg_temp last, so no temporary table can
-- stand in for it.
-- Grants: service_role (the worker connects as it or as the owner).
CREATE FUNCTION broseph.fetch_job(target_queue_names character varying[], p_worker_id bigint)
    RETURNS public.procrastinate_jobs
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    SET enable_sort = off
    SET enable_bitmapscan = off
    SET jit = off
AS $$
DECLARE
    found_job public.procrastinate_jobs;
BEGIN
    WITH candidate AS (
        SELECT jobs.id
          FROM public.procrastinate_jobs AS jobs
         WHERE NOT EXISTS (
                   SELECT 1
                     FROM public.procrastinate_jobs AS other_jobs
                    WHERE jobs.lock IS NOT NULL
                      AND other_jobs.lock = jobs.lock
                      AND (
                          -- a job with the same lock is running
                          other_jobs.status = 'doing'
                          OR (
                              -- an earlier job with the same lock is waiting AND due
                              other_jobs.status = 'todo'
                              AND (other_jobs.scheduled_at IS NULL
                                   OR other_jobs.scheduled_at <= now())
                              AND (other_jobs.priority > jobs.priority
                                   OR (other_jobs.priority = jobs.priority
                                       AND other_jobs.id < jobs.id))
                          )
                      )
               )
           AND jobs.status = 'todo'
           AND (target_queue_names IS NULL OR jobs.queue_name = ANY (target_queue_names))
           AND (jobs.scheduled_at IS NULL OR jobs.scheduled_at <= now())
         ORDER BY jobs.priority DESC, jobs.id ASC
         LIMIT 1
           FOR UPDATE OF jobs SKIP LOCKED
    )
    UPDATE public.procrastinate_jobs AS j
       SET status = 'doing', worker_id = p_worker_id
      FROM candidate
     WHERE j.id = candidate.id
    RETURNING j.* INTO found_job;
    RETURN found_job;
EXCEPTION
    WHEN unique_violation THEN
        -- Another fetch took an earlier job of the same lock meanwhile (header): no job now.
        RETURN NULL;
END;
$$;

REVOKE EXECUTE ON FUNCTION broseph.fetch_job(character varying[], bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION broseph.fetch_job(character varying[], bigint) TO service_role;
