-- adopt/0007 — 0007_notifications.sql for a database whose tables the app owns.
--
-- `broseph migrate` applies this INSTEAD of 0007 once it has adopted the app's tables (see
-- broseph/adoption.py and adopt/0002_domain.sql), and records 0007 as applied. It is 0007
-- statement for statement, except that the columns and indexes 0007 adds to the app's
-- public.notifications and public.prompts are added only where the app has none by that name
-- (many apps have their own updated_at): ADD COLUMN IF NOT EXISTS, CREATE INDEX IF NOT EXISTS.
-- Columns the app already has were checked for the type broseph needs before anything ran.
-- `broseph migrate` lists every column, index and trigger this adds to an app table.
--
-- 0007 — Push notifications: the SendNotification job type, per-device delivery bookkeeping, the
-- development outbox, and the triggers that notify members in the same transaction as the change.
--
-- SendNotification {user_id, type, data {group_id, message_id, prompt_id, friend_id}}
--   (broseph/jobs/send_notification.py). coalesce_fields and lock_fields are (user_id, type, data):
--   while a job with the same user, type and data is still pending, another enqueue returns that
--   job, and two such jobs never run at once. The messages trigger sends new_message with data
--   {group_id} only, so every burst of messages in a group leaves at most ONE pending new_message
--   job per member and group; the push then counts the messages itself ("5 new messages").
--   coalesce_delay is the debounce the messages trigger applies (run_at = now() + delay).
--
-- public.notifications (0002) gets one row per SendNotification job that reached a decision
-- (record_id): sent, skipped (with the reason), failed, or pending while devices are retried.
-- broseph.notification_deliveries: one row per (notification, device) — a retry resends only
-- the devices without a final row, and `unanswered` bounds duplicates after a crash (see the
-- table's comment).
-- broseph.push_outbox: what the development sender "delivered" (no FCM credentials).
-- NotifyMembers: the fan-out job that keeps a large group's inserting transaction short (below).

INSERT INTO broseph.job_types
    (name, task_name, queue, fields, coalesce_fields, coalesce_delay, lock_fields, max_attempts,
     description)
VALUES (
    'SendNotification', 'SendNotification', 'notifications',
    '{"user_id": {"type": "uuid"},
      "type": {"type": "enum",
               "values": ["new_message", "prompt_reminder", "friend_joined", "new_prompt"]},
      "data": {"type": "object", "fields": {
          "group_id": {"type": "uuid", "required": false},
          "message_id": {"type": "uuid", "required": false},
          "prompt_id": {"type": "uuid", "required": false},
          "friend_id": {"type": "uuid", "required": false}}}}',
    ARRAY['user_id', 'type', 'data'], interval '5 seconds', ARRAY['user_id', 'type', 'data'], 8,
    'One push notification to every live device of one user, built from current database state, '
    'honouring preferences, muted groups and quiet hours; FCM through firebase-admin, or the '
    'development outbox without credentials.'
);

ALTER TABLE public.notifications
    -- The SendNotification job that decided this notification (no FK: records are pruned).
    ADD COLUMN IF NOT EXISTS record_id uuid UNIQUE,
    -- new_message: how many messages the push announced, and the newest one's time (the next
    -- new_message notification of this user and group counts from there).
    ADD COLUMN IF NOT EXISTS message_count integer,
    ADD COLUMN IF NOT EXISTS covered_until timestamptz,
    ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX IF NOT EXISTS notifications_new_message_idx
    ON public.notifications (user_id, group_id, covered_until)
    WHERE type = 'new_message';

