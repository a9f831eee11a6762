-- 0005 — ProcessEngagement: daily message / engagement analytics per group.
--
-- Enqueued (a) by the statement-level trigger below whenever messages are inserted — coalesced so
-- a burst in one group leaves ONE pending job per (group, local day), delayed by coalesce_delay so
-- the burst lands in it — and (b) by the worker's hourly periodic task for every active group's
-- local "yesterday" (idempotency key engagement:<group>:<date>).

INSERT INTO broseph.job_types
    (name, task_name, queue, fields, coalesce_fields, coalesce_delay, lock_fields, max_attempts,
     description)
VALUES (
    'ProcessEngagement', 'ProcessEngagement', 'engagement',
    '{"group_id": {"type": "uuid"}, "local_date": {"type": "date"}}',
    ARRAY['group_id', 'local_date'], interval '10 seconds', ARRAY['group_id', 'local_date'], 5,
    'Message count, active members, messages per member and prompt response rate of one group '
    'for one local day, upserted into public.group_engagement_daily.'
);

-- SECURITY DEFINER: clients (role authenticated) insert messages but may not enqueue directly;
-- the trigger enqueues on their behalf, in their transaction.
CREATE FUNCTION broseph.on_messages_inserted() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
BEGIN
    PERFORM broseph.enqueue_many(
        'ProcessEngagement',
        ARRAY(
            SELECT DISTINCT jsonb_build_object(
                       'group_id', m.group_id,
                       'local_date', (m.created_at AT TIME ZONE g.time_zone)::date)
              FROM new_messages m
              JOIN public.groups g ON g.id = m.group_id
             ORDER BY 1),
        NULL,
        now() + (SELECT coalesce_delay FROM broseph.job_types WHERE name = 'ProcessEngagement'),
        0, 'trigger');
    RETURN NULL;
END;
$$;

CREATE TRIGGER broseph_messages_engagement
    AFTER INSERT ON public.messages
    REFERENCING NEW TABLE AS new_messages
    FOR EACH STATEMENT
    EXECUTE FUNCTION broseph.on_messages_inserted();
