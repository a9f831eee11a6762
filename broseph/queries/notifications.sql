-- name: notification_context
-- Everything SendNotification decides on, in one round trip: the user (no row when deleted),
-- their time zone, whether this type is on, quiet hours, the group and their membership, and the
-- notification this job already opened (a retry, or a re-run after a crash). A time zone
-- PostgreSQL does not know is read as UTC.
SELECT broseph.usable_time_zone(p.time_zone) AS time_zone,
       CASE %(type)s::text
           WHEN 'new_message' THEN coalesce(np.new_message, true)
           WHEN 'prompt_reminder' THEN coalesce(np.prompt_reminder, true)
           WHEN 'friend_joined' THEN coalesce(np.friend_joined, true)
           WHEN 'new_prompt' THEN coalesce(np.new_prompt, true)
       END AS enabled,
       np.quiet_start, np.quiet_end,
       g.id IS NOT NULL AS group_exists, g.name AS group_name,
       gm.user_id IS NOT NULL AS is_member, coalesce(gm.muted, false) AS muted,
       n.id AS notification_id, n.status AS notification_status
  FROM public.profiles p
  LEFT JOIN public.notification_preferences np ON np.user_id = p.id
  LEFT JOIN public.groups g ON g.id = %(group_id)s
  LEFT JOIN public.group_members gm ON gm.group_id = g.id AND gm.user_id = p.id
  LEFT JOIN public.notifications n ON n.record_id = %(record_id)s
 WHERE p.id = %(user_id)s;

-- name: new_message_summary
-- The messages a new_message push announces: from the others in the group, newer than what the
-- user has already seen — the previous new_message notification's coverage, and the user's own
-- latest message in the group (they were there) — and not from before they joined. Counts and
-- names only, never a body.
WITH seen AS (
    SELECT (SELECT max(n.covered_until) FROM public.notifications n
             WHERE n.user_id = %(user_id)s AND n.group_id = %(group_id)s
               AND n.type = 'new_message' AND n.record_id IS DISTINCT FROM %(record_id)s)
               AS notified,
           (SELECT max(m.created_at) FROM public.messages m
             WHERE m.group_id = %(group_id)s AND m.sender_id = %(user_id)s) AS posted,
           (SELECT gm.joined_at FROM public.group_members gm
             WHERE gm.group_id = %(group_id)s AND gm.user_id = %(user_id)s) AS joined
), fresh AS (
    SELECT m.id, m.sender_id, m.created_at
      FROM public.messages m, seen s
     WHERE m.group_id = %(group_id)s AND m.sender_id <> %(user_id)s
       AND m.created_at > greatest(s.notified, s.posted, '-infinity')
       AND m.created_at >= coalesce(s.joined, '-infinity')
), senders AS (
    SELECT sender_id, max(created_at) AS last FROM fresh GROUP BY sender_id
)
SELECT (SELECT count(*) FROM fresh)::int AS message_count,
       (SELECT count(*) FROM senders)::int AS sender_count,
       (SELECT id FROM fresh ORDER BY created_at DESC, id DESC LIMIT 1) AS newest_id,
       (SELECT max(created_at) FROM fresh) AS newest_at,
       ARRAY(SELECT p.display_name FROM senders s JOIN public.profiles p ON p.id = s.sender_id
              ORDER BY s.last DESC, p.display_name LIMIT 2) AS sender_names;

