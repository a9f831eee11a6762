-- name: demo_group
-- One demo group (time zone varies) — returns its id.
INSERT INTO public.groups (name, time_zone) VALUES (%(name)s, %(time_zone)s) RETURNING id;

-- name: demo_member
-- One demo member with a profile in the group's time zone.
WITH p AS (
    INSERT INTO public.profiles (display_name, time_zone)
    VALUES (%(name)s, %(time_zone)s) RETURNING id
)
INSERT INTO public.group_members (group_id, user_id, role)
SELECT %(group_id)s, p.id, %(role)s FROM p RETURNING user_id;

-- name: demo_messages
-- A day of chatter: %(count)s messages from random members, spread over the last 30 hours.
INSERT INTO public.messages (group_id, sender_id, body, created_at)
SELECT %(group_id)s,
       (SELECT user_id FROM public.group_members
         WHERE group_id = %(group_id)s ORDER BY random() + g * 0 LIMIT 1),
       'demo message ' || g,
       now() - (random() * interval '30 hours')
  FROM generate_series(1, %(count)s) AS g;

-- name: demo_debounce
-- The demo shortens the messages trigger's debounce so its jobs start within a second.
UPDATE broseph.job_types SET coalesce_delay = interval '1 second' WHERE coalesce_fields IS NOT NULL;

-- name: demo_jobs_by_status
-- Job records of the demo run, by type and status: how many, the most attempts one of them
-- made, and the most it may make.
SELECT job_type, status, count(*) AS jobs, max(attempts) AS attempts,
       max(max_attempts) AS max_attempts
  FROM broseph.job_records
 WHERE created_at >= %(since)s
 GROUP BY job_type, status
 ORDER BY job_type, status;

-- name: demo_unfinished
-- Demo jobs not finished yet (pending, processing or retrying).
SELECT count(*) AS n FROM broseph.job_records
 WHERE created_at >= %(since)s AND status IN ('pending', 'processing', 'retrying');

-- name: demo_engagement
-- The engagement table the demo filled.
SELECT g.name AS group_name, g.time_zone, e.local_date, e.message_count, e.active_members,
       e.member_count, e.messages_per_member, e.prompt_response_rate
  FROM public.group_engagement_daily e
  JOIN public.groups g ON g.id = e.group_id
 WHERE e.computed_at >= %(since)s
 ORDER BY g.name, e.local_date;

-- name: demo_crowd
-- A large group's members in one INSERT (more than broseph.notify_inline_max(), so its
-- notifications fan out through NotifyMembers). Joining together, they tell each other nothing.
WITH p AS (
    INSERT INTO public.profiles (display_name, time_zone)
    SELECT %(prefix)s || ' ' || n, %(time_zone)s FROM generate_series(1, %(count)s) AS n
    RETURNING id
)
INSERT INTO public.group_members (group_id, user_id, role)
SELECT %(group_id)s, p.id, 'member' FROM p;

-- name: demo_answers
-- Members answer their group's prompt of the demo (up to three per group, every other member):
-- the messages the engagement row's prompt response rate counts. Returns one row per answer.
INSERT INTO public.messages (group_id, sender_id, body, prompt_id, created_at)
SELECT p.group_id, m.user_id, 'demo answer: ' || left(p.text, 60), p.id, clock_timestamp()
  FROM public.prompts p
  JOIN LATERAL (
        SELECT gm.user_id, row_number() OVER (ORDER BY gm.user_id) AS n
          FROM public.group_members gm
         WHERE gm.group_id = p.group_id) AS m ON mod(m.n, 2) = 1 AND m.n <= 5
 WHERE p.created_at >= %(since)s
RETURNING group_id;

-- name: demo_fanouts
-- The demo's group deliveries (DeliverGroupEvent): one row per group and notification type, with
-- the members each decided for.
SELECT g.name AS group_name, r.params ->> 'type' AS type, count(*)::int AS fanouts,
       sum((r.result ->> 'members')::int)::int AS members,
       (array_agg(r.id ORDER BY r.created_at))[1] AS first_id,
       string_agg(DISTINCT r.status::text, ', ') AS statuses
  FROM broseph.job_records r
  JOIN public.groups g ON g.id = r.group_id
 WHERE r.job_type = 'DeliverGroupEvent' AND r.created_at >= %(since)s
 GROUP BY g.name, r.params ->> 'type'
 ORDER BY g.name, 2;
