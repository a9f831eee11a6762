-- name: prompt_group
-- The group a GeneratePrompt job names, with the local date its prompt is for (NULL row when the
-- group was deleted). The date is the payload's; without one it is the group's local date at the
-- moment the job was ENQUEUED (the record's created_at), which no retry can move. `ahead`: the
-- schedule asked for it (source 'schedule') and at %(now)s the group's local time has not reached
-- (that date, %(hour)s:00) — its prompt is stored waiting for the hour (migrations/0038); any
-- other ask ("generate now", by hand or over the API) is published as it is stored, as before.
-- `until_due`: seconds until that hour (0 when reached).
WITH g AS (
    SELECT g.name, g.active, g.id, r.source,
           broseph.usable_time_zone(g.time_zone) AS time_zone,
           coalesce(%(local_date)s::date,
                    (coalesce(r.created_at, now())
                        AT TIME ZONE broseph.usable_time_zone(g.time_zone))::date) AS local_date
      FROM public.groups g
      LEFT JOIN broseph.job_records r ON r.id = %(record_id)s
     WHERE g.id = %(group_id)s
), l AS (
    SELECT g.*, %(now)s::timestamptz AT TIME ZONE g.time_zone AS local_now FROM g
)
SELECT l.name, l.active, l.local_date,
       (SELECT count(*) FROM public.group_members m WHERE m.group_id = l.id)::int AS member_count,
       l.source IS NOT DISTINCT FROM 'schedule'
           AND (l.local_now::date, l.local_now::time) < (l.local_date, make_time(%(hour)s, 0, 0))
           AS ahead,
       greatest(extract(epoch FROM (l.local_date + make_time(%(hour)s, 0, 0))
                                       AT TIME ZONE l.time_zone - %(now)s::timestamptz),
                0)::float8 AS until_due
  FROM l;

-- name: prompt_for_day
-- The group's prompt for one local date, if it already has one (a re-run stops here).
SELECT id, source FROM public.prompts
 WHERE group_id = %(group_id)s AND local_date = %(local_date)s;

-- name: recent_prompts
-- The group's last 30 prompts, newest first: the AI is told to avoid them, the bank skips them.
SELECT text FROM public.prompts
 WHERE group_id = %(group_id)s AND local_date <> %(local_date)s
 ORDER BY local_date DESC
 LIMIT 30;

-- name: prompt_activity
-- Counts only — never message bodies — over the 7 local days before the prompt's date.
WITH g AS (
    SELECT id, broseph.usable_time_zone(time_zone) AS time_zone
      FROM public.groups WHERE id = %(group_id)s
), bounds AS (
    SELECT g.id,
           (%(local_date)s::date - 7)::timestamp AT TIME ZONE g.time_zone AS since,
           (%(local_date)s::date)::timestamp AT TIME ZONE g.time_zone AS until
      FROM g
)
SELECT count(m.id)::int AS messages, count(DISTINCT m.sender_id)::int AS senders
  FROM bounds b
  LEFT JOIN public.messages m
    ON m.group_id = b.id AND m.created_at >= b.since AND m.created_at < b.until;

-- name: prompt_sample_messages
-- Message text for the AI, newest first. Only run when AI_SEND_MESSAGE_TEXT allows it.
WITH g AS MATERIALIZED (
    SELECT id, broseph.usable_time_zone(time_zone) AS time_zone
      FROM public.groups WHERE id = %(group_id)s
)
SELECT m.body
  FROM public.messages m, g
 WHERE m.group_id = g.id
   AND m.created_at >= (%(local_date)s::date - 7)::timestamp AT TIME ZONE g.time_zone
   AND m.created_at < (%(local_date)s::date)::timestamp AT TIME ZONE g.time_zone
 ORDER BY m.created_at DESC
 LIMIT %(limit)s;

-- name: store_prompt
-- The natural key (group_id, local_date) makes this a no-op for a re-run, including one after a
-- crash between this INSERT and the job's completion. Returns the id only when it inserted.
-- Published at once (and so notifying, migrations/0038), unless the job was asked for %(ahead)s
-- of the hour by the schedule and the group's local time at %(now)s still has not reached
-- (local_date, %(hour)s:00) — checked again here, a slow AI may have taken it past the hour: then
-- it is stored waiting (published_at NULL) for broseph.publish_due_prompts. The rule is 0038's.
INSERT INTO public.prompts
    (group_id, local_date, text, category, follow_up, source, published_at)
SELECT %(group_id)s, %(local_date)s, %(text)s, %(category)s, %(follow_up)s, %(source)s,
       CASE WHEN NOT %(ahead)s
                 OR (z.local_now::date, z.local_now::time)
                    >= (%(local_date)s::date, make_time(%(hour)s, 0, 0))
            THEN %(now)s::timestamptz END
  FROM (SELECT %(now)s::timestamptz AT TIME ZONE broseph.usable_time_zone(g.time_zone)
                   AS local_now
          FROM public.groups g WHERE g.id = %(group_id)s) AS z
ON CONFLICT (group_id, local_date) DO NOTHING
RETURNING id;

-- name: publish_due_prompts
-- The prompt_publish tick: ONE statement publishes every waiting prompt due at %(now)s and
-- notifies their members (migrations/0038). Returns how many it published.
SELECT broseph.publish_due_prompts(%(hour)s, %(now)s) AS published;

-- name: prompt_fanout_targets
-- Active groups whose local time at %(now)s has reached %(hour)s:00 and that have neither a
-- prompt nor a GeneratePrompt job (by idempotency key) for their local date. Local time is
-- computed once per time zone. ">= hour", not "= hour": a prompt hour that DST skips (02:00 on a
-- spring-forward day) is reached at 03:00, and one it repeats is met by the same local date, so
-- the key stops the second pass. The key format must match broseph.idempotency.prompt().
-- A zone PostgreSQL does not know is read as UTC (broseph.usable_time_zone, migration 0013).
WITH zones AS (
    SELECT z.time_zone,
           %(now)s::timestamptz AT TIME ZONE broseph.usable_time_zone(z.time_zone) AS local_now
      FROM (SELECT DISTINCT coalesce(time_zone, '') AS time_zone
              FROM public.groups WHERE active) AS z
), due AS (
    SELECT time_zone, local_now::date AS local_date
      FROM zones
     WHERE local_now::time >= make_time(%(hour)s, 0, 0)
)
SELECT g.id AS group_id, d.local_date
  FROM due d
  JOIN public.groups g ON coalesce(g.time_zone, '') = d.time_zone AND g.active
 WHERE NOT EXISTS (
           SELECT 1 FROM public.prompts p
            WHERE p.group_id = g.id AND p.local_date = d.local_date)
   AND NOT EXISTS (
           SELECT 1 FROM broseph.job_records r
            WHERE r.idempotency_key
                  = 'prompt:' || g.id::text || ':' || to_char(d.local_date, 'YYYY-MM-DD'))
 ORDER BY g.id;

-- name: prompt_fanout
-- The daily fan-out, one chunk per call, all in Postgres: the next %(limit)s active groups in id
-- order from %(from)s on (inclusive); of them, those prompt_fanout_targets would list are
-- enqueued as GeneratePrompt with their idempotency keys by ONE broseph.enqueue_many call — no
-- group id travels to the worker and back. Returns how many groups the chunk read (fewer than
-- %(limit)s: it was the last), the last of them (the next call starts after it) and how many
-- were due and enqueued. The chunk is taken by the groups' primary key alone, so each call reads
-- only its own groups (filtering first would make the planner sort every remaining group per
-- chunk); the chunk's time zones are resolved once each (MATERIALIZED: broseph.usable_time_zone
-- is far too slow to run per group). The payload is GeneratePrompt.to_params() (a uuid and a
-- date as JSON strings); the key format must match broseph.idempotency.prompt().
WITH chunk AS MATERIALIZED (
    SELECT g.id, coalesce(g.time_zone, '') AS time_zone
      FROM public.groups g
     WHERE g.active AND g.id >= %(from)s::uuid
     ORDER BY g.id
     LIMIT %(limit)s
), due AS MATERIALIZED (
    SELECT z.time_zone, z.local_now::date AS local_date
      FROM (SELECT zones.time_zone,
                   %(now)s::timestamptz AT TIME ZONE broseph.usable_time_zone(zones.time_zone)
                       AS local_now
              FROM (SELECT DISTINCT chunk.time_zone FROM chunk) AS zones) AS z
     WHERE z.local_now::time >= make_time(%(hour)s, 0, 0)
), targets AS MATERIALIZED (
    SELECT c.id, d.local_date
      FROM chunk c
      JOIN due d ON d.time_zone = c.time_zone
     WHERE NOT EXISTS (
               SELECT 1 FROM public.prompts p
                WHERE p.group_id = c.id AND p.local_date = d.local_date)
       AND NOT EXISTS (
               SELECT 1 FROM broseph.job_records r
                WHERE r.idempotency_key
                      = 'prompt:' || c.id::text || ':' || to_char(d.local_date, 'YYYY-MM-DD'))
)
SELECT (SELECT count(*) FROM chunk)::int AS scanned,
       (SELECT c.id FROM chunk c ORDER BY c.id DESC LIMIT 1) AS last,
       count(*)::int AS found,
       CASE WHEN count(*) > 0 THEN cardinality(broseph.enqueue_many(
           %(job_type)s,
           array_agg(jsonb_build_object('group_id', t.id, 'local_date', t.local_date)
                     ORDER BY t.id),
           array_agg('prompt:' || t.id::text || ':' || to_char(t.local_date, 'YYYY-MM-DD')
                     ORDER BY t.id),
           source => 'schedule'))
       ELSE 0 END AS enqueued
  FROM targets t;