-- name: notification_prompt
-- The prompt a new_prompt / prompt_reminder names, whether it is still its group's latest
-- published prompt (tomorrow's, generated ahead and waiting, does not count: migrations/0038),
-- and whether the user has answered it.
SELECT p.text,
       NOT EXISTS (SELECT 1 FROM public.prompts newer
                    WHERE newer.group_id = p.group_id AND newer.local_date > p.local_date
                      AND newer.published_at IS NOT NULL)
           AS current,
       EXISTS (SELECT 1 FROM public.messages m
                WHERE m.prompt_id = p.id AND m.sender_id = %(user_id)s) AS answered
  FROM public.prompts p
 WHERE p.id = %(prompt_id)s AND p.group_id = %(group_id)s;

-- name: notification_friend
-- The member a friend_joined names (no row when the profile is gone), and whether they are
-- still in the group.
SELECT p.display_name,
       EXISTS (SELECT 1 FROM public.group_members gm
                WHERE gm.group_id = %(group_id)s AND gm.user_id = p.id) AS is_member
  FROM public.profiles p
 WHERE p.id = %(friend_id)s;

-- name: notifications_open
-- A job's notifications of one user (SendNotification) or many (DeliverGroupEvent) in one
-- statement: created on the first decision, updated by later attempts while pending (skipped ones
-- are final). Returns the rows it wrote; a user whose notification was already finished (a
-- re-run) is left out.
INSERT INTO public.notifications AS n
    (user_id, type, group_id, data, status, reason, record_id, message_count, covered_until)
SELECT x.user_id, %(type)s, %(group_id)s, x.data, x.status, x.reason, %(record_id)s,
       x.message_count, x.covered_until
  FROM unnest(%(user_ids)s::uuid[], %(datas)s::jsonb[], %(statuses)s::text[], %(reasons)s::text[],
              %(message_counts)s::int[], %(covered_untils)s::timestamptz[])
       AS x(user_id, data, status, reason, message_count, covered_until)
 ORDER BY x.user_id
ON CONFLICT (record_id, user_id) DO UPDATE
   SET data = EXCLUDED.data,
       status = EXCLUDED.status,
       reason = EXCLUDED.reason,
       message_count = EXCLUDED.message_count,
       covered_until = greatest(n.covered_until, EXCLUDED.covered_until),
       updated_at = now()
 WHERE n.status = 'pending'
RETURNING n.id, n.user_id;

-- name: notification_finish
-- The notifications' outcomes (sent, failed, or still pending with the reason of the retry), one
-- statement for all of them. sent_at is the first delivery's time.
UPDATE public.notifications AS n
   SET status = o.status,
       reason = o.reason,
       sent_at = CASE WHEN o.delivered THEN coalesce(n.sent_at, now()) ELSE n.sent_at END,
       updated_at = now()
  FROM unnest(%(notification_ids)s::uuid[], %(statuses)s::text[], %(reasons)s::text[],
              %(delivered)s::boolean[]) AS o(id, status, reason, delivered)
 WHERE n.id = o.id AND n.status = 'pending';

-- name: delivery_devices
-- Each notification's user's live devices and where each stands for that notification (NULL
-- status: never sent).
SELECT x.notification_id, t.id AS device_id, t.kind, t.identifier, d.status,
       coalesce(d.unanswered, 0) AS unanswered
  FROM unnest(%(notification_ids)s::uuid[], %(user_ids)s::uuid[]) AS x(notification_id, user_id)
  JOIN public.device_tokens t ON t.user_id = x.user_id AND t.disabled_at IS NULL
  LEFT JOIN broseph.notification_deliveries d
    ON d.notification_id = x.notification_id AND d.device_id = t.id
 ORDER BY x.notification_id, t.created_at, t.id;

-- name: deliveries_sending
-- Before the FCM call, committed: these (notification, device) pairs are being sent to (one more
-- unanswered request each).
INSERT INTO broseph.notification_deliveries AS d
    (notification_id, device_id, status, sends, unanswered)
SELECT x.notification_id, x.device_id, 'sending', 1, 1
  FROM unnest(%(notification_ids)s::uuid[], %(device_ids)s::uuid[]) AS x(notification_id, device_id)
ON CONFLICT (notification_id, device_id) DO UPDATE
   SET status = 'sending', sends = d.sends + 1, unanswered = d.unanswered + 1, updated_at = now();

-- name: deliveries_unconfirmed
-- Devices sent to as often as the duplicate bound allows without an answer: final, not resent.
UPDATE broseph.notification_deliveries AS d
   SET status = 'unconfirmed', updated_at = now()
  FROM unnest(%(notification_ids)s::uuid[], %(device_ids)s::uuid[]) AS x(notification_id, device_id)
 WHERE d.notification_id = x.notification_id AND d.device_id = x.device_id
   AND d.status = 'sending';

-- name: deliveries_outcome
-- After the FCM call: each (notification, device)'s answer (the request is no longer unanswered).
UPDATE broseph.notification_deliveries AS d
   SET status = o.status,
       unanswered = greatest(d.unanswered - 1, 0),
       message_id = o.message_id,
       error_code = o.error_code,
       reason = o.reason,
       updated_at = now()
  FROM unnest(%(notification_ids)s::uuid[], %(device_ids)s::uuid[], %(statuses)s::text[],
              %(message_ids)s::text[], %(error_codes)s::text[], %(reasons)s::text[])
       AS o(notification_id, device_id, status, message_id, error_code, reason)
 WHERE d.notification_id = o.notification_id AND d.device_id = o.device_id;

-- name: devices_disable
-- Token hygiene: devices FCM says are gone (unregistered, sender mismatch, invalid token).
UPDATE public.device_tokens AS t
   SET disabled_at = now(), disabled_reason = o.reason
  FROM unnest(%(device_ids)s::uuid[], %(reasons)s::text[]) AS o(device_id, reason)
 WHERE t.id = o.device_id AND t.disabled_at IS NULL;

-- name: delivery_summary
-- Where each notification's deliveries stand (one row per notification, none sent: zeros);
-- `retry` counts only devices that are still live.
SELECT x.id AS notification_id,
       count(*) FILTER (WHERE d.status = 'delivered')::int AS delivered,
       count(*) FILTER (WHERE d.status = 'unconfirmed')::int AS unconfirmed,
       count(*) FILTER (WHERE d.status = 'dead_token')::int AS dead_token,
       count(*) FILTER (WHERE d.status = 'failed')::int AS failed,
       count(*) FILTER (WHERE d.status IN ('retry', 'sending') AND t.disabled_at IS NULL)::int
           AS retry,
       coalesce(string_agg(DISTINCT d.error_code, ', ')
                    FILTER (WHERE d.status IN ('retry', 'failed')), '') AS error_codes
  FROM unnest(%(notification_ids)s::uuid[]) AS x(id)
  LEFT JOIN broseph.notification_deliveries d ON d.notification_id = x.id
  LEFT JOIN public.device_tokens t ON t.id = d.device_id
 GROUP BY x.id;

-- name: reminder_targets
-- Members due a prompt_reminder at %(now)s: it is past %(hour)s:00 today in THEIR time zone,
-- their group's latest prompt arrived (was published, migrations/0038: a prompt generated
-- ahead arrives at its hour, one still waiting never) in the 24 hours before that moment and they
-- have not answered it, the group is not muted, reminders are on, and no reminder job exists for that
-- prompt yet (key reminder:<user_id>:<prompt_id>; must match broseph.idempotency.reminder()).
-- "Latest prompt", not "the group's local today": a member far west of the group's zone reaches
-- their reminder hour after the group's day has ended, and would otherwise never be reminded.
WITH recent AS (
    SELECT p.id, p.group_id, p.published_at
      FROM public.prompts p
     WHERE p.published_at > %(now)s::timestamptz - interval '48 hours'
       AND p.published_at <= %(now)s::timestamptz
), members AS (
    SELECT gm.group_id, gm.user_id, coalesce(u.time_zone, '') AS time_zone
      FROM (SELECT DISTINCT group_id FROM recent) AS g
      JOIN public.group_members gm ON gm.group_id = g.group_id AND NOT gm.muted
      JOIN public.profiles u ON u.id = gm.user_id
      LEFT JOIN public.notification_preferences np ON np.user_id = gm.user_id
     WHERE coalesce(np.prompt_reminder, true)
), zones AS (
    -- Each zone's reminder moment today, once per zone; a zone PostgreSQL does not know (stored
    -- before migration 0013, or in an app table without our CHECK) is read as UTC, so one bad
    -- profile cannot fail the tick for everybody.
    SELECT z.time_zone,
           ((%(now)s::timestamptz AT TIME ZONE z.usable)::date
               + make_time(%(hour)s, 0, 0)) AT TIME ZONE z.usable AS remind_at
      FROM (SELECT t.time_zone, broseph.usable_time_zone(t.time_zone) AS usable
              FROM (SELECT DISTINCT time_zone FROM members) AS t) AS z
), members_due AS (
    SELECT m.group_id, m.user_id, z.remind_at
      FROM members m JOIN zones z ON z.time_zone = m.time_zone
), due AS (
    SELECT m.user_id, m.group_id,
           (SELECT r.id FROM recent r
             WHERE r.group_id = m.group_id
               AND r.published_at <= m.remind_at
               AND r.published_at > m.remind_at - interval '24 hours'
             ORDER BY r.published_at DESC, r.id
             LIMIT 1) AS prompt_id
      FROM members_due m
     WHERE %(now)s::timestamptz >= m.remind_at
)
SELECT d.user_id, d.group_id, d.prompt_id
  FROM due d
 WHERE d.prompt_id IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM public.messages a
                    WHERE a.prompt_id = d.prompt_id AND a.sender_id = d.user_id)
   AND NOT EXISTS (SELECT 1 FROM broseph.job_records r
                    WHERE r.idempotency_key
                          = 'reminder:' || d.user_id::text || ':' || d.prompt_id::text)
 ORDER BY d.user_id, d.prompt_id;

