-- name: rescue_lost_jobs
-- Retry (or fail, or finish as cancelled) the jobs of workers whose heartbeat is too old
-- (migrations/0009_operations.sql).
SELECT job_id, record_id, worker_id, action
  FROM broseph.rescue_lost_jobs(%(lost_after_seconds)s);

-- name: prune_finished_jobs
-- One batch of pruning: the next `batch` final events older than the cutoff, in (at, id) order
-- after the previous batch's last one (keyset: the partial index of 0009 serves it), and of
-- their jobs those finished with nothing newer than the cutoff: deleted with their events
-- (ON DELETE CASCADE) and their job records. Rows locked by anyone else are skipped. Ids go
-- through arrays so every step is an index probe per job, never a scan of a whole table.
WITH candidates AS MATERIALIZED (
    SELECT e.id, e.job_id, e.at
      FROM procrastinate_events e
     WHERE e.type IN ('succeeded', 'failed', 'cancelled', 'aborted')
       AND e.at < %(cutoff)s
       AND (e.at, e.id) > (%(after_at)s::timestamptz, %(after_id)s::bigint)
     ORDER BY e.at, e.id
     LIMIT %(batch)s
), doomed AS (
    SELECT j.id
      FROM procrastinate_jobs j
     WHERE j.id = ANY (ARRAY(SELECT job_id FROM candidates))
       AND j.status IN ('succeeded', 'failed', 'cancelled', 'aborted')
       AND (SELECT max(last.at) FROM procrastinate_events last WHERE last.job_id = j.id)
           < %(cutoff)s
       FOR UPDATE SKIP LOCKED
), jobs AS (
    DELETE FROM procrastinate_jobs
     WHERE id = ANY (ARRAY(SELECT id FROM doomed))
    RETURNING id
), records AS (
    DELETE FROM broseph.job_records
     WHERE procrastinate_job_id = ANY (ARRAY(SELECT id FROM jobs))
    RETURNING id
), last AS (
    SELECT at, id FROM candidates ORDER BY at DESC, id DESC LIMIT 1
)
SELECT (SELECT count(*) FROM candidates) AS examined,
       (SELECT at FROM last) AS last_at, (SELECT id FROM last) AS last_id,
       (SELECT count(*) FROM jobs) AS jobs, (SELECT count(*) FROM records) AS records;

-- name: prune_orphan_records
-- One batch of finished job records older than the cutoff whose queue row is already gone
-- (deleted before it finished, or pruned without its record): the next `batch` of records
-- created before the cutoff, finished before it too, in (created_at, id) order after the previous
-- batch's last one (the index of 0026: a record is created before it finishes, and no index
-- reads finished_at, which the finishing update changes). A record imported with a created_at
-- later than its finished_at waits until its created_at is older than the cutoff too.
WITH candidates AS MATERIALIZED (
    SELECT r.id, r.procrastinate_job_id, r.created_at
      FROM broseph.job_records r
     WHERE r.created_at < %(cutoff)s
       AND (r.created_at, r.id) > (%(after_at)s::timestamptz, %(after_id)s::uuid)
       AND r.finished_at < %(cutoff)s
       AND r.status IN ('completed', 'failed', 'cancelled')
     ORDER BY r.created_at, r.id
     LIMIT %(batch)s
), records AS (
    DELETE FROM broseph.job_records
     WHERE id = ANY (ARRAY(
        SELECT c.id FROM candidates c
         WHERE NOT EXISTS (SELECT 1 FROM procrastinate_jobs j
                            WHERE j.id = c.procrastinate_job_id)))
    RETURNING id
), last AS (
    SELECT created_at AS at, id FROM candidates ORDER BY created_at DESC, id DESC LIMIT 1
)
SELECT (SELECT count(*) FROM candidates) AS examined,
       (SELECT at FROM last) AS last_at, (SELECT id FROM last) AS last_id,
       (SELECT count(*) FROM records) AS records;