-- name: prompt_fanout_ahead_total
-- How many active groups are in a zone whose prompt hour comes within %(lead)s of %(now)s (the
-- rule of prompt_fanout_ahead's `ahead`): the count prompt_fanout_ahead's spread divides by.
WITH zones AS MATERIALIZED (
    SELECT z.n,
           %(now)s::timestamptz AT TIME ZONE broseph.usable_time_zone(z.time_zone) AS local_now,
           (%(now)s::timestamptz + %(lead)s::interval)
               AT TIME ZONE broseph.usable_time_zone(z.time_zone) AS later
      FROM (SELECT coalesce(time_zone, '') AS time_zone, count(*) AS n
              FROM public.groups WHERE active GROUP BY 1) AS z
)
SELECT coalesce(sum(z.n), 0)::int AS total
  FROM zones z
 WHERE z.later::time >= make_time(%(hour)s, 0, 0)
   AND (z.local_now::date, z.local_now::time) < (z.later::date, make_time(%(hour)s, 0, 0));

-- name: prompt_fanout_ahead
-- Pre-generation, one chunk per call (the chunking of prompt_fanout): of the next %(limit)s
-- active groups from %(from)s on, those whose local prompt hour comes within %(lead)s of %(now)s
-- — their local time at %(now)s + %(lead)s has reached (D, %(hour)s:00) while at %(now)s it has
-- not (a due group is prompt_fanout's) — and that have neither a prompt nor a job for that local
-- date D, get GeneratePrompt for D under the same key as prompt_fanout (so the hour's own pass
-- adds no second job, and a prompt stored either way is the day's only one). The jobs' run_at is
-- spread over the first %(spread)s of the time left until each zone's hour, in %(slots)s slots:
-- the groups of ahead zones are numbered in id order across the chunks (on from %(seq)s, those
-- of the earlier chunks) and the n-th of %(total)s (prompt_fanout_ahead_total) gets slot
-- n × slots ÷ total — a chunk fills a contiguous run of slots, so it makes about slots × chunk ÷
-- total enqueue_many calls, one per slot, not one per slot per chunk. The rest of the lead is
-- left for retries and the budget's snoozes. The prompts are stored waiting (store_prompt) and
-- published at the hour. Returns, besides prompt_fanout's figures, how many groups it numbered.
WITH chunk AS MATERIALIZED (
    SELECT g.id, coalesce(g.time_zone, '') AS time_zone
      FROM public.groups g
     WHERE g.active AND g.id >= %(from)s::uuid
     ORDER BY g.id
     LIMIT %(limit)s
), zones AS MATERIALIZED (
    SELECT zones.time_zone, broseph.usable_time_zone(zones.time_zone) AS usable
      FROM (SELECT DISTINCT chunk.time_zone FROM chunk) AS zones
), ahead AS MATERIALIZED (
    SELECT z.time_zone, z.usable, z.later::date AS local_date
      FROM (SELECT zones.time_zone, zones.usable,
                   %(now)s::timestamptz AT TIME ZONE zones.usable AS local_now,
                   (%(now)s::timestamptz + %(lead)s::interval) AT TIME ZONE zones.usable AS later
              FROM zones) AS z
     WHERE z.later::time >= make_time(%(hour)s, 0, 0)
       AND (z.local_now::date, z.local_now::time) < (z.later::date, make_time(%(hour)s, 0, 0))
), numbered AS MATERIALIZED (
    SELECT c.id, a.local_date, a.usable,
           %(seq)s + row_number() OVER (ORDER BY c.id) - 1 AS n
      FROM chunk c
      JOIN ahead a ON a.time_zone = c.time_zone
), targets AS MATERIALIZED (
    SELECT c.id, c.local_date,
           %(now)s::timestamptz
               + greatest((c.local_date + make_time(%(hour)s, 0, 0)) AT TIME ZONE c.usable
                              - %(now)s::timestamptz, interval '0')
                 * %(spread)s::float8
                 * (least(floor(c.n * %(slots)s / greatest(%(total)s, 1)), %(slots)s - 1)
                    / %(slots)s::float8)
               AS run_at
      FROM numbered c
     WHERE NOT EXISTS (
               SELECT 1 FROM public.prompts p
                WHERE p.group_id = c.id AND p.local_date = c.local_date)
       AND NOT EXISTS (
               SELECT 1 FROM broseph.job_records r
                WHERE r.idempotency_key
                      = 'prompt:' || c.id::text || ':' || to_char(c.local_date, 'YYYY-MM-DD'))
), slots AS (
    SELECT t.run_at,
           array_agg(jsonb_build_object('group_id', t.id, 'local_date', t.local_date)
                     ORDER BY t.id) AS params,
           array_agg('prompt:' || t.id::text || ':' || to_char(t.local_date, 'YYYY-MM-DD')
                     ORDER BY t.id) AS keys
      FROM targets t
     GROUP BY t.run_at
)
SELECT (SELECT count(*) FROM chunk)::int AS scanned,
       (SELECT c.id FROM chunk c ORDER BY c.id DESC LIMIT 1) AS last,
       (SELECT count(*) FROM numbered)::int AS numbered,
       (SELECT count(*) FROM targets)::int AS found,
       coalesce(sum(cardinality(broseph.enqueue_many(
           %(job_type)s, s.params, s.keys, run_at => s.run_at, source => 'schedule'))), 0)::int
           AS enqueued
  FROM (SELECT * FROM slots ORDER BY run_at) AS s;

-- name: local_today
-- Each named group's local date now (for "generate today's prompt" outside the schedule), in the
-- order given; unknown ids are left out.
SELECT g.id AS group_id,
       (now() AT TIME ZONE broseph.usable_time_zone(g.time_zone))::date AS local_date
  FROM unnest(%(group_ids)s::uuid[]) WITH ORDINALITY AS u(id, ord)
  JOIN public.groups g ON g.id = u.id
 ORDER BY u.ord;

-- name: demo_prompts
-- The prompts the demo's jobs stored.
SELECT g.name AS group_name, g.time_zone, p.local_date, p.source, p.category, p.text
  FROM public.prompts p
  JOIN public.groups g ON g.id = p.group_id
 WHERE p.created_at >= %(since)s
 ORDER BY g.name, g.time_zone;
