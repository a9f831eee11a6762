-- 0028 — procrastinate's per-row INSERT triggers on procrastinate_jobs, replaced by one
-- statement-level trigger that does the same work over the whole statement's rows.
--
-- procrastinate puts two AFTER INSERT … FOR EACH ROW triggers on its queue table:
--   procrastinate_jobs_notify_queue_job_inserted_v1  two pg_notify calls per job
--   procrastinate_trigger_status_events_insert_v1    one procrastinate_events row ('deferred') per job
-- Each row pays a plpgsql call for each (≈ 15 µs/row measured): a daily fan-out of 100,000 jobs
-- spends seconds in them. broseph.queue_rows_inserted() does both over the statement's transition
-- table: one INSERT … SELECT of the same 'deferred' events, and ONE notification per queue that
-- received jobs, in procrastinate's own format ({"type": "job_inserted", "job_id": <id>} on
-- 'procrastinate_queue_v1#<queue>' and 'procrastinate_any_queue_v1'): a procrastinate worker
-- only reads "type" to wake its fetch loop, so one notification per queue wakes every idle
-- worker of that queue at once, as one per job did.
--
-- procrastinate's upgrade files may re-create its triggers; migrations/always/procrastinate.sql
-- (run by every `broseph migrate`) drops the originals again and puts ours back, and `broseph
-- health` (broseph/queries/procrastinate.sql, procrastinate_dependents) reports while they are
-- back or ours is missing. procrastinate_trigger_scheduled_events_v1 (INSERT OR UPDATE, rows with
-- scheduled_at only) stays: its WHEN clause is evaluated without a plpgsql call for the others,
-- and a transition table cannot serve a trigger of two events.

CREATE FUNCTION broseph.queue_rows_inserted() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    -- What procrastinate_trigger_function_status_events_insert_v1 writes, per 'todo' row.
    INSERT INTO public.procrastinate_events (job_id, type)
    SELECT n.id, 'deferred'::public.procrastinate_job_event_type
      FROM inserted_jobs n
     WHERE n.status = 'todo'::public.procrastinate_job_status;
    -- What procrastinate_notify_queue_job_inserted_v1 sends, once per queue instead of per job.
    PERFORM pg_notify(c.channel, q.payload)
       FROM (SELECT n.queue_name,
                    json_build_object('type', 'job_inserted', 'job_id', min(n.id))::text AS payload
               FROM inserted_jobs n
              WHERE n.status = 'todo'::public.procrastinate_job_status
              GROUP BY n.queue_name) AS q
      CROSS JOIN LATERAL (VALUES ('procrastinate_queue_v1#' || q.queue_name),
                                 ('procrastinate_any_queue_v1')) AS c (channel);
    RETURN NULL;
END;
$$;
REVOKE ALL ON FUNCTION broseph.queue_rows_inserted() FROM PUBLIC;

DROP TRIGGER IF EXISTS procrastinate_jobs_notify_queue_job_inserted_v1 ON public.procrastinate_jobs;
DROP TRIGGER IF EXISTS procrastinate_trigger_status_events_insert_v1 ON public.procrastinate_jobs;
CREATE TRIGGER broseph_queue_rows_inserted
    AFTER INSERT ON public.procrastinate_jobs
    REFERENCING NEW TABLE AS inserted_jobs
    FOR EACH STATEMENT
    EXECUTE FUNCTION broseph.queue_rows_inserted();
