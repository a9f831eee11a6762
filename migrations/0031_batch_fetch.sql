-- 0032 — Batch fetch: a worker takes up to K jobs per statement and holds them, not yet started,
-- in a local buffer its free slots take from (broseph/engine.py, WorkerJobManager).
--
-- broseph.unstarted_jobs: one row per job a worker fetched but has not started — the job is
-- `doing` in procrastinate_jobs (held by that worker: no one else takes it, and `procrastinate
-- shell` shows it doing with the worker's id, which is the truth of the queue) while its record
-- stays as it was (pending, or retrying with its previous attempts): the record trigger
-- (broseph.sync_job_record, migrations/0003, replaced below) leaves a job with such a row alone
-- when it moves between todo and doing. The row goes when the job starts — in the worker's
-- grouped statement (broseph.finish_jobs, migrations/0032), committed before its handler begins,
-- which then moves the record to processing as the trigger would have — or when the job goes
-- back to waiting unspent:
--   * SIGTERM: the worker's last call (unregister_worker) releases what it never started
--     (broseph.release_jobs): todo again, attempts unchanged, the record never said processing
--     or retrying.
--   * kill -9: broseph.rescue_lost_jobs (replaced below) releases such jobs the same way
--     (action `released`) instead of spending an attempt or failing them; a cancel requested
--     meanwhile ends them cancelled, still without an attempt.
--   * a cancel (abort request) of a buffered job: when a slot takes it, the grouped statement
--     ends it `aborted` (record: cancelled) instead of starting it; its handler never runs.
--
-- broseph.fetch_jobs(queues, worker_id, k): broseph.fetch_job (migrations/0016) for up to k jobs
-- in one statement — the same WHERE, the same one-running-job-per-lock rule (within one batch
-- too: a second job of a lock is blocked by the first, still waiting when the batch is chosen),
-- the same order (priority DESC, id), SKIP LOCKED, the same plan settings. The first job is the
-- one the asking slot runs at once: it is started in this statement (no unstarted row, record
-- processing), as with a single fetch. The worker asks for at most its free slots (k), so a job
-- of higher priority arriving meanwhile waits behind at most k fetched ones.
-- Grants: service_role, like broseph.fetch_job.
CREATE TABLE broseph.unstarted_jobs (
    job_id bigint PRIMARY KEY
);
REVOKE ALL ON broseph.unstarted_jobs FROM PUBLIC;

CREATE FUNCTION broseph.fetch_jobs(
    target_queue_names character varying[], p_worker_id bigint, p_limit integer
)
    RETURNS SETOF public.procrastinate_jobs
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    SET enable_sort = off
    SET enable_bitmapscan = off
    SET jit = off
AS $$
DECLARE
    ids bigint[];
    fetched public.procrastinate_jobs[];
BEGIN
    BEGIN
        WITH candidate AS (
            SELECT jobs.id, jobs.priority
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
             LIMIT greatest(p_limit, 1)
               FOR UPDATE OF jobs SKIP LOCKED
        )
        SELECT array_agg(candidate.id ORDER BY candidate.priority DESC, candidate.id)
          INTO ids
          FROM candidate;
        IF ids IS NULL THEN
            RETURN;
        END IF;
        -- Before the UPDATE: its trigger must see which jobs are not started. A mark left by a
        -- start that failed is dropped first (the first job starts in this statement).
        DELETE FROM broseph.unstarted_jobs AS u WHERE u.job_id = ANY (ids);
        INSERT INTO broseph.unstarted_jobs (job_id)
        SELECT unnest(ids[2:])
        ON CONFLICT DO NOTHING;
        WITH taken AS (
            UPDATE public.procrastinate_jobs AS j
               SET status = 'doing', worker_id = p_worker_id
             WHERE j.id = ANY (ids)
            RETURNING j.*
        )
        SELECT array_agg(taken) INTO fetched FROM taken;
    EXCEPTION
        WHEN unique_violation THEN
            -- Another fetch took an earlier job of the same lock meanwhile (0016): no job now.
            RETURN;
    END;
    RETURN QUERY SELECT * FROM unnest(fetched);
END;
$$;

REVOKE EXECUTE ON FUNCTION broseph.fetch_jobs(character varying[], bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION broseph.fetch_jobs(character varying[], bigint, integer) TO service_role;

-- The record trigger of 0003, leaving a fetched-but-unstarted job's record as it was.
-- 0026's version (a record leaving `pending` drops its coalesce key) plus the unstarted rule.
CREATE OR REPLACE FUNCTION broseph.sync_job_record() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM broseph.unstarted_jobs WHERE job_id = OLD.id;
        UPDATE broseph.job_records
           SET status = 'cancelled',
               finished_at = now(),
               updated_at = now(),
               coalesce_key = NULL,
               last_error = coalesce(last_error, 'queue row deleted before the job finished')
         WHERE procrastinate_job_id = OLD.id
           AND status IN ('pending', 'processing', 'retrying');
        RETURN OLD;
    END IF;

    IF NEW.status IN ('todo', 'doing')
       AND EXISTS (SELECT 1 FROM broseph.unstarted_jobs AS u WHERE u.job_id = NEW.id) THEN
        RETURN NEW;  -- held in a worker's buffer, or going back from it: nothing happened yet
    END IF;

    UPDATE broseph.job_records AS r
       SET status = CASE NEW.status
                        WHEN 'todo' THEN 'retrying'
                        WHEN 'doing' THEN 'processing'
                        WHEN 'succeeded' THEN 'completed'
                        WHEN 'failed' THEN 'failed'
                        ELSE 'cancelled'
                    END,
           attempts = CASE WHEN NEW.status = 'doing' THEN NEW.attempts + 1
                           ELSE greatest(r.attempts, NEW.attempts) END,
           started_at = CASE WHEN NEW.status = 'doing' THEN coalesce(r.started_at, now())
                             ELSE r.started_at END,
           next_attempt_at = CASE WHEN NEW.status = 'todo' THEN coalesce(NEW.scheduled_at, now())
                                  ELSE NULL END,
           finished_at = CASE WHEN NEW.status IN ('todo', 'doing') THEN NULL ELSE now() END,
           progress = CASE WHEN NEW.status = 'succeeded' THEN 100 ELSE r.progress END,
           last_error = CASE
                            WHEN NEW.status = 'succeeded' THEN NULL
                            WHEN NEW.status IN ('cancelled', 'aborted')
                                THEN coalesce(r.last_error, 'cancelled')
                            ELSE r.last_error
                        END,
           coalesce_key = NULL,
           updated_at = now()
     WHERE r.procrastinate_job_id = NEW.id;
    RETURN NEW;
END;
$$;

-- broseph.release_jobs(worker_id, job_ids): the worker's fetched-but-unstarted jobs back to
-- waiting — todo, attempts unchanged, records untouched (the trigger skips them while their
-- unstarted row exists, so the status goes first) — and the workers woken; returns those ids.
CREATE FUNCTION broseph.release_jobs(p_worker_id bigint, job_ids bigint[])
    RETURNS SETOF bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    released bigint[];
    queue_names text[];
    queue text;
    wake text;
BEGIN
    WITH back AS (
        UPDATE public.procrastinate_jobs AS j
           SET status = 'todo', worker_id = NULL
         WHERE j.id = ANY (job_ids)
           AND j.status = 'doing'
           AND j.worker_id IS NOT DISTINCT FROM p_worker_id
           AND EXISTS (SELECT 1 FROM broseph.unstarted_jobs AS u WHERE u.job_id = j.id)
        RETURNING j.id, j.queue_name
    )
    SELECT array_agg(back.id), array_agg(DISTINCT back.queue_name) INTO released, queue_names
      FROM back;
    DELETE FROM broseph.unstarted_jobs AS u WHERE u.job_id = ANY (job_ids);
    IF released IS NULL THEN
        RETURN;
    END IF;
    -- procrastinate only notifies on INSERT; wake the workers like its trigger would.
    wake := json_build_object('type', 'job_inserted', 'job_id', NULL)::text;
    FOREACH queue IN ARRAY queue_names LOOP
        PERFORM pg_notify('procrastinate_queue_v1#' || queue, wake);
    END LOOP;
    PERFORM pg_notify('procrastinate_any_queue_v1', wake);
    RETURN QUERY SELECT unnest(released);
END;
$$;

REVOKE EXECUTE ON FUNCTION broseph.release_jobs(bigint, bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION broseph.release_jobs(bigint, bigint[]) TO service_role;

-- The rescue of 0009, releasing a lost worker's jobs that never started instead of spending an
-- attempt on them (or failing them on their last one).
CREATE OR REPLACE FUNCTION broseph.rescue_lost_jobs(lost_after_seconds double precision)
    RETURNS TABLE (job_id bigint, record_id uuid, worker_id bigint, action text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    lost record;
    reason text;
    wake text;
BEGIN
    FOR lost IN
        SELECT j.id, j.worker_id, j.attempts, j.abort_requested, j.queue_name,
               w.last_heartbeat, r.id AS rid, r.max_attempts AS max_attempts,
               u.job_id IS NOT NULL AS unstarted
          FROM procrastinate_jobs j
          LEFT JOIN procrastinate_workers w ON w.id = j.worker_id
          LEFT JOIN broseph.job_records r ON r.procrastinate_job_id = j.id
          LEFT JOIN broseph.unstarted_jobs u ON u.job_id = j.id
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
        wake := json_build_object('type', 'job_inserted', 'job_id', lost.id)::text;
        IF lost.unstarted THEN
            -- Fetched, never started: nothing happened to it. Back to waiting as it was (the
            -- record is left alone while the unstarted row exists), or cancelled if asked.
            IF lost.abort_requested THEN
                action := 'cancelled';
                DELETE FROM broseph.unstarted_jobs u WHERE u.job_id = lost.id;
                UPDATE procrastinate_jobs SET status = 'aborted', abort_requested = false
                 WHERE id = lost.id;
            ELSE
                action := 'released';
                UPDATE procrastinate_jobs SET status = 'todo', worker_id = NULL
                 WHERE id = lost.id;
                DELETE FROM broseph.unstarted_jobs u WHERE u.job_id = lost.id;
                PERFORM pg_notify('procrastinate_queue_v1#' || lost.queue_name, wake);
                PERFORM pg_notify('procrastinate_any_queue_v1', wake);
            END IF;
        ELSE
            UPDATE broseph.job_records SET last_error = reason, updated_at = now()
             WHERE id = lost.rid;
            IF lost.abort_requested THEN
                action := 'cancelled';
                PERFORM procrastinate_finish_job_v1(lost.id, 'aborted', false);
            ELSIF lost.attempts + 1 < coalesce(lost.max_attempts, 1) THEN
                action := 'retried';
                PERFORM procrastinate_retry_job_v2(lost.id, now(), NULL, NULL, NULL);
                -- procrastinate only notifies on INSERT; wake the workers like its trigger would.
                PERFORM pg_notify('procrastinate_queue_v1#' || lost.queue_name, wake);
                PERFORM pg_notify('procrastinate_any_queue_v1', wake);
            ELSE
                action := 'failed';
                PERFORM procrastinate_finish_job_v1(lost.id, 'failed', false);
            END IF;
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
