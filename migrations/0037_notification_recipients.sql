-- 0037 — Who is notified about a group: one rule, in one function.
--
-- Until now the rule was written twice: in the triggers of 0007 (inline, for groups of up to
-- broseph.notify_inline_max() members) and in the NotifyMembers fan-out's query (the worker, for
-- larger groups), and the two differed for friend_joined — the triggers told every member but the
-- newcomers of the same statement, the fan-out only those who joined before the friend. Both now
-- read broseph.notification_recipients(); tests/test_notification_recipients.py checks that the
-- inline and the fan-out path reach the same members, case by case.
--
-- The rule: the group's members, muted ones skipped; new_message: not the sender; friend_joined:
-- only the members who joined before the friend (by joined_at, the one order the worker can see
-- as well as the trigger: newcomers of one statement or transaction share it, so a group created
-- with its members notifies nobody), none when the friend is no longer a member. Preferences and
-- quiet hours are not part of it: SendNotification decides those when it runs, for both paths.

-- broseph.notification_recipients(group, type, sender, friend) → the user ids to notify.
-- STABLE, not SECURITY DEFINER: it runs with its caller's rights (the triggers' owner, the worker).
CREATE FUNCTION broseph.notification_recipients(
    p_group_id uuid, p_type text, p_sender_id uuid DEFAULT NULL, p_friend_id uuid DEFAULT NULL
) RETURNS TABLE (user_id uuid)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT gm.user_id
      FROM public.group_members gm
     WHERE gm.group_id = p_group_id AND NOT gm.muted
       AND gm.user_id IS DISTINCT FROM p_sender_id
       AND (p_type <> 'friend_joined'
            OR gm.joined_at < (SELECT f.joined_at FROM public.group_members f
                                WHERE f.group_id = p_group_id AND f.user_id = p_friend_id))
$$;

REVOKE ALL ON FUNCTION broseph.notification_recipients(uuid, text, uuid, uuid) FROM PUBLIC;

-- 0007's notify_new_messages with its recipients from the rule; the rest unchanged (the pending
-- filter, the coalesce delay, key order, NotifyMembers per (group, sender) for large groups).
CREATE OR REPLACE FUNCTION broseph.notify_new_messages() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
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
              FROM (SELECT DISTINCT r.user_id, m.group_id,
                           jsonb_build_object(
                               'user_id', r.user_id,
                               'type', 'new_message',
                               'data', jsonb_build_object('group_id', m.group_id)) AS params
                      FROM (SELECT DISTINCT group_id, sender_id FROM new_messages) AS m
                     CROSS JOIN LATERAL broseph.notification_recipients(
                               m.group_id, 'new_message', m.sender_id) AS r
                     WHERE m.group_id = ANY (small)) AS t
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

-- 0007's notify_members_joined with its recipients from the rule. A large group gets a
-- NotifyMembers per newcomer only if someone joined before the latest of them (else the rule
-- leaves nobody to tell: a group created with its members in one INSERT enqueues nothing).
CREATE OR REPLACE FUNCTION broseph.notify_members_joined() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    small uuid[];
    large uuid[];
BEGIN
    SELECT coalesce(array_agg(g.group_id) FILTER (WHERE g.inline), ARRAY[]::uuid[]),
           coalesce(array_agg(g.group_id) FILTER (WHERE NOT g.inline), ARRAY[]::uuid[])
      INTO small, large
      FROM (SELECT d.group_id, broseph.notify_inline(d.group_id) AS inline
              FROM (SELECT n.group_id, max(n.joined_at) AS latest
                      FROM new_members n GROUP BY n.group_id) AS d
             WHERE EXISTS (SELECT 1 FROM public.group_members gm
                            WHERE gm.group_id = d.group_id AND NOT gm.muted
                              AND gm.joined_at < d.latest)) AS g;
    PERFORM broseph.enqueue_many(
        'SendNotification',
        ARRAY(
            SELECT jsonb_build_object(
                       'user_id', r.user_id,
                       'type', 'friend_joined',
                       'data', jsonb_build_object('group_id', n.group_id, 'friend_id', n.user_id))
              FROM new_members n
             CROSS JOIN LATERAL broseph.notification_recipients(
                       n.group_id, 'friend_joined', NULL, n.user_id) AS r
             WHERE n.group_id = ANY (small)
             ORDER BY r.user_id, n.group_id, n.user_id),
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

-- 0007's notify_new_prompts with its recipients from the rule; keys and the large-group path
-- unchanged.
CREATE OR REPLACE FUNCTION broseph.notify_new_prompts() RETURNS trigger
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
                       'user_id', r.user_id,
                       'type', 'new_prompt',
                       'data', jsonb_build_object('group_id', p.group_id, 'prompt_id', p.id))
                       AS params,
                   'new_prompt:' || r.user_id::text || ':' || p.id::text AS key
              FROM (SELECT np.id, np.group_id FROM new_prompts np
                     WHERE broseph.notify_inline(np.group_id)) AS p
             CROSS JOIN LATERAL broseph.notification_recipients(p.group_id, 'new_prompt') AS r)
           AS t;
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
