-- 0002 — The Broseph domain the worker reads and writes.
--
-- Tables live in `public` (Supabase exposes them through its API), every client-facing table has
-- RLS enabled, and clients (role authenticated) see only their own groups' data. The worker
-- connects as the table owner or service_role, which bypass RLS.

CREATE SCHEMA IF NOT EXISTS broseph;

-- A CHECK constraint cannot hold a sub-query, so time-zone validity lives in a function.
CREATE FUNCTION broseph.is_time_zone(tz text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = tz)
$$;

CREATE TABLE public.profiles (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),  -- = auth.users.id on Supabase
    display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 80),
    time_zone text NOT NULL DEFAULT 'UTC' CHECK (broseph.is_time_zone(time_zone)),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.groups (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 120),
    time_zone text NOT NULL DEFAULT 'UTC' CHECK (broseph.is_time_zone(time_zone)),
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX groups_active_idx ON public.groups (time_zone) WHERE active;

CREATE TABLE public.group_members (
    group_id uuid NOT NULL REFERENCES public.groups (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES public.profiles (id) ON DELETE CASCADE,
    role text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'member')),
    muted boolean NOT NULL DEFAULT false,
    joined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user_idx ON public.group_members (user_id);

-- One prompt per group per local day: the natural key that makes GeneratePrompt idempotent.
CREATE TABLE public.prompts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    group_id uuid NOT NULL REFERENCES public.groups (id) ON DELETE CASCADE,
    local_date date NOT NULL,
    text text NOT NULL CHECK (length(text) BETWEEN 1 AND 280),
    category text NOT NULL,
    follow_up text,
    source text NOT NULL CHECK (source IN ('openai', 'offline', 'manual')),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (group_id, local_date)
);

CREATE TABLE public.messages (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    group_id uuid NOT NULL REFERENCES public.groups (id) ON DELETE CASCADE,
    sender_id uuid NOT NULL REFERENCES public.profiles (id) ON DELETE CASCADE,
    body text NOT NULL,
    -- Set when the message answers the group's daily prompt (drives the response rate).
    prompt_id uuid REFERENCES public.prompts (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_group_time_idx ON public.messages (group_id, created_at);
CREATE INDEX messages_prompt_idx ON public.messages (prompt_id) WHERE prompt_id IS NOT NULL;

-- Devices registered for push: a Firebase Installation ID (fid) or a legacy registration token.
CREATE TABLE public.device_tokens (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES public.profiles (id) ON DELETE CASCADE,
    kind text NOT NULL DEFAULT 'fid' CHECK (kind IN ('fid', 'token')),
    identifier text NOT NULL UNIQUE,
    platform text NOT NULL DEFAULT 'android' CHECK (platform IN ('android', 'ios', 'web')),
    disabled_at timestamptz,
    disabled_reason text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX device_tokens_user_idx ON public.device_tokens (user_id) WHERE disabled_at IS NULL;

CREATE TABLE public.notification_preferences (
    user_id uuid PRIMARY KEY REFERENCES public.profiles (id) ON DELETE CASCADE,
    new_message boolean NOT NULL DEFAULT true,
    prompt_reminder boolean NOT NULL DEFAULT true,
    friend_joined boolean NOT NULL DEFAULT true,
    new_prompt boolean NOT NULL DEFAULT true,
    -- Quiet hours in the user's time zone; start > end means the window spans midnight.
    quiet_start time,
    quiet_end time,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
);

CREATE TABLE public.notifications (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES public.profiles (id) ON DELETE CASCADE,
    type text NOT NULL CHECK (type IN ('new_message', 'prompt_reminder', 'friend_joined', 'new_prompt')),
    group_id uuid REFERENCES public.groups (id) ON DELETE CASCADE,
    data jsonb NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sent', 'skipped', 'failed')),
    reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz
);
CREATE INDEX notifications_user_idx ON public.notifications (user_id, created_at DESC);

-- One row per group per local day: the natural key that makes ProcessEngagement idempotent.
CREATE TABLE public.group_engagement_daily (
    group_id uuid NOT NULL REFERENCES public.groups (id) ON DELETE CASCADE,
    local_date date NOT NULL,
    message_count integer NOT NULL,
    active_members integer NOT NULL,
    member_count integer NOT NULL,
    messages_per_member numeric(10, 2) NOT NULL,
    prompt_response_rate numeric(5, 4),  -- NULL when the group had no prompt that day
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, local_date)
);

-- --- Row-level security ------------------------------------------------------------------------

-- SECURITY DEFINER so policies on group_members can ask "is this user a member" without
-- recursing into group_members' own policy.
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

ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.groups ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.group_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.prompts ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.device_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.notification_preferences ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.notifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.group_engagement_daily ENABLE ROW LEVEL SECURITY;

CREATE POLICY profiles_read ON public.profiles FOR SELECT TO authenticated
    USING (id = auth.uid() OR EXISTS (
        SELECT 1 FROM public.group_members m
        WHERE m.user_id = profiles.id AND broseph.is_member(m.group_id)
    ));
CREATE POLICY profiles_update_self ON public.profiles FOR UPDATE TO authenticated
    USING (id = auth.uid()) WITH CHECK (id = auth.uid());
CREATE POLICY groups_read ON public.groups FOR SELECT TO authenticated
    USING (broseph.is_member(id));
CREATE POLICY group_members_read ON public.group_members FOR SELECT TO authenticated
    USING (broseph.is_member(group_id));
CREATE POLICY prompts_read ON public.prompts FOR SELECT TO authenticated
    USING (broseph.is_member(group_id));
CREATE POLICY messages_read ON public.messages FOR SELECT TO authenticated
    USING (broseph.is_member(group_id));
CREATE POLICY messages_insert ON public.messages FOR INSERT TO authenticated
    WITH CHECK (sender_id = auth.uid() AND broseph.is_member(group_id));
CREATE POLICY device_tokens_own ON public.device_tokens FOR ALL TO authenticated
    USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
CREATE POLICY notification_preferences_own ON public.notification_preferences FOR ALL
    TO authenticated USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
CREATE POLICY notifications_own ON public.notifications FOR SELECT TO authenticated
    USING (user_id = auth.uid());
CREATE POLICY engagement_read ON public.group_engagement_daily FOR SELECT TO authenticated
    USING (broseph.is_member(group_id));

GRANT SELECT ON public.profiles, public.groups, public.group_members, public.prompts,
    public.messages, public.notifications, public.group_engagement_daily TO authenticated;
GRANT UPDATE ON public.profiles TO authenticated;
GRANT INSERT ON public.messages TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.device_tokens, public.notification_preferences
    TO authenticated;
GRANT ALL ON ALL TABLES IN SCHEMA public TO service_role;
