-- name: find_records
-- One page of job records matching a filter, newest first (broseph.find_records, 0018: index
-- range scans only), with the job type's attempt budget.
SELECT r.id, r.job_type, r.status, r.attempts,
       coalesce(r.max_attempts, t.max_attempts) AS max_attempts, r.progress, r.source,
       r.created_at, r.started_at, r.finished_at, r.next_attempt_at, r.last_error,
       r.procrastinate_job_id AS job_id, r.group_id, r.user_id, r.idempotency_key
  FROM broseph.find_records(%(statuses)s::text[], %(job_type)s::text, %(since)s::timestamptz,
                            %(until)s::timestamptz, %(group_id)s::uuid, %(user_id)s::uuid,
                            %(idempotency_key)s::text, %(before_at)s::timestamptz,
                            %(before_id)s::uuid, %(max_rows)s::integer) AS r
  JOIN broseph.job_types t ON t.name = r.job_type
 ORDER BY r.created_at DESC, r.id DESC;

-- name: count_records
-- How many job records match a filter (counting stops at `cap` when one is given).
SELECT count(*) AS n
  FROM broseph.find_records(%(statuses)s::text[], %(job_type)s::text, %(since)s::timestamptz,
                            %(until)s::timestamptz, %(group_id)s::uuid, %(user_id)s::uuid,
                            %(idempotency_key)s::text, NULL, NULL, %(cap)s::integer);

-- name: retry_failed_jobs
-- Put failed queue rows back in the queue now (procrastinate's own function; event `retried`,
-- record `retrying`). Rows another session holds are skipped, never waited for; rows no longer
-- failed are left alone. Returns the rows retried (the caller wakes their queues).
WITH targets AS MATERIALIZED (
    SELECT j.id, j.queue_name
      FROM procrastinate_jobs j
     WHERE j.id = ANY (%(job_ids)s::bigint[]) AND j.status = 'failed'
     ORDER BY j.id
       FOR UPDATE SKIP LOCKED
)
SELECT t.id, t.queue_name, procrastinate_retry_job_v2(t.id, now(), NULL, NULL, NULL)::text
  FROM targets t;

-- name: wake_queues
-- Wake the workers of these queues (procrastinate notifies only on INSERT): one notification
-- per queue, naming one of its jobs, like procrastinate's own insert trigger sends.
SELECT pg_notify('procrastinate_queue_v1#' || q.queue,
                 json_build_object('type', 'job_inserted', 'job_id', q.job_id)::text),
       pg_notify('procrastinate_any_queue_v1',
                 json_build_object('type', 'job_inserted', 'job_id', q.job_id)::text)
  FROM unnest(%(queues)s::text[], %(job_ids)s::bigint[]) AS q (queue, job_id);

-- name: cancel_jobs
-- Cancel queue rows (procrastinate's own function, as `jobs cancel` uses it): a waiting one is
-- cancelled now, a running one gets an abort request its worker acts on. Rows that are neither
-- waiting nor running are left alone. Returns each row's status before and whether it changed.
WITH targets AS MATERIALIZED (
    SELECT j.id, j.status::text AS was
      FROM procrastinate_jobs j
     WHERE j.id = ANY (%(job_ids)s::bigint[]) AND j.status IN ('todo', 'doing')
     ORDER BY j.id
)
SELECT t.id, t.was, procrastinate_cancel_job_v1(t.id, true, false) IS NOT NULL AS done
  FROM targets t;
