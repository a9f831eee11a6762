-- The worker's grouped finish and its retry with the attempt's note (the seam, broseph/engine.py;
-- migrations/0031). Every array is cast: a column of NULLs alone has no type psycopg could name.

-- name: finish_jobs
-- End a group of jobs in one statement, each with its record's note (NULL: none); returns the
-- ids finished (a job no longer todo/doing is left out, and finished alone by the seam).
SELECT id
  FROM broseph.finish_jobs(%(job_ids)s::bigint[],
                           %(statuses)s::text[]::public.procrastinate_job_status[],
                           %(delete_jobs)s::boolean[], %(record_ids)s::uuid[],
                           %(errors)s::text[], %(results)s::text[]::jsonb[],
                           %(progresses)s::integer[], %(messages)s::text[]) AS id;

-- name: retry_job_noted
-- procrastinate's retry of one job (procrastinate_retry_job_v2) with the attempt's note written
-- first, in the same statement.
SELECT broseph.retry_job(%(job_id)s, %(retry_at)s, %(new_priority)s, %(new_queue_name)s,
                         %(new_lock)s, %(record_id)s, %(error)s, %(result)s::jsonb,
                         %(progress)s, %(message)s);