-- status: sending    an FCM request is (or was, if the worker died) in flight
--         delivered  FCM accepted it
--         retry      a passing error (quota, unavailable, internal): sent again on the next attempt
--         dead_token the device is gone (its device_tokens row is disabled)
--         failed     permanent for this message (e.g. APNs credentials)
--         unconfirmed sent `unanswered` times without an answer recorded: not sent again
-- unanswered: requests whose outcome was never recorded — the worker died between the FCM call
-- and this row's update. A device is sent to only while unanswered < 2, so whatever happens it
-- receives a notification at most twice; without a crash, exactly once.
CREATE TABLE broseph.notification_deliveries (
    notification_id uuid NOT NULL REFERENCES public.notifications (id) ON DELETE CASCADE,
    device_id uuid NOT NULL REFERENCES public.device_tokens (id) ON DELETE CASCADE,
    status text NOT NULL
        CHECK (status IN ('sending', 'delivered', 'retry', 'dead_token', 'failed', 'unconfirmed')),
    sends smallint NOT NULL DEFAULT 0,
    unanswered smallint NOT NULL DEFAULT 0 CHECK (unanswered >= 0),
    message_id text,
    error_code text,
    reason text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (notification_id, device_id)
);
CREATE INDEX notification_deliveries_device_idx ON broseph.notification_deliveries (device_id);

-- The development sender's deliveries (PushSender without FCM credentials). Never holds the
-- device identifier: the device id is enough to find it.
CREATE TABLE broseph.push_outbox (
    id bigserial PRIMARY KEY,
    device_id uuid NOT NULL,
    target_kind text NOT NULL CHECK (target_kind IN ('fid', 'token')),
    notification_type text NOT NULL,
    title text NOT NULL,
    body text NOT NULL,
    data jsonb NOT NULL,
    collapse_key text,
    message_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX push_outbox_created_idx ON broseph.push_outbox (created_at);

-- The reminder tick looks at the prompts of the last two days (broseph/queries/notifications.sql,
-- reminder_targets).
CREATE INDEX IF NOT EXISTS prompts_created_idx ON public.prompts (created_at);

GRANT ALL ON broseph.notification_deliveries, broseph.push_outbox TO service_role;
GRANT USAGE ON SEQUENCE broseph.push_outbox_id_seq TO service_role;

-- --- Triggers: notify in the same transaction as the change -------------------------------------
-- Statement-level with transition tables: a fixed number of enqueue_many calls per statement,
-- whatever the number of rows. SECURITY DEFINER: clients (role authenticated) insert messages
-- but may not enqueue; the trigger does it for them.
--
-- Group size: a job costs its enqueue (~0.25 ms here), so one SendNotification per member of a
-- 1,000-member group would add a quarter of a second to the inserting transaction. Groups with
-- up to broseph.notify_inline_max() members to notify get their SendNotification jobs right in
-- the transaction; larger ones get ONE NotifyMembers job (same transaction, so just as certain)
-- that the worker fans out (broseph/jobs/notify_members.py). bench/notify_trigger.py measures both.

-- NotifyMembers {group_id, type, prompt_id?, friend_id?, sender_id?}: SendNotification for every
-- non-muted member of a large group (new_message: but the sender; friend_joined: those who were
-- there before the friend). Coalesced while pending, so a burst in a large group is one fan-out
-- per sender.
INSERT INTO broseph.job_types
    (name, task_name, queue, fields, coalesce_fields, coalesce_delay, lock_fields, max_attempts,
     description)
VALUES (
    'NotifyMembers', 'NotifyMembers', 'notifications',
    '{"group_id": {"type": "uuid"},
      "type": {"type": "enum", "values": ["new_message", "friend_joined", "new_prompt"]},
      "prompt_id": {"type": "uuid", "required": false},
      "friend_id": {"type": "uuid", "required": false},
      "sender_id": {"type": "uuid", "required": false}}',
    ARRAY['group_id', 'type', 'sender_id', 'friend_id', 'prompt_id'], NULL, NULL, 5,
    'Fans a notification about a large group out to its members: one SendNotification each.'
);

-- broseph.notify_inline_max() → the largest number of members a trigger notifies itself.
-- Change it with CREATE OR REPLACE FUNCTION (it is read on every trigger call).
CREATE FUNCTION broseph.notify_inline_max() RETURNS integer
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT 25 $$;

-- broseph.notify_inline(group_id) → true when the group's non-muted members fit the inline limit.
-- Counts at most limit + 1 rows, so a large group costs no more than a small one.
CREATE FUNCTION broseph.notify_inline(p_group_id uuid) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public
AS $$
    SELECT count(*) <= broseph.notify_inline_max()
      FROM (SELECT 1 FROM public.group_members
             WHERE group_id = p_group_id AND NOT muted
             LIMIT broseph.notify_inline_max() + 1) AS members
$$;

