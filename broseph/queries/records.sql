-- name: load_record
-- The job record a worker is about to run, with its type's retry budget.
SELECT r.id, r.job_type, r.params, r.status, r.attempts,
       coalesce(r.max_attempts, t.max_attempts) AS max_attempts, r.source, r.traceparent,
       r.tracestate
  FROM broseph.job_records r
  JOIN broseph.job_types t ON t.name = r.job_type
 WHERE r.id = %(record_id)s;

-- name: fetch_jobs_with_record
-- procrastinate's fetch_job (the same columns; the seam, broseph/engine.py, runs this in its
-- place) for up to %(k)s jobs (the worker's free slots; migrations/0031: all but the first wait
-- unstarted in the worker's buffer), each with its record (record_*, NULL for a job without one),
-- in the same statement: the lifecycle needs no round trip of its own to load it. The outer
-- SELECT reads the records as of the statement's start — before the fetch's trigger moved the
-- first to processing, which changes neither its params, nor its source, nor its retry budget.
-- The fetch is ours (migrations/0016, 0031): a job waiting for a later time does not block a due
-- job with the same lock. In fetch order: the first row is the job the asking slot runs.
WITH job AS MATERIALIZED (
    SELECT * FROM broseph.fetch_jobs(%(queues)s::varchar[], %(worker_id)s, %(k)s)
)
SELECT job.id, job.status, job.task_name, job.priority, job.lock, job.queueing_lock, job.args,
       job.scheduled_at, job.queue_name, job.attempts, job.worker_id,
       r.id AS record_id, r.job_type AS record_job_type, r.params AS record_params,
       coalesce(r.max_attempts, t.max_attempts) AS record_max_attempts,
       r.source AS record_source, r.traceparent AS record_traceparent,
       r.tracestate AS record_tracestate
  FROM job
  LEFT JOIN broseph.job_records r ON r.procrastinate_job_id = job.id
  LEFT JOIN broseph.job_types t ON t.name = r.job_type
 -- Committed without waiting for the WAL flush (synchronous_commit off for this transaction
 -- only): a fetch lost in a crash of the database server leaves the job todo and its record
 -- pending, as they were; the worker's finish then finds no `doing` job and counts it as
 -- recorded, and the job runs again (handlers are idempotent). Finish and retry stay
 -- synchronous: see docs/reliability.md ("Commit modes") for why.
 CROSS JOIN (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
 ORDER BY job.priority DESC, job.id;

-- name: report_progress
-- Progress of a running job (0–100 plus a short message), for clients polling the record.
-- Committed without waiting for the WAL flush (synchronous_commit off for this transaction only):
-- visible at once all the same, and made durable by the job's own finish, whose synchronous
-- commit flushes all WAL written before it. A crash before that re-runs the job anyway.
UPDATE broseph.job_records
   SET progress = %(progress)s, progress_message = %(message)s, updated_at = now()
  FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
 WHERE id = %(record_id)s AND status = 'processing';

-- name: note_outcome
-- What an attempt leaves on the record besides its status (which moves with the queue row,
-- trigger): the reason of a failure and/or the handler's short machine-readable result (NULL
-- keeps each), with the progress update the reporter had not written yet (NULL: none) under the
-- same condition as report_progress — one statement. Committed like report_progress: the
-- job's finish, retry or failure that follows commits synchronously, flushing this too.
UPDATE broseph.job_records
   SET last_error = coalesce(%(error)s, last_error),
       result = coalesce(%(result)s, result),
       progress = CASE WHEN status = 'processing' THEN coalesce(%(progress)s, progress)
                       ELSE progress END,
       progress_message = CASE WHEN status = 'processing'
                               THEN coalesce(%(message)s, progress_message)
                               ELSE progress_message END,
       updated_at = now()
  FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
 WHERE id = %(record_id)s;

-- name: job_types
-- The SQL registry of job types (written from the Python catalogue, broseph/jobs/registry.py).
SELECT name, task_name, queue, fields, coalesce_fields, coalesce_delay, lock_fields,
       max_attempts, description
  FROM broseph.job_types
 ORDER BY name;

-- name: write_job_type
-- One job type's registry row from the Python catalogue: inserted, or updated where it differs.
-- Returns true when the row was written (absent or different), nothing when it already matched.
INSERT INTO broseph.job_types AS t
    (name, task_name, queue, fields, coalesce_fields, coalesce_delay, lock_fields, max_attempts,
     description)
VALUES (%(name)s, %(task_name)s, %(queue)s, %(fields)s, %(coalesce_fields)s::text[],
        %(coalesce_delay)s::interval, %(lock_fields)s::text[], %(max_attempts)s, %(description)s)
ON CONFLICT (name) DO UPDATE
   SET task_name = excluded.task_name, queue = excluded.queue, fields = excluded.fields,
       coalesce_fields = excluded.coalesce_fields, coalesce_delay = excluded.coalesce_delay,
       lock_fields = excluded.lock_fields, max_attempts = excluded.max_attempts,
       description = excluded.description
 WHERE (t.task_name, t.queue, t.fields, t.coalesce_fields, t.coalesce_delay, t.lock_fields,
        t.max_attempts, t.description)
       IS DISTINCT FROM
       (excluded.task_name, excluded.queue, excluded.fields, excluded.coalesce_fields,
        excluded.coalesce_delay, excluded.lock_fields, excluded.max_attempts,
        excluded.description)
RETURNING true AS written;

-- name: enqueue
-- The SQL contract, one job (see migrations/0004_enqueue.sql); the caller's trace context, if
-- any, is stored with the record (0024).
SELECT broseph.enqueue(%(job_type)s, %(params)s, %(idempotency_key)s, %(run_at)s,
                       %(priority)s, %(source)s, %(retry)s, %(traceparent)s,
                       %(tracestate)s) AS id;

-- name: enqueue_many
-- The SQL contract, many jobs of one type; record ids in input order.
SELECT broseph.enqueue_many(%(job_type)s, %(params)s, %(idempotency_keys)s, %(run_at)s,
                            %(priority)s, %(source)s, %(retry)s, %(traceparent)s,
                            %(tracestate)s) AS ids;
