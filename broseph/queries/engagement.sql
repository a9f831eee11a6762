-- name: engagement_group
-- The group a ProcessEngagement job names (NULL when it was deleted).
SELECT id, name, time_zone, active FROM public.groups WHERE id = %(group_id)s;

-- name: upsert_engagement
-- One group's stats for one local day, upserted. Day bounds follow the group's time zone (DST
-- days are 23 or 25 hours; a zone PostgreSQL does not know is read as UTC). The update is skipped when nothing changed, so a re-run leaves the
-- row — computed_at included — exactly as it was. Returns the row only when it was written.
WITH g AS (
    SELECT id, broseph.usable_time_zone(time_zone) AS time_zone
      FROM public.groups WHERE id = %(group_id)s
), bounds AS (
    SELECT g.id,
           (%(local_date)s::date)::timestamp AT TIME ZONE g.time_zone AS day_start,
           (%(local_date)s::date + 1)::timestamp AT TIME ZONE g.time_zone AS day_end
      FROM g
), day_messages AS (
    SELECT m.sender_id
      FROM public.messages m, bounds b
     WHERE m.group_id = b.id AND m.created_at >= b.day_start AND m.created_at < b.day_end
), stats AS (
    SELECT b.id AS group_id,
           (SELECT count(*) FROM day_messages)::int AS message_count,
           (SELECT count(DISTINCT sender_id) FROM day_messages)::int AS active_members,
           (SELECT count(*) FROM public.group_members gm WHERE gm.group_id = b.id)::int
               AS member_count,
           (SELECT p.id FROM public.prompts p
             WHERE p.group_id = b.id AND p.local_date = %(local_date)s::date) AS prompt_id
      FROM bounds b
)
INSERT INTO public.group_engagement_daily AS d
    (group_id, local_date, message_count, active_members, member_count, messages_per_member,
     prompt_response_rate)
SELECT s.group_id, %(local_date)s::date, s.message_count, s.active_members, s.member_count,
       CASE WHEN s.member_count = 0 THEN 0
            ELSE round(s.message_count::numeric / s.member_count, 2) END,
       CASE WHEN s.prompt_id IS NULL OR s.member_count = 0 THEN NULL
            ELSE round((SELECT count(DISTINCT m.sender_id)
                          FROM public.messages m
                          JOIN public.group_members gm
                            ON gm.group_id = s.group_id AND gm.user_id = m.sender_id
                         WHERE m.prompt_id = s.prompt_id)::numeric / s.member_count, 4) END
  FROM stats s
ON CONFLICT (group_id, local_date) DO UPDATE
   SET message_count = EXCLUDED.message_count,
       active_members = EXCLUDED.active_members,
       member_count = EXCLUDED.member_count,
       messages_per_member = EXCLUDED.messages_per_member,
       prompt_response_rate = EXCLUDED.prompt_response_rate,
       computed_at = now()
 WHERE (d.message_count, d.active_members, d.member_count, d.messages_per_member,
        d.prompt_response_rate)
       IS DISTINCT FROM
       (EXCLUDED.message_count, EXCLUDED.active_members, EXCLUDED.member_count,
        EXCLUDED.messages_per_member, EXCLUDED.prompt_response_rate)
RETURNING d.message_count, d.active_members, d.member_count, d.messages_per_member,
          d.prompt_response_rate;

-- name: engagement_yesterday_targets
-- Every active group with its local "yesterday" at the given instant: the nightly roll-up. Local
-- dates are computed once per time zone; a zone PostgreSQL does not know (a row stored before
-- migration 0013, an app-owned table without our CHECK) is read as UTC rather than failing the
-- tick for every group.
WITH zones AS (
    SELECT z.time_zone,
           (%(now)s::timestamptz AT TIME ZONE broseph.usable_time_zone(z.time_zone))::date - 1
               AS local_date
      FROM (SELECT DISTINCT coalesce(time_zone, '') AS time_zone
              FROM public.groups WHERE active) AS z
)
SELECT g.id AS group_id, z.local_date
  FROM public.groups g
  JOIN zones z ON z.time_zone = coalesce(g.time_zone, '')
 WHERE g.active
 ORDER BY g.id;