-- broseph.notify_new_messages() — AFTER INSERT ON public.messages.
-- new_message {group_id} to every member of the messages' groups who did not send all of them
-- (the sender never hears about their own message), muted members skipped, debounced by the
-- type's coalesce_delay. Members who already have a pending job for the group are filtered out
-- first, so a burst costs one index probe per member after its first message; enqueue_many's
-- own coalescing settles any race. Large groups: NotifyMembers per (group, sender).
CREATE FUNCTION broseph.notify_new_messages() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
DECLARE
    jt broseph.job_types := broseph.job_type('SendNotification');
    small uuid[];
    large uuid[];
BEGIN
    SELECT coalesce(array_agg(g.group_id) FILTER (WHERE g.inline), ARRAY[]::uuid[]),
           coalesce(array_agg(g.group_id) FILTER (WHERE NOT g.inline), ARRAY[]::uuid[])
      INTO small, large
      FROM (SELECT group_id, broseph.notify_inline(group_id) AS inline
              FROM (SELECT DISTINCT group_id FROM new_messages) AS d) AS g;
    PERFORM broseph.enqueue_many(
        jt.name,
        ARRAY(
            SELECT t.params
              FROM (SELECT DISTINCT gm.user_id, gm.group_id,
                           jsonb_build_object(
                               'user_id', gm.user_id,
                               'type', 'new_message',
                               'data', jsonb_build_object('group_id', gm.group_id)) AS params
                      FROM (SELECT DISTINCT group_id, sender_id FROM new_messages) AS m
                      JOIN public.group_members gm
                        ON gm.group_id = m.group_id AND gm.user_id <> m.sender_id
                     WHERE NOT gm.muted AND m.group_id = ANY (small)) AS t
             WHERE NOT EXISTS (
                       SELECT 1 FROM broseph.job_records r
                        WHERE r.coalesce_key = broseph.field_key(jt.name, jt.coalesce_fields, t.params)
                          AND r.status = 'pending')
             -- Key order, like enqueue_many's: concurrent statements wait, never deadlock.
             ORDER BY t.user_id, t.group_id),
        NULL, now() + jt.coalesce_delay, 0, 'trigger');
    PERFORM broseph.enqueue_many(
        'NotifyMembers',
        ARRAY(
            SELECT jsonb_build_object(
                       'group_id', m.group_id, 'type', 'new_message', 'sender_id', m.sender_id)
              FROM (SELECT DISTINCT group_id, sender_id FROM new_messages) AS m
             WHERE m.group_id = ANY (large)
             ORDER BY m.group_id, m.sender_id),
        NULL, now() + jt.coalesce_delay, 0, 'trigger');
    RETURN NULL;
END;
$$;

CREATE TRIGGER broseph_messages_notify
    AFTER INSERT ON public.messages
    REFERENCING NEW TABLE AS new_messages
    FOR EACH STATEMENT
    EXECUTE FUNCTION broseph.notify_new_messages();

-- broseph.notify_members_joined() — AFTER INSERT ON public.group_members.
-- friend_joined {group_id, friend_id} to the members who were there before (not the newcomers of
-- the same statement, so a group created with its members in one INSERT notifies nobody), muted
-- members skipped. Large groups: NotifyMembers per newcomer.
CREATE FUNCTION broseph.notify_members_joined() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
DECLARE
    small uuid[];
    large uuid[];
