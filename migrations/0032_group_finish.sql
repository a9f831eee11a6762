-- 0032 — Group commit of the worker's finishes, with the lifecycle's writes in the same statement.
--
-- procrastinate's worker finishes each job with its own statement and transaction
-- (procrastinate_finish_job_v1), and broseph's lifecycle wrote the attempt's result / error /
-- last progress before it with another (note_outcome): two transactions per job. The seam
-- (broseph/engine.py, WorkerJobManager) now collects the finishes of a worker for up to ~2 ms and
-- ends them all here, in one statement, each with what the lifecycle had to write on its record:
-- the record still changes in the queue row's transaction (trigger, migrations/0003), as before.
--
-- broseph.finish_jobs(...) → (job id, finished | started | aborted). It also starts the fetched
-- jobs the worker's slots took from its buffer (start_ids, migrations/0031: committed before
-- their handlers begin, in the same group). Per finished job, procrastinate_finish_job_v1's
-- semantics exactly: end status succeeded / failed / aborted (anything else is an error, like
-- theirs), abort_requested cleared, attempts + 1 when it was `doing`, or the row deleted when
-- delete_job; only a job in `todo` or `doing` is finished. A job that is not (already finished,
-- rescued meanwhile) is left out of the answer (not `finished`) instead of failing the whole group: the seam then
-- finishes it alone with procrastinate's own function, which raises its usual error or — after a
-- lost connection — counts as already recorded. Its note is not written here either (the alone
-- path writes it). The rows are locked in id order first (no deadlock with a rescue or another
-- group), and the notes are written while the records are still `processing`, as note_outcome
-- did (progress is kept only then; a success then sets it to 100 through the trigger).
--
-- broseph.retry_job(...) — procrastinate_retry_job_v2 with the attempt's note written first, in
-- the same statement (retries stay one job per statement: they are the rare path).
--
-- Grants: service_role (the worker connects as it or as the owner), like broseph.fetch_job.
CREATE FUNCTION broseph.finish_jobs(
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

    -- Starts: a fetched job a slot takes (migrations/0031). Still held by its worker: it starts
    -- (its record moves to processing, as the trigger does at a fetch) unless a cancel asked for
    -- its abort meanwhile — it then ends aborted without running, and without an attempt.
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
           -- Leaving pending drops the coalesce key (0026): a later job may coalesce anew.
           coalesce_key = NULL,
           updated_at = now()
      FROM public.procrastinate_jobs AS j
     WHERE j.id = ANY (startable) AND r.procrastinate_job_id = j.id;
    UPDATE public.procrastinate_jobs AS j
       SET status = 'aborted', abort_requested = false
     WHERE j.id = ANY (aborted);

    -- The lifecycle's writes first: while the records are still processing (note_outcome).
    UPDATE broseph.job_records AS r
       SET last_error = coalesce(n.error, r.last_error),
           result = coalesce(n.result, r.result),
           progress = CASE WHEN r.status = 'processing' THEN coalesce(n.progress, r.progress)
                           ELSE r.progress END,
           progress_message = CASE WHEN r.status = 'processing'
                                   THEN coalesce(n.message, r.progress_message)
                                   ELSE r.progress_message END,
           updated_at = now()
      FROM unnest(job_ids, record_ids, errors, results, progresses, messages)
               AS n(job_id, record_id, error, result, progress, message)
     WHERE n.record_id IS NOT NULL
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

REVOKE EXECUTE ON FUNCTION broseph.finish_jobs(
    bigint[], public.procrastinate_job_status[], boolean[], uuid[], text[], jsonb[], integer[],
    text[], bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION broseph.finish_jobs(
    bigint[], public.procrastinate_job_status[], boolean[], uuid[], text[], jsonb[], integer[],
    text[], bigint[]) TO service_role;

CREATE FUNCTION broseph.retry_job(
    job_id bigint,
    retry_at timestamp with time zone,
    new_priority integer,
    new_queue_name character varying,
    new_lock character varying,
    record_id uuid,
    error text,
    result jsonb,
    progress integer,
    message text
)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    UPDATE broseph.job_records AS r
       SET last_error = coalesce(retry_job.error, r.last_error),
           result = coalesce(retry_job.result, r.result),
           progress = CASE WHEN r.status = 'processing'
                           THEN coalesce(retry_job.progress, r.progress) ELSE r.progress END,
           progress_message = CASE WHEN r.status = 'processing'
                                   THEN coalesce(retry_job.message, r.progress_message)
                                   ELSE r.progress_message END,
           updated_at = now()
     WHERE r.id = retry_job.record_id;
    -- Raises procrastinate's "Job was not found or …" (rolling the note back with it).
    PERFORM public.procrastinate_retry_job_v2(
        retry_job.job_id, retry_job.retry_at, retry_job.new_priority, retry_job.new_queue_name,
        retry_job.new_lock);
END;
$$;

REVOKE EXECUTE ON FUNCTION broseph.retry_job(
    bigint, timestamp with time zone, integer, character varying, character varying, uuid, text,
    jsonb, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION broseph.retry_job(
    bigint, timestamp with time zone, integer, character varying, character varying, uuid, text,
    jsonb, integer, text) TO service_role;
