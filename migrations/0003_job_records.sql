-- 0003 — Job types and job records, kept in step with procrastinate's queue rows.
--
-- broseph.job_types   the registry the SQL face of enqueue validates against (one row per job
--                     type; the Python catalogue in broseph/jobs/ must agree — a test checks it).
-- broseph.job_records one row per enqueued job: what clients and operators look at. Its status is
--                     changed ONLY by the trigger on procrastinate_jobs below, i.e. in the same
--                     transaction as the queue row, so the two can never disagree.

CREATE TABLE broseph.job_types (
    name text PRIMARY KEY,
    -- procrastinate task name and queue the job runs under
    task_name text NOT NULL UNIQUE,
    queue text NOT NULL DEFAULT 'default',
    -- Field spec: {"field": {"type": "uuid|date|text|enum|object|integer", "required": bool,
    --              "values": [..] (enum), "max_length": n (text), "fields": {..} (object)}}
    fields jsonb NOT NULL,
    -- While a job of this type with the same values of these fields is still pending, a new
    -- enqueue returns that job instead of adding one (debounce / coalesce).
    coalesce_fields text[],
    -- Debounce delay for producers that want a burst to land in one job (the messages trigger
    -- enqueues with run_at = now() + coalesce_delay); enqueue itself applies no delay.
    coalesce_delay interval,
    -- Jobs sharing these field values never run at the same time (procrastinate lock).
    lock_fields text[],
    max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    description text NOT NULL DEFAULT ''
);

CREATE TABLE broseph.job_records (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    job_type text NOT NULL REFERENCES broseph.job_types (name),
    params jsonb NOT NULL,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'processing', 'retrying', 'completed', 'failed', 'cancelled')),
    progress smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    progress_message text,
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer,
    last_error text,
    result jsonb,
    idempotency_key text UNIQUE,
    coalesce_key text,
    source text NOT NULL DEFAULT 'sql',
    procrastinate_job_id bigint UNIQUE,
    -- Subjects, lifted out of params for RLS and lookups.
    group_id uuid GENERATED ALWAYS AS ((params ->> 'group_id')::uuid) STORED,
    user_id uuid GENERATED ALWAYS AS ((params ->> 'user_id')::uuid) STORED,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    next_attempt_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- At most one *pending* job per coalesce key; once it starts, a new one may queue behind it.
-- (procrastinate's queueing_lock is not used: its unique index also covers retried jobs, so a
-- retry would collide with a newer job — see shared/notes/dependencies.md.)
CREATE UNIQUE INDEX job_records_coalesce_pending_idx ON broseph.job_records (coalesce_key)
    WHERE status = 'pending';
CREATE INDEX job_records_status_idx ON broseph.job_records (status, job_type);
CREATE INDEX job_records_group_idx ON broseph.job_records (group_id) WHERE group_id IS NOT NULL;
CREATE INDEX job_records_user_idx ON broseph.job_records (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX job_records_finished_idx ON broseph.job_records (finished_at)
    WHERE finished_at IS NOT NULL;

-- broseph.sync_job_record() — trigger on procrastinate_jobs (UPDATE OF status, DELETE).
-- Maps the queue row's status onto the record in the same transaction:
--   todo→doing: processing (attempts = attempt number); doing→todo: retrying (next_attempt_at);
--   succeeded: completed; failed: failed; cancelled/aborted: cancelled;
--   a queue row deleted before it finished: cancelled, so no record says pending for a job that
--   no longer exists.
CREATE FUNCTION broseph.sync_job_record() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE broseph.job_records
           SET status = 'cancelled',
               finished_at = now(),
               updated_at = now(),
               last_error = coalesce(last_error, 'queue row deleted before the job finished')
         WHERE procrastinate_job_id = OLD.id
           AND status IN ('pending', 'processing', 'retrying');
        RETURN OLD;
    END IF;

    UPDATE broseph.job_records AS r
       SET status = CASE NEW.status
                        WHEN 'todo' THEN 'retrying'
                        WHEN 'doing' THEN 'processing'
                        WHEN 'succeeded' THEN 'completed'
                        WHEN 'failed' THEN 'failed'
                        ELSE 'cancelled'
                    END,
           attempts = CASE WHEN NEW.status = 'doing' THEN NEW.attempts + 1
                           ELSE greatest(r.attempts, NEW.attempts) END,
           started_at = CASE WHEN NEW.status = 'doing' THEN coalesce(r.started_at, now())
                             ELSE r.started_at END,
           next_attempt_at = CASE WHEN NEW.status = 'todo' THEN coalesce(NEW.scheduled_at, now())
                                  ELSE NULL END,
           finished_at = CASE WHEN NEW.status IN ('todo', 'doing') THEN NULL ELSE now() END,
           progress = CASE WHEN NEW.status = 'succeeded' THEN 100 ELSE r.progress END,
           last_error = CASE
                            WHEN NEW.status = 'succeeded' THEN NULL
                            WHEN NEW.status IN ('cancelled', 'aborted')
                                THEN coalesce(r.last_error, 'cancelled')
                            ELSE r.last_error
                        END,
           updated_at = now()
     WHERE r.procrastinate_job_id = NEW.id;
    RETURN NEW;
END;
$$;

CREATE TRIGGER broseph_sync_job_record_update
    AFTER UPDATE OF status ON public.procrastinate_jobs
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION broseph.sync_job_record();

CREATE TRIGGER broseph_sync_job_record_delete
    AFTER DELETE ON public.procrastinate_jobs
    FOR EACH ROW
    WHEN (OLD.status IN ('todo', 'doing'))
    EXECUTE FUNCTION broseph.sync_job_record();

-- Clients read records about themselves or their groups; nothing else.
ALTER TABLE broseph.job_records ENABLE ROW LEVEL SECURITY;
CREATE POLICY job_records_read ON broseph.job_records FOR SELECT TO authenticated
    USING (user_id = auth.uid() OR (group_id IS NOT NULL AND broseph.is_member(group_id)));
GRANT SELECT ON broseph.job_records TO authenticated;
GRANT SELECT ON broseph.job_types TO authenticated;
GRANT ALL ON broseph.job_records, broseph.job_types TO service_role;