-- name: queue_depth
-- Queue rows by queue and status (what is waiting, running, done), for health and metrics.
SELECT queue_name AS queue, status::text AS status, count(*) AS jobs
  FROM procrastinate_jobs
 GROUP BY queue_name, status
 ORDER BY queue_name, status;

-- name: oldest_pending
-- Per queue: jobs that could run now but have not started, and the age in seconds of the oldest
-- (runnable since its scheduled time, or since it was deferred). A job stored with scheduled_at
-- '-infinity' (refused at enqueue since migrations/0015, but rows may predate it) counts as
-- unscheduled: infinite times cannot be subtracted.
WITH runnable AS (
    SELECT queue_name,
           min(id) FILTER (WHERE scheduled_at IS NULL OR NOT isfinite(scheduled_at))
               AS first_unscheduled,
           min(scheduled_at) FILTER (WHERE isfinite(scheduled_at)) AS first_scheduled,
           count(*) AS jobs
      FROM procrastinate_jobs
     WHERE status = 'todo' AND (scheduled_at IS NULL OR scheduled_at <= now())
     GROUP BY queue_name
)
SELECT r.queue_name AS queue, r.jobs,
       extract(epoch FROM now() - least(
           r.first_scheduled,
           (SELECT min(e.at) FROM procrastinate_events e
             WHERE e.job_id = r.first_unscheduled AND isfinite(e.at))
       ))::float8 AS seconds
  FROM runnable r
 ORDER BY r.queue_name;

-- name: workers
-- Registered workers with the age of their heartbeat and how many jobs each is running.
SELECT w.id, w.last_heartbeat,
       extract(epoch FROM now() - w.last_heartbeat)::float8 AS heartbeat_age,
       (SELECT count(*) FROM procrastinate_jobs j
         WHERE j.worker_id = w.id AND j.status = 'doing') AS running
  FROM procrastinate_workers w
 ORDER BY w.id;

-- name: show_record
-- One job record, whole.
SELECT r.*, coalesce(r.max_attempts, t.max_attempts) AS max_attempts
  FROM broseph.job_records r
  JOIN broseph.job_types t ON t.name = r.job_type
 WHERE r.id = %(record_id)s;

-- name: record_of_job
-- The record of a queue row (none for periodic ticks and raw procrastinate jobs).
SELECT id FROM broseph.job_records WHERE procrastinate_job_id = %(job_id)s;

-- name: show_queue_row
-- One procrastinate queue row.
SELECT id, queue_name, task_name, priority, lock, queueing_lock, args, status::text AS status,
       scheduled_at, attempts, abort_requested, worker_id
  FROM procrastinate_jobs
 WHERE id = %(job_id)s;

-- name: job_events
-- The procrastinate events of one queue row, oldest first: the timeline of `jobs show`.
SELECT type::text AS type, at
  FROM procrastinate_events
 WHERE job_id = %(job_id)s
 ORDER BY at, id;

-- name: retry_failed_job
-- Put a failed job back in the queue now (procrastinate's own function; event `retried`) and
-- wake the workers: procrastinate notifies only on INSERT.
SELECT procrastinate_retry_job_v2(%(job_id)s, now(), NULL, NULL, NULL),
       pg_notify('procrastinate_queue_v1#' || j.queue_name,
                 json_build_object('type', 'job_inserted', 'job_id', j.id)::text),
       pg_notify('procrastinate_any_queue_v1',
                 json_build_object('type', 'job_inserted', 'job_id', j.id)::text)
  FROM procrastinate_jobs j
 WHERE j.id = %(job_id)s;

-- name: record_stats
-- Job records by job type and status.
SELECT job_type, status, count(*) AS jobs
  FROM broseph.job_records
 GROUP BY job_type, status
 ORDER BY job_type, status;

-- name: security_check_installed
-- Whether the lock-down's check exists (migrations/always/lockdown.sql, run by broseph migrate).
SELECT to_regprocedure('broseph.security_findings()') IS NOT NULL;

-- name: security_findings
-- Every way a client role reaches the queue or broseph's internals, RLS switched off where
-- broseph put it, or a grant clients need gone — one readable line each.
SELECT problem FROM broseph.security_findings();
