-- 0020 — Job status the apps can read: public.broseph_job_status.
--
-- Supabase's API (PostgREST, so supabase-js) exposes the public schema only, and the job records
-- live in schema broseph: no mobile client could read them. This view is their read path:
--
--   supabase.from('broseph_job_status').select('id, status, progress, progress_message')
--
-- It runs with the CALLER's rights (security_invoker, PostgreSQL 15+), so job_records' RLS
-- policy (migrations/0003) decides the rows: a member sees their groups' jobs and their own
-- (user_id), nobody else's; anon has no privilege on it at all. Without security_invoker a view
-- reads as its owner — the migrating role, which bypasses RLS — and would show every record.
--
-- What a member may see — exactly the view's columns: the record and subject ids, job type,
-- status, progress and its message (written by the job types, for people), attempts and times.
-- Not: params (beyond the subject ids lifted out of them), last_error (exception text of the
-- service), result, idempotency / coalesce keys, source, the queue row id, max_attempts.
--
-- The same columns are all `authenticated` may SELECT on broseph.job_records (column
-- privileges replace the table-wide SELECT of 0003): the view needs them (a security_invoker
-- view checks the base table as the caller), and Supabase Realtime sends a subscriber only the
-- columns its role may SELECT, so a `postgres_changes` subscription to broseph.job_records
-- carries these columns and RLS still picks the rows. The table's place in the
-- supabase_realtime publication (with these columns as its column list) and every grant here
-- are kept by migrations/always/lockdown.sql on every `broseph migrate`: it reads the column
-- list from this view.

DO $$
BEGIN
    IF current_setting('server_version_num')::integer < 150000 THEN
        RAISE EXCEPTION 'broseph needs PostgreSQL 15 or later (this server is %): the job status view runs with its reader''s rights (security_invoker) and Realtime publishes a column list',
            current_setting('server_version');
    END IF;
END;
$$;

CREATE VIEW public.broseph_job_status WITH (security_invoker = true) AS
SELECT id, job_type, status, progress, progress_message, group_id, user_id, attempts,
       created_at, started_at, finished_at, next_attempt_at, updated_at
  FROM broseph.job_records;

COMMENT ON VIEW public.broseph_job_status IS
    'Status of the jobs about you or your groups (RLS of broseph.job_records applies: security_invoker).';

-- On Supabase, default privileges have just granted everything on the view to anon and
-- authenticated (and the lock-down would revoke it): only a member's SELECT stays.
REVOKE ALL ON public.broseph_job_status FROM PUBLIC, anon, authenticated;
GRANT SELECT ON public.broseph_job_status TO authenticated, service_role;

REVOKE SELECT ON broseph.job_records FROM authenticated;
GRANT SELECT (id, job_type, status, progress, progress_message, group_id, user_id, attempts,
              created_at, started_at, finished_at, next_attempt_at, updated_at)
    ON broseph.job_records TO authenticated;
