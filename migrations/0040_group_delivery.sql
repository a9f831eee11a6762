-- 0040 — One delivery job per group event (issue 14 part 2).
--
-- Until now every push was its own SendNotification job: the triggers of 0007/0037 enqueued one
-- per member (through a NotifyMembers fan-out beyond broseph.notify_inline_max() members). Now a
-- new message burst, a member joining and a new prompt each enqueue ONE DeliverGroupEvent
-- {group_id, type, prompt_id?, friend_id?} (broseph/jobs/deliver_group_event.py; its
-- broseph.job_types row is written from the catalogue at migrate), whatever the group's size, and
-- the worker decides, records and pushes for every member set-based. The per-user notification
-- rows stay the user-visible trace: one per (job, member), so record_id is no longer unique on
-- its own. SendNotification and NotifyMembers stay runnable (queued jobs of theirs, quiet-hours
-- reschedules and prompt reminders are per user).

-- One notification per member per deciding job (SendNotification: one member; DeliverGroupEvent:
-- every member of the group).
ALTER TABLE public.notifications DROP CONSTRAINT IF EXISTS notifications_record_id_key;
CREATE UNIQUE INDEX notifications_record_user_idx ON public.notifications (record_id, user_id);

-- broseph.notify_prompts_published(prompt ids) — the delivery of these prompts: one
-- DeliverGroupEvent new_prompt per prompt whose group has anyone to notify, under the key
-- new_prompt:<prompt_id> (broseph.idempotency.new_prompt_fanout), so a prompt published twice, or
-- by two statements, is delivered once; inside the job each member gets one notification.
-- Called by 0038's prompts trigger (for rows inserted published) and by
-- broseph.publish_due_prompts; this replaces 0038's per-member body.
CREATE OR REPLACE FUNCTION broseph.notify_prompts_published(p_prompt_ids uuid[]) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    params jsonb[];
    keys text[];
BEGIN
    SELECT coalesce(array_agg(t.params ORDER BY t.key), ARRAY[]::jsonb[]),
           coalesce(array_agg(t.key ORDER BY t.key), ARRAY[]::text[])
      INTO params, keys
      FROM (SELECT jsonb_build_object(
                       'group_id', p.group_id, 'type', 'new_prompt', 'prompt_id', p.id) AS params,
                   'new_prompt:' || p.id::text AS key
              FROM public.prompts p
             WHERE p.id = ANY (p_prompt_ids)
               -- broseph.notification_recipients(group, 'new_prompt') is not empty, asked as an
               -- index probe: the function (not inlined) would list every member first.
               AND EXISTS (SELECT 1 FROM public.group_members gm
                            WHERE gm.group_id = p.group_id AND NOT gm.muted)) AS t;
    PERFORM broseph.enqueue_many('DeliverGroupEvent', params, keys, NULL, 0, 'trigger');
END;
$$;

REVOKE ALL ON FUNCTION broseph.notify_prompts_published(uuid[]) FROM PUBLIC;

-- new_message: one DeliverGroupEvent per group of the statement that has anyone to tell (a
-- member other than its senders), debounced by the type's coalesce_delay. Groups whose delivery is
-- still pending are filtered out first (one index probe per group), so a burst leaves ONE pending
-- job per group; enqueue_many's own coalescing settles any race. The job counts, per member, the
-- messages they have not heard about.
CREATE OR REPLACE FUNCTION broseph.notify_new_messages() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    jt broseph.job_types := broseph.job_type('DeliverGroupEvent');
BEGIN
    PERFORM broseph.enqueue_many(
        jt.name,
        ARRAY(
            SELECT t.params
              FROM (SELECT g.group_id,
                           jsonb_build_object('group_id', g.group_id, 'type', 'new_message')
                               AS params
                      FROM (SELECT DISTINCT group_id FROM new_messages) AS g
                     -- Someone to tell (broseph.notification_recipients' rule, as a probe that
                     -- stops at the first member): a member, not muted, who sent none of them.
                     WHERE EXISTS (
                               SELECT 1 FROM public.group_members gm
                                WHERE gm.group_id = g.group_id AND NOT gm.muted
                                  AND gm.user_id NOT IN (SELECT m.sender_id FROM new_messages m
                                                          WHERE m.group_id = g.group_id))) AS t
             WHERE NOT EXISTS (
                       SELECT 1 FROM broseph.job_records r
                        WHERE r.coalesce_key = broseph.field_key(jt.name, jt.coalesce_fields, t.params)
                          AND r.status = 'pending')
             -- Key order, like enqueue_many's: concurrent statements wait, never deadlock.
             ORDER BY t.group_id),
        NULL, now() + jt.coalesce_delay, 0, 'trigger');
    RETURN NULL;
END;
$$;

-- friend_joined: one DeliverGroupEvent per newcomer whose group has a member who joined before
-- them (the rule of broseph.notification_recipients: a group created with its members in one
-- INSERT notifies nobody).
CREATE OR REPLACE FUNCTION broseph.notify_members_joined() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    PERFORM broseph.enqueue_many(
        'DeliverGroupEvent',
        ARRAY(
            SELECT jsonb_build_object(
                       'group_id', n.group_id, 'type', 'friend_joined', 'friend_id', n.user_id)
              FROM new_members n
             WHERE EXISTS (SELECT 1 FROM public.group_members gm
                            WHERE gm.group_id = n.group_id AND NOT gm.muted
                              AND gm.joined_at < n.joined_at)
             ORDER BY n.group_id, n.user_id),
        NULL, NULL, 0, 'trigger');
    RETURN NULL;
END;
$$;
