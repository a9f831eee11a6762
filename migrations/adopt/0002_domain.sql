-- adopt/0002 — 0002_domain.sql for a database whose domain tables the app already owns.
--
-- `broseph migrate` applies this INSTEAD of 0002 when public.profiles, groups, messages, … exist
-- and broseph/adoption.py found in them every column, type and unique key the jobs need (it
-- names each gap otherwise and changes nothing). 0002 is then recorded as applied (adopted), so
-- its checksum stays that of the released file, and later migrations with a variant in adopt/
-- use it too.
--
-- What it does NOT do to the app's tables: create, alter or drop them, enable RLS, add policies
-- or grants. Their security is the app's. What it adds to them — the indexes the worker's
-- queries use, when the app has none by that name — `broseph migrate` lists as it adds them.
-- On large tables, create those indexes first with CREATE INDEX CONCURRENTLY (same names) and
-- this file skips them.

CREATE SCHEMA IF NOT EXISTS broseph;

-- As in 0002 (0011 and 0013 replace it).
CREATE FUNCTION broseph.is_time_zone(tz text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = tz)
$$;

-- As in 0002: "is the signed-in user a member of this group", for RLS policies on broseph's
-- tables (job records, engagement), reading the app's group_members.
CREATE FUNCTION broseph.is_member(p_group_id uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
    SELECT EXISTS (
        SELECT 1 FROM public.group_members
        WHERE group_id = p_group_id AND user_id = auth.uid()
    )
$$;

GRANT USAGE ON SCHEMA broseph TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION broseph.is_member(uuid) TO authenticated, service_role;

-- The engagement roll-up is broseph's output: created as in 0002 when the app has no such
-- table (one it has was checked like the others).
DO $$
BEGIN
    IF to_regclass('public.group_engagement_daily') IS NULL THEN
        CREATE TABLE public.group_engagement_daily (
            group_id uuid NOT NULL REFERENCES public.groups (id) ON DELETE CASCADE,
            local_date date NOT NULL,
            message_count integer NOT NULL,
            active_members integer NOT NULL,
            member_count integer NOT NULL,
            messages_per_member numeric(10, 2) NOT NULL,
            prompt_response_rate numeric(5, 4),
            computed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (group_id, local_date)
        );
        ALTER TABLE public.group_engagement_daily ENABLE ROW LEVEL SECURITY;
        CREATE POLICY engagement_read ON public.group_engagement_daily FOR SELECT
            TO authenticated USING (broseph.is_member(group_id));
        GRANT SELECT ON public.group_engagement_daily TO authenticated;
        GRANT ALL ON public.group_engagement_daily TO service_role;
    END IF;
END;
$$;

-- The indexes 0002 gives the worker's queries, on the app's tables.
CREATE INDEX IF NOT EXISTS groups_active_idx ON public.groups (time_zone) WHERE active;
CREATE INDEX IF NOT EXISTS group_members_user_idx ON public.group_members (user_id);
CREATE INDEX IF NOT EXISTS messages_group_time_idx ON public.messages (group_id, created_at);
CREATE INDEX IF NOT EXISTS messages_prompt_idx ON public.messages (prompt_id)
    WHERE prompt_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS device_tokens_user_idx ON public.device_tokens (user_id)
    WHERE disabled_at IS NULL;
