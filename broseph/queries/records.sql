-- name: load_record
-- The job record a worker is about to run, with its type's retry budget.
SELECT r.id, r.job_type, r.params, r.status, r.attempts,
       coalesce(r.max_attempts, t.max_attempts) AS max_attempts, r.source
  FROM broseph.job_records r
  JOIN broseph.job_types t ON t.name = r.job_type
 WHERE r.id = %(record_id)s;

-- name: report_progress
-- Progress of a running job (0–100 plus a short message), for clients polling the record.
UPDATE broseph.job_records
   SET progress = %(progress)s, progress_message = %(message)s, updated_at = now()
 WHERE id = %(record_id)s AND status = 'processing';

-- name: note_error
-- The reason of a failed attempt; the status itself moves with the queue row (trigger).
UPDATE broseph.job_records
   SET last_error = %(error)s, updated_at = now()
 WHERE id = %(record_id)s;

-- name: note_result
-- A short machine-readable outcome of a finished handler (counts, ids, skip reasons).
UPDATE broseph.job_records
   SET result = %(result)s, updated_at = now()
 WHERE id = %(record_id)s;

-- name: job_types
-- The SQL registry of job types (checked against the Python catalogue).
SELECT name, task_name, queue, fields, coalesce_fields, lock_fields, max_attempts
  FROM broseph.job_types
 ORDER BY name;

-- name: enqueue
-- The SQL contract, one job (see migrations/0004_enqueue.sql).
SELECT broseph.enqueue(%(job_type)s, %(params)s, %(idempotency_key)s, %(run_at)s,
                       %(priority)s, %(source)s, %(retry)s) AS id;

-- name: enqueue_many
-- The SQL contract, many jobs of one type; record ids in input order.
SELECT broseph.enqueue_many(%(job_type)s, %(params)s, %(idempotency_keys)s, %(run_at)s,
                            %(priority)s, %(source)s, %(retry)s) AS ids;
