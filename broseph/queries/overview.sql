-- name: overview_active
-- Waiting and running job records per job type, all of them: the unfinished queue rows
-- (procrastinate's partial index of todo/doing rows) and their records (one probe each), bounded
-- by how many are unfinished — never by how many have finished. A record is pending, processing
-- or retrying exactly while its queue row is todo or doing (the sync trigger, 0003/0026); the
-- record's own status says which.
WITH active AS MATERIALIZED (
    SELECT r.job_type, r.status
      FROM procrastinate_jobs j
      JOIN broseph.job_records r ON r.procrastinate_job_id = j.id
     WHERE j.status IN ('todo', 'doing')
)
SELECT t.name AS job_type,
       count(a.status) FILTER (WHERE a.status = 'pending') AS pending,
       count(a.status) FILTER (WHERE a.status = 'processing') AS processing,
       count(a.status) FILTER (WHERE a.status = 'retrying') AS retrying
  FROM broseph.job_types t
  LEFT JOIN active a ON a.job_type = t.name
 GROUP BY t.name
 ORDER BY t.name;

-- name: overview_recent
-- Job records created since a time, per job type, status and hour (UTC): one range of
-- (created_at, id) (0026), each row's type and status read from the row, counted per hour in
-- memory — bounded by the window, not the table.
SELECT r.job_type, r.status,
       date_bin('1 hour', r.created_at, '2000-01-01 00:00+00') AS hour, count(*) AS jobs
  FROM broseph.job_records r
 WHERE r.created_at >= %(since)s
 GROUP BY 1, 2, 3
 ORDER BY 1, 2, 3;

-- name: queue_active_depth
-- Waiting and running queue rows per queue (and how many of the waiting ones are scheduled for
-- later): procrastinate's partial index of unfinished rows, never the finished ones.
SELECT queue_name AS queue, status::text AS status, count(*) AS jobs,
       count(*) FILTER (WHERE scheduled_at > now()) AS scheduled
  FROM procrastinate_jobs
 WHERE status IN ('todo', 'doing')
 GROUP BY queue_name, status
 ORDER BY queue_name, status;

-- name: periodic_ticks
-- The last tick of each periodic task (procrastinate keeps only the latest per task): when it
-- was due, its queue row's state and when that last changed.
SELECT d.task_name, d.periodic_id, d.defer_timestamp, d.job_id, j.status::text AS status,
       (SELECT max(e.at) FROM procrastinate_events e WHERE e.job_id = d.job_id) AS changed_at
  FROM procrastinate_periodic_defers d
  LEFT JOIN procrastinate_jobs j ON j.id = d.job_id
 ORDER BY d.task_name, d.periodic_id, d.defer_timestamp DESC;

-- name: quarantine_open
-- Quarantined ingress jobs not yet replayed (the partial index of 0008).
SELECT count(*) AS n FROM broseph.ingress_quarantine WHERE replayed_at IS NULL;

-- name: running_jobs
-- Queue rows being run now, with their worker and record (procrastinate's partial index of
-- unfinished rows).
SELECT j.id AS job_id, j.worker_id, j.task_name, j.queue_name, j.attempts, j.abort_requested,
       r.id AS record_id, r.job_type, r.progress, r.progress_message, r.started_at
  FROM procrastinate_jobs j
  LEFT JOIN broseph.job_records r ON r.procrastinate_job_id = j.id
 WHERE j.status = 'doing'
 ORDER BY j.worker_id NULLS FIRST, j.id;

-- name: change_marker
-- What changes when anything the dashboard shows changes: the newest procrastinate event (every
-- status change of every job writes one), the quarantine's newest row and open count, the
-- workers. Cheap: index ends and two tiny tables.
SELECT (SELECT max(id) FROM procrastinate_events) AS event,
       (SELECT max(id) FROM broseph.ingress_quarantine) AS quarantined,
       (SELECT count(*) FROM broseph.ingress_quarantine WHERE replayed_at IS NULL) AS open,
       (SELECT array_agg(id ORDER BY id) FROM procrastinate_workers) AS workers;

-- name: quarantine_entries
-- Quarantined ingress jobs for the dashboard, newest first, with the first 4,000 characters of
-- the payload as received (a quarantined payload may be megabytes) and its full length.
SELECT id, delivery_key, source, queue, job_id, job_name, reason, received_at, replayed_at,
       record_id, left(raw, 4000) AS raw, length(raw) AS raw_length
  FROM broseph.ingress_quarantine
 WHERE %(include_replayed)s OR replayed_at IS NULL
 ORDER BY received_at DESC, id DESC
 LIMIT %(limit)s;

-- name: job_type_names
-- The registered job types (the jobs page's type filter).
SELECT name FROM broseph.job_types ORDER BY name;