-- name: outbox_add
-- The development sender's deliveries, one row per device (each with its own message).
INSERT INTO broseph.push_outbox
    (device_id, target_kind, notification_type, title, body, data, collapse_key, message_id)
SELECT o.device_id, o.target_kind, o.notification_type, o.title, o.body, o.data, o.collapse_key,
       o.message_id
  FROM unnest(%(device_ids)s::uuid[], %(target_kinds)s::text[], %(notification_types)s::text[],
              %(titles)s::text[], %(bodies)s::text[], %(datas)s::jsonb[],
              %(collapse_keys)s::text[], %(message_ids)s::text[])
       AS o(device_id, target_kind, notification_type, title, body, data, collapse_key,
            message_id);

-- name: demo_devices
-- Every demo profile gets a phone: a Firebase installation id, every third one a legacy token.
INSERT INTO public.device_tokens (user_id, kind, identifier, platform)
SELECT p.id,
       CASE WHEN mod(row_number() OVER (ORDER BY p.id), 3) = 0 THEN 'token' ELSE 'fid' END,
       'demo-' || md5(p.id::text), 'android'
  FROM public.profiles p
 WHERE NOT EXISTS (SELECT 1 FROM public.device_tokens t WHERE t.user_id = p.id);

-- name: demo_fresh_messages
-- One fresh message per group, so the demo's new_message notifications are not all stale.
INSERT INTO public.messages (group_id, sender_id, body, created_at)
SELECT DISTINCT ON (gm.group_id) gm.group_id, gm.user_id, 'demo: who is in for tonight?',
       clock_timestamp()
  FROM public.group_members gm
 ORDER BY gm.group_id, gm.user_id;

