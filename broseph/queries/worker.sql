-- The worker's grouped finish and its retry with the attempt's note (the seam, broseph/engine.py;
-- migrations/0031). Every array is cast: a column of NULLs alone has no type psycopg could name.

-- name: finish_jobs
-- End a group of jobs in one statement, each with its record's note (NULL: none), and start the
-- fetched jobs the worker's slots took from its buffer; returns (id, outcome): finished, started
-- or aborted (a cancel reached it before it started). A job no longer todo/doing is left out,
-- and finished alone by the seam.
SELECT job_id AS id, outcome
  FROM broseph.finish_jobs(%(job_ids)s::bigint[],
                           %(statuses)s::text[]::public.procrastinate_job_status[],
                           %(delete_jobs)s::boolean[], %(record_ids)s::uuid[],
                           %(errors)s::text[], %(results)s::text[]::jsonb[],
                           %(progresses)s::integer[], %(messages)s::text[],
                           %(start_ids)s::bigint[]);

-- name: release_jobs
-- A stopping worker's fetched jobs it never started, back to waiting unspent (migrations/0031).
SELECT id FROM broseph.release_jobs(%(worker_id)s, %(job_ids)s::bigint[]) AS id;

-- name: retry_job_noted
-- procrastinate's retry of one job (procrastinate_retry_job_v2) with the attempt's note written
-- first, in the same statement.
SELECT broseph.retry_job(%(job_id)s, %(retry_at)s, %(new_priority)s, %(new_queue_name)s,
                         %(new_lock)s, %(record_id)s, %(error)s, %(result)s::jsonb,
                         %(progress)s, %(message)s);
