-- 0038 — Prompts ready before the hour, published at it (issue 14, part 1).
--
-- GeneratePrompt now runs up to PROMPT_LEAD_MINUTES ahead of a group's local prompt hour (the
-- fan-out's prompt_fanout_ahead, broseph/queries/prompts.sql) and stores the prompt UNPUBLISHED:
-- public.prompts.published_at NULL. At the hour the prompt_publish tick runs ONE statement,
-- broseph.publish_due_prompts(), that publishes every due prompt and notifies their members in
-- the same transaction. Publishing is what notifies: an unpublished prompt notifies nobody and no
-- client sees it.
--
-- published_at  NULL = stored ahead, not yet published. A plain INSERT (a manual prompt, an app
--               writing its own, GeneratePrompt past the hour) publishes at once: the column's
--               default is now(), as every prompt was published on insert until now. Rows that
--               exist already count as published, at their created_at.
-- Due           a prompt for local date D is due once its group's local time has reached
--               (D, PROMPT_HOUR) — the fan-out's own rule (">= the hour", a skipped hour is
--               reached at the next one, a repeated one is met by the same date), compared as a
--               row: (local date, local time) >= (D, hour), the zone resolved once per zone.
--
-- broseph.notify_prompts_published(ids) is the ONE place that tells members about published
-- prompts: the per-member logic of 0037's notify_new_prompts moved into it unchanged (same jobs,
-- same keys: new_prompt:<user_id>:<prompt_id>, large groups one NotifyMembers under
-- new_prompt:<prompt_id>). The insert trigger passes it only the rows inserted published; the
-- publish function passes it the ids it published. Whoever rewrites delivery replaces its body.

ALTER TABLE public.prompts ADD COLUMN IF NOT EXISTS published_at timestamptz;
UPDATE public.prompts SET published_at = created_at WHERE published_at IS NULL;
ALTER TABLE public.prompts ALTER COLUMN published_at SET DEFAULT now();
COMMENT ON COLUMN public.prompts.published_at IS
    'When members got the prompt; NULL while it waits, generated ahead, for its local prompt hour'
    ' (migrations/0038). Clients never see a NULL one.';

-- The publish tick reads only the waiting prompts (a handful per group, at most a lead's worth);
-- the reminder tick reads prompts by the time they reached members.
CREATE INDEX IF NOT EXISTS prompts_unpublished_idx ON public.prompts (group_id)
    WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS prompts_published_idx ON public.prompts (published_at);

-- broseph.notify_prompts_published(prompt ids) — new_prompt to every member of each prompt's
-- group (broseph.notification_recipients, 0037), small groups inline, large ones through one
-- NotifyMembers; ids of prompts not published are ignored. Idempotent by its keys: a second call
-- for the same prompt adds no job.
CREATE FUNCTION broseph.notify_prompts_published(p_prompt_ids uuid[]) RETURNS void
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
              FROM (SELECT pp.id, pp.group_id FROM public.prompts pp
                     WHERE pp.id = ANY (p_prompt_ids) AND pp.published_at IS NOT NULL
                       AND broseph.notify_inline(pp.group_id)) AS p
             CROSS JOIN LATERAL broseph.notification_recipients(p.group_id, 'new_prompt') AS r)
           AS t;
    PERFORM broseph.enqueue_many('SendNotification', params, keys, NULL, 0, 'trigger');
    SELECT coalesce(array_agg(t.params ORDER BY t.key), ARRAY[]::jsonb[]),
           coalesce(array_agg(t.key ORDER BY t.key), ARRAY[]::text[])
      INTO params, keys
      FROM (SELECT jsonb_build_object(
                       'group_id', p.group_id, 'type', 'new_prompt', 'prompt_id', p.id) AS params,
                   'new_prompt:' || p.id::text AS key
              FROM public.prompts p
             WHERE p.id = ANY (p_prompt_ids) AND p.published_at IS NOT NULL
               AND NOT broseph.notify_inline(p.group_id)) AS t;
    PERFORM broseph.enqueue_many('NotifyMembers', params, keys, NULL, 0, 'trigger');