-- name: demo_outbox
-- What the development outbox received during the demo: the newest few of each notification
-- type (per_type), and how many of that type there are in all.
SELECT x.created_at, x.notification_type, x.title, x.body, x.target_kind, x.display_name,
       x.of_type
  FROM (SELECT o.created_at, o.notification_type, o.title, o.body, o.target_kind,
               p.display_name,
               row_number() OVER (PARTITION BY o.notification_type
                                  ORDER BY o.created_at DESC, o.id DESC) AS n,
               count(*) OVER (PARTITION BY o.notification_type) AS of_type
          FROM broseph.push_outbox o
          JOIN public.device_tokens t ON t.id = o.device_id
          JOIN public.profiles p ON p.id = t.user_id
         WHERE o.created_at >= %(since)s) AS x
 WHERE x.n <= %(per_type)s
 ORDER BY x.notification_type, x.created_at DESC;

-- name: demo_notification_outcomes
-- The demo's notifications by type, status and reason.
SELECT type, status, coalesce(reason, '') AS reason, count(*)::int AS n
  FROM public.notifications
 WHERE created_at >= %(since)s
 GROUP BY type, status, reason
 ORDER BY type, status, reason;

-- name: notify_members_recipients
-- Who a NotifyMembers fan-out notifies: the rule the triggers' inline path uses too
-- (broseph.notification_recipients, migrations/0037).
SELECT r.user_id
  FROM broseph.notification_recipients(%(group_id)s::uuid, %(type)s::text, %(sender_id)s::uuid,
                                       %(friend_id)s::uuid) AS r
 ORDER BY r.user_id;
