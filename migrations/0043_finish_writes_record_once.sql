-- 0043 — A finish writes its record once: the lifecycle's note and the end status in one update.
--
-- Until now a job's finish wrote its record twice in the finishing statement (migrations/0032):
-- broseph.finish_jobs wrote the attempt's note (result, error, last progress), then the queue
-- row's end status fired the record trigger (broseph.sync_job_record), which wrote the status,
-- finished_at, progress 100 … — two row versions, each logged in full (WAL per job, bench 3).
-- Now finish_jobs writes the note and the end together, exactly as the two did (the same
-- values: the trigger's rules for succeeded / failed / aborted, the note kept only while the
-- record is processing), and the trigger leaves a record alone that is already at that end
-- status with finished_at = now() — ended in this very transaction, by that update. A finish
-- that deletes its queue row (delete_job) keeps the old order: the note, then the delete
-- trigger's rule.
--
-- broseph.sync_job_record: 0031's, plus that one condition. broseph.finish_jobs: 0032's, with
-- the note folded into the end for finishes that keep their queue row.

CREATE OR REPLACE FUNCTION broseph.sync_job_record() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    target text;
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

    target := CASE NEW.status
                  WHEN 'todo' THEN 'retrying'
                  WHEN 'doing' THEN 'processing'
                  WHEN 'succeeded' THEN 'completed'
                  WHEN 'failed' THEN 'failed'
                  ELSE 'cancelled'
              END;
    UPDATE broseph.job_records AS r
       SET status = target,
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
     WHERE r.procrastinate_job_id = NEW.id
       -- Ended by broseph.finish_jobs in this transaction, note and end in one write: done.
       AND NOT (target IN ('completed', 'failed', 'cancelled')
                AND r.status = target
                AND r.finished_at = now());
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION broseph.finish_jobs(
    job_ids bigint[],
    end_statuses public.procrastinate_job_status[],
    delete_jobs boolean[],
    record_ids uuid[],
    errors text[],
    results jsonb[],
    progresses integer[],
    messages text[],
    start_ids bigint[]
)
    RETURNS TABLE (job_id bigint, outcome text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    finishable bigint[];
    startable bigint[];
    aborted bigint[];
BEGIN
    IF EXISTS (SELECT 1 FROM unnest(end_statuses) AS s(status)
                WHERE s.status IS NULL OR s.status NOT IN ('succeeded', 'failed', 'aborted')) THEN
        RAISE 'End status should be either "succeeded", "failed" or "aborted" (job ids: %)',
            job_ids;
    END IF;
    -- Every row this statement changes, locked in id order (no deadlock with a rescue or
    -- another worker's group).
    PERFORM 1
       FROM public.procrastinate_jobs AS j
      WHERE j.id = ANY (job_ids || start_ids)
      ORDER BY j.id
        FOR UPDATE;
    SELECT coalesce(array_agg(j.id), '{}') INTO finishable
      FROM public.procrastinate_jobs AS j
     WHERE j.id = ANY (job_ids) AND j.status IN ('todo', 'doing');

    -- Starts: as in 0032.
    WITH gone AS (
        DELETE FROM broseph.unstarted_jobs AS u
         USING public.procrastinate_jobs AS j
         WHERE u.job_id = ANY (start_ids) AND j.id = u.job_id AND j.status = 'doing'
        RETURNING j.id, j.abort_requested
    )
    SELECT coalesce(array_agg(gone.id) FILTER (WHERE NOT gone.abort_requested), '{}'),
           coalesce(array_agg(gone.id) FILTER (WHERE gone.abort_requested), '{}')
      INTO startable, aborted
      FROM gone;
    UPDATE broseph.job_records AS r
       SET status = 'processing',
           attempts = j.attempts + 1,
           started_at = coalesce(r.started_at, now()),
           next_attempt_at = NULL,
           finished_at = NULL,
           coalesce_key = NULL,
           updated_at = now()
      FROM public.procrastinate_jobs AS j
     WHERE j.id = ANY (startable) AND r.procrastinate_job_id = j.id;
    UPDATE public.procrastinate_jobs AS j
       SET status = 'aborted', abort_requested = false
     WHERE j.id = ANY (aborted);

    -- A finish that keeps its queue row: the note and the end in one write (the trigger's
    -- rules for the end; the note's progress kept only while the record is processing, as
    -- 0032 wrote it before the end). The trigger then finds the record ended and leaves it.
    UPDATE broseph.job_records AS r
       SET status = CASE n.end_status WHEN 'succeeded' THEN 'completed'
                                      WHEN 'failed' THEN 'failed'
                                      ELSE 'cancelled' END,
           attempts = greatest(r.attempts,
                               CASE j.status WHEN 'doing' THEN j.attempts + 1
                                             ELSE j.attempts END),
           next_attempt_at = NULL,
           finished_at = now(),
           result = coalesce(n.result, r.result),
           progress = CASE WHEN n.end_status = 'succeeded' THEN 100
                           WHEN r.status = 'processing' THEN coalesce(n.progress, r.progress)
                           ELSE r.progress END,
           progress_message = CASE WHEN r.status = 'processing'
                                   THEN coalesce(n.message, r.progress_message)
                                   ELSE r.progress_message END,
           last_error = CASE WHEN n.end_status = 'succeeded' THEN NULL
                             WHEN n.end_status = 'aborted'
                                 THEN coalesce(n.error, r.last_error, 'cancelled')
                             ELSE coalesce(n.error, r.last_error) END,
           coalesce_key = NULL,
           updated_at = now()
      FROM unnest(job_ids, end_statuses, delete_jobs, record_ids, errors, results, progresses,
                  messages)
               AS n(job_id, end_status, delete_job, record_id, error, result, progress, message),
           public.procrastinate_jobs AS j
     WHERE n.record_id IS NOT NULL
       AND NOT n.delete_job
       AND r.id = n.record_id
       AND r.procrastinate_job_id = n.job_id
       AND j.id = n.job_id
       AND n.job_id = ANY (finishable);

    -- A finish that deletes its queue row: the note first, then the delete trigger (0032).
    UPDATE broseph.job_records AS r
       SET last_error = coalesce(n.error, r.last_error),
           result = coalesce(n.result, r.result),
           progress = CASE WHEN r.status = 'processing' THEN coalesce(n.progress, r.progress)
                           ELSE r.progress END,
           progress_message = CASE WHEN r.status = 'processing'
                                   THEN coalesce(n.message, r.progress_message)
                                   ELSE r.progress_message END,
           updated_at = now()
      FROM unnest(job_ids, delete_jobs, record_ids, errors, results, progresses, messages)
               AS n(job_id, delete_job, record_id, error, result, progress, message)
     WHERE n.record_id IS NOT NULL
       AND n.delete_job
       AND r.id = n.record_id
       AND n.job_id = ANY (finishable);

    DELETE FROM public.procrastinate_jobs AS j
     USING unnest(job_ids, delete_jobs) AS f(id, delete_job)
     WHERE f.delete_job AND j.id = f.id AND j.id = ANY (finishable);

    UPDATE public.procrastinate_jobs AS j
       SET status = f.end_status,
           abort_requested = false,
           attempts = CASE j.status WHEN 'doing' THEN j.attempts + 1 ELSE j.attempts END
      FROM unnest(job_ids, end_statuses, delete_jobs) AS f(id, end_status, delete_job)
     WHERE NOT f.delete_job AND j.id = f.id AND j.id = ANY (finishable);

    RETURN QUERY
    SELECT f.id, 'finished' FROM unnest(finishable) AS f(id)
    UNION ALL SELECT s.id, 'started' FROM unnest(startable) AS s(id)
    UNION ALL SELECT a.id, 'aborted' FROM unnest(aborted) AS a(id);
END;
$$;
