-- name: group_event_members
-- Everything a DeliverGroupEvent decides on, for every member at once (one row per member the
-- rule broseph.notification_recipients names; none when the group is gone): the subjects as they
-- are now (the group's name, the prompt's text, the friend's name and membership), each member's
-- time zone, whether the type is on, quiet hours, the notification this job already opened for
-- them (a retry or a re-run), whether their delivery was already handed to a job of their own
-- (quiet hours; %(quiet_key)s is that job's idempotency key with the member's id as
-- '{user_id}': broseph.idempotency.member_key) and, for new_message, the messages they have not
-- heard about — the rule of `new_message_summary`: from the others, newer than their previous
-- new_message notification's coverage and their own latest message in the group, not from
-- before they joined. A time zone PostgreSQL does not know is read as UTC.
WITH subject AS (
    SELECT g.id AS group_id, g.name AS group_name, pr.text AS prompt_text,
           fp.display_name AS friend_name,
           EXISTS (SELECT 1 FROM public.group_members f
                    WHERE f.group_id = g.id AND f.user_id = %(friend_id)s::uuid) AS friend_is_member
      FROM public.groups g
      LEFT JOIN public.prompts pr ON pr.id = %(prompt_id)s::uuid AND pr.group_id = g.id
      LEFT JOIN public.profiles fp ON fp.id = %(friend_id)s::uuid
     WHERE g.id = %(group_id)s::uuid
), members AS (
    SELECT s.*, r.user_id, coalesce(p.time_zone, '') AS zone, gm.joined_at
      FROM subject s
     CROSS JOIN LATERAL broseph.notification_recipients(s.group_id, %(type)s::text, NULL,
                                                        %(friend_id)s::uuid) AS r
      JOIN public.profiles p ON p.id = r.user_id
      JOIN public.group_members gm ON gm.group_id = s.group_id AND gm.user_id = r.user_id
), zones AS MATERIALIZED (
    -- Once per zone, not per member (MATERIALIZED: not inlined into the per-member join): the
    -- check may read pg_timezone_names.
    SELECT z.zone, broseph.usable_time_zone(z.zone) AS usable
      FROM (SELECT DISTINCT zone FROM members) AS z
)
SELECT m.group_name, m.prompt_text, m.friend_name, m.friend_is_member,
       m.user_id,
       z.usable AS time_zone,
       CASE %(type)s::text
           WHEN 'new_message' THEN coalesce(np.new_message, true)
           WHEN 'friend_joined' THEN coalesce(np.friend_joined, true)
           WHEN 'new_prompt' THEN coalesce(np.new_prompt, true)
       END AS enabled,
       np.quiet_start, np.quiet_end,
       n.id AS notification_id, n.status AS notification_status,
       -- OFFSET 0: one index probe per member. Without it the planner may turn the EXISTS into
       -- a hashed subplan over every job record (it cannot see how few members there are), one
       -- scan of the whole table per delivery: CPU that grows with the queue.
       EXISTS (SELECT 1 FROM broseph.job_records j
                WHERE j.idempotency_key = replace(%(quiet_key)s::text, '{user_id}', m.user_id::text)
               OFFSET 0)
           AS handed_off,
       fresh.message_count, fresh.sender_count, fresh.sender_names, fresh.newest_id,
       fresh.newest_at
  FROM members m
  JOIN zones z ON z.zone = m.zone
  LEFT JOIN public.notification_preferences np ON np.user_id = m.user_id
  LEFT JOIN public.notifications n ON n.record_id = %(record_id)s::uuid AND n.user_id = m.user_id
  LEFT JOIN LATERAL (
      SELECT coalesce(sum(x.n), 0)::int AS message_count,
             count(*)::int AS sender_count,
             max(x.last) AS newest_at,
             (array_agg(x.newest_id ORDER BY x.last DESC, x.newest_id DESC))[1] AS newest_id,
             coalesce((array_agg(sp.display_name ORDER BY x.last DESC, sp.display_name)
                           FILTER (WHERE sp.display_name IS NOT NULL))[1:2], ARRAY[]::text[])
                 AS sender_names
        FROM (SELECT f.sender_id, count(*) AS n, max(f.created_at) AS last,
                     (array_agg(f.id ORDER BY f.created_at DESC, f.id DESC))[1] AS newest_id
                FROM public.messages f
               WHERE %(type)s::text = 'new_message'
                 AND f.group_id = m.group_id AND f.sender_id <> m.user_id
                 AND f.created_at >= m.joined_at
                 AND f.created_at > greatest(
                         (SELECT max(o.covered_until) FROM public.notifications o
                           WHERE o.user_id = m.user_id AND o.group_id = m.group_id
                             AND o.type = 'new_message'
                             AND o.record_id IS DISTINCT FROM %(record_id)s::uuid),
                         (SELECT max(mine.created_at) FROM public.messages mine
                           WHERE mine.group_id = m.group_id AND mine.sender_id = m.user_id),
                         '-infinity')
               GROUP BY f.sender_id) AS x
        LEFT JOIN public.profiles sp ON sp.id = x.sender_id
  ) AS fresh ON true
 ORDER BY m.user_id;