END;
$$;
REVOKE ALL ON FUNCTION broseph.notify_prompts_published(uuid[]) FROM PUBLIC;

-- The insert trigger: only prompts inserted published notify (a prompt stored ahead waits for
-- broseph.publish_due_prompts). Rows an INSERT … ON CONFLICT DO NOTHING skipped are not in the
-- transition table, so a re-run of GeneratePrompt notifies nobody twice.
CREATE OR REPLACE FUNCTION broseph.notify_new_prompts() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    PERFORM broseph.notify_prompts_published(
        ARRAY(SELECT np.id FROM new_prompts np WHERE np.published_at IS NOT NULL ORDER BY np.id));
    RETURN NULL;
END;
$$;

-- broseph.publish_due_prompts(hour, at) — publishes, as of `at`, every waiting prompt of an
-- active group whose local prompt hour `hour` has been reached, and notifies their members, in
-- the caller's transaction. Returns how many it published. Two ticks at once: the second waits
-- for the first's row locks, finds the rows published and skips them (WHERE published_at IS
-- NULL is re-checked), so no prompt is published or announced twice.
CREATE FUNCTION broseph.publish_due_prompts(p_hour integer, p_at timestamptz DEFAULT now())
    RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    published uuid[];
BEGIN
    IF p_hour IS NULL OR p_hour NOT BETWEEN 0 AND 23 THEN
        RAISE EXCEPTION 'publish_due_prompts: hour % is not 0–23 — pass PROMPT_HOUR', p_hour
            USING ERRCODE = '22023';
    END IF;
    WITH waiting AS MATERIALIZED (
        SELECT p.id, coalesce(g.time_zone, '') AS time_zone, p.local_date
          FROM public.prompts p
          JOIN public.groups g ON g.id = p.group_id AND g.active
         WHERE p.published_at IS NULL
    ), zones AS MATERIALIZED (
        -- Local time once per zone: broseph.usable_time_zone is far too slow per prompt.
        SELECT z.time_zone, p_at AT TIME ZONE broseph.usable_time_zone(z.time_zone) AS local_now
          FROM (SELECT DISTINCT time_zone FROM waiting) AS z
    ), due AS (
        SELECT w.id
          FROM waiting w JOIN zones z ON z.time_zone = w.time_zone
         WHERE (z.local_now::date, z.local_now::time) >= (w.local_date, make_time(p_hour, 0, 0))
    ), done AS (
        UPDATE public.prompts p SET published_at = p_at
          FROM due
         WHERE p.id = due.id AND p.published_at IS NULL
        RETURNING p.id
    )
    SELECT coalesce(array_agg(done.id ORDER BY done.id), ARRAY[]::uuid[]) INTO published FROM done;
    PERFORM broseph.notify_prompts_published(published);
    RETURN cardinality(published);
END;
$$;
REVOKE ALL ON FUNCTION broseph.publish_due_prompts(integer, timestamptz) FROM PUBLIC;

-- Clients never see an unpublished prompt, nor answer one: members read their groups' published
-- prompts, and a message may name only a published prompt of its own group (the subquery runs
-- under prompts_read as the client). An adopted database keeps the app's own policies
-- (adopt/0002_domain.sql): the app decides there.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM broseph.schema_migrations
                    WHERE name = 'adopt/0002_domain.sql') THEN
        ALTER POLICY prompts_read ON public.prompts
            USING (published_at IS NOT NULL AND broseph.is_member(group_id));
        ALTER POLICY messages_insert ON public.messages
            WITH CHECK (sender_id = auth.uid() AND broseph.is_member(group_id)
                        AND (prompt_id IS NULL
                             OR EXISTS (SELECT 1 FROM public.prompts p
                                         WHERE p.id = messages.prompt_id
                                           AND p.group_id = messages.group_id
                                           AND p.published_at IS NOT NULL)));
    END IF;
END;
$$;