BEGIN
    -- Only groups that had members before this statement have anyone to tell.
    SELECT coalesce(array_agg(g.group_id) FILTER (WHERE g.inline), ARRAY[]::uuid[]),
           coalesce(array_agg(g.group_id) FILTER (WHERE NOT g.inline), ARRAY[]::uuid[])
      INTO small, large
      FROM (SELECT d.group_id, broseph.notify_inline(d.group_id) AS inline
              FROM (SELECT DISTINCT group_id FROM new_members) AS d
             WHERE EXISTS (SELECT 1 FROM public.group_members gm
                            WHERE gm.group_id = d.group_id
                              AND NOT EXISTS (SELECT 1 FROM new_members fresh
                                               WHERE fresh.group_id = gm.group_id
                                                 AND fresh.user_id = gm.user_id))) AS g;
    PERFORM broseph.enqueue_many(
        'SendNotification',
        ARRAY(
            SELECT jsonb_build_object(
                       'user_id', gm.user_id,
                       'type', 'friend_joined',
                       'data', jsonb_build_object('group_id', n.group_id, 'friend_id', n.user_id))
              FROM new_members n
              JOIN public.group_members gm ON gm.group_id = n.group_id
             WHERE NOT gm.muted AND n.group_id = ANY (small)
               AND NOT EXISTS (SELECT 1 FROM new_members fresh
                                WHERE fresh.group_id = gm.group_id AND fresh.user_id = gm.user_id)
             ORDER BY gm.user_id, n.group_id, n.user_id),
        NULL, NULL, 0, 'trigger');
    PERFORM broseph.enqueue_many(
        'NotifyMembers',
        ARRAY(
            SELECT jsonb_build_object(
                       'group_id', n.group_id, 'type', 'friend_joined', 'friend_id', n.user_id)
              FROM new_members n
             WHERE n.group_id = ANY (large)
             ORDER BY n.group_id, n.user_id),
        NULL, NULL, 0, 'trigger');
    RETURN NULL;
END;
$$;

CREATE TRIGGER broseph_group_members_notify
    AFTER INSERT ON public.group_members
    REFERENCING NEW TABLE AS new_members
    FOR EACH STATEMENT
    EXECUTE FUNCTION broseph.notify_members_joined();

-- broseph.notify_new_prompts() — AFTER INSERT ON public.prompts (GeneratePrompt's store, or a
-- manual prompt). new_prompt {group_id, prompt_id} to every member, muted members skipped, under
-- the idempotency key new_prompt:<user_id>:<prompt_id> (large groups: one NotifyMembers under
-- new_prompt:<prompt_id>). Rows an INSERT … ON CONFLICT DO NOTHING skipped are not in the
-- transition table, so a re-run of GeneratePrompt notifies nobody twice.
CREATE FUNCTION broseph.notify_new_prompts() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
DECLARE
    params jsonb[];
    keys text[];
BEGIN
    SELECT coalesce(array_agg(t.params ORDER BY t.key), ARRAY[]::jsonb[]),
           coalesce(array_agg(t.key ORDER BY t.key), ARRAY[]::text[])
      INTO params, keys
      FROM (SELECT jsonb_build_object(
                       'user_id', gm.user_id,
                       'type', 'new_prompt',
                       'data', jsonb_build_object('group_id', p.group_id, 'prompt_id', p.id))
                       AS params,
                   'new_prompt:' || gm.user_id::text || ':' || p.id::text AS key
              FROM (SELECT np.id, np.group_id FROM new_prompts np
                     WHERE broseph.notify_inline(np.group_id)) AS p
              JOIN public.group_members gm ON gm.group_id = p.group_id
             WHERE NOT gm.muted) AS t;
    PERFORM broseph.enqueue_many('SendNotification', params, keys, NULL, 0, 'trigger');
    SELECT coalesce(array_agg(t.params ORDER BY t.key), ARRAY[]::jsonb[]),
           coalesce(array_agg(t.key ORDER BY t.key), ARRAY[]::text[])
      INTO params, keys
      FROM (SELECT jsonb_build_object(
                       'group_id', np.group_id, 'type', 'new_prompt', 'prompt_id', np.id) AS params,
                   'new_prompt:' || np.id::text AS key
              FROM new_prompts np
             WHERE NOT broseph.notify_inline(np.group_id)) AS t;
    PERFORM broseph.enqueue_many('NotifyMembers', params, keys, NULL, 0, 'trigger');
    RETURN NULL;
END;
$$;

CREATE TRIGGER broseph_prompts_notify
    AFTER INSERT ON public.prompts
    REFERENCING NEW TABLE AS new_prompts
    FOR EACH STATEMENT
    EXECUTE FUNCTION broseph.notify_new_prompts();

-- Trigger functions are not callable directly; keep them out of PUBLIC's reach all the same.
REVOKE EXECUTE ON FUNCTION broseph.notify_inline(uuid) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION broseph.notify_new_messages() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION broseph.notify_members_joined() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION broseph.notify_new_prompts() FROM PUBLIC;
