-- 0012 — procrastinate's fetch stays fast when a burst of jobs arrives.
--
-- procrastinate's fetch (one call per job taken) picks the first waiting job in priority order
-- whose lock is free. Its plan is made on the statistics of the moment — and a worker plans it
-- while the queue is nearly empty, then meets a burst of thousands of jobs before autovacuum
-- re-analyzes the table (the 08:00 wave, a daily fan-out). The plan for "almost no waiting jobs"
-- reads EVERY waiting job, sorts them, and checks each one's lock against the whole backlog, so
-- a worker ran about one job at a time through the wave (bench/wave.py). Sorting and bitmap
-- scans are disabled for this function only: the only plan left walks the (priority, id) index
-- of waiting jobs and stops at the first free one, whatever the statistics. Same rows, same
-- order, same locking; only the plan changes. A procrastinate upgrade that replaces the
-- function drops this setting (its own plan comes back); bench/wave.py would show it.
-- (Kept out of 0010, which had already been applied: a migration never changes once released.)
ALTER FUNCTION public.procrastinate_fetch_job_v2(character varying[], bigint)
    SET enable_sort = off
    SET enable_bitmapscan = off;

-- The lock check of that fetch ("no running or earlier waiting job with the same lock") probes
-- by lock; procrastinate's only index holding the lock of waiting jobs leads with id, so each
-- probe scanned every waiting job. Every broseph job type but one has lock_fields, so every job
-- paid it.
CREATE INDEX procrastinate_jobs_waiting_lock_idx ON public.procrastinate_jobs (lock)
    WHERE status IN ('todo', 'doing');
