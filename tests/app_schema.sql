-- The Broseph app's own tables, as its NestJS migrations create them before broseph is ever
-- installed (tests/test_adoption.py): the columns the jobs need, plus the app's own (avatar,
-- invite codes, edits, replies, read receipts, …), its own key shapes (group_members with a
-- surrogate id), its own enum types and its own row-level security. broseph must adopt all of
-- this without changing any of it.

CREATE TYPE public.notification_kind AS ENUM
    ('new_message', 'prompt_reminder', 'friend_joined', 'new_prompt', 'app_announcement');

CREATE TABLE public.profiles (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    display_name varchar(80) NOT NULL,
    avatar_url text,
    time_zone varchar(64) NOT NULL DEFAULT 'UTC',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.groups (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name varchar(120) NOT NULL,
    invite_code text UNIQUE,
    time_zone text NOT NULL DEFAULT 'UTC',
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.group_members (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    group_id uuid NOT NULL REFERENCES public.groups (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES public.profiles (id) ON DELETE CASCADE,
    role text NOT NULL DEFAULT 'member',
    muted boolean NOT NULL DEFAULT false,
    nickname text,
    joined_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT group_members_group_user_key UNIQUE (user_id, group_id)
);

CREATE TABLE public.prompts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    group_id uuid NOT NULL REFERENCES public.groups (id) ON DELETE CASCADE,
    local_date date NOT NULL,
    text text NOT NULL,
    category text NOT NULL DEFAULT 'general',
    follow_up text,
    source text NOT NULL DEFAULT 'manual',
    pinned boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT prompts_one_per_day UNIQUE (group_id, local_date)
);

CREATE TABLE public.messages (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    group_id uuid NOT NULL REFERENCES public.groups (id) ON DELETE CASCADE,
    sender_id uuid NOT NULL REFERENCES public.profiles (id) ON DELETE CASCADE,
    body text NOT NULL,
    prompt_id uuid REFERENCES public.prompts (id) ON DELETE SET NULL,
    reply_to uuid REFERENCES public.messages (id) ON DELETE SET NULL,
    edited_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_by_group ON public.messages (group_id, created_at DESC);

CREATE TABLE public.device_tokens (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES public.profiles (id) ON DELETE CASCADE,
    kind text NOT NULL DEFAULT 'fid',
    identifier text NOT NULL UNIQUE,
    platform text NOT NULL DEFAULT 'ios',
    app_version text,
    disabled_at timestamptz,
    disabled_reason text,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.notification_preferences (
    user_id uuid PRIMARY KEY REFERENCES public.profiles (id) ON DELETE CASCADE,
    new_message boolean NOT NULL DEFAULT true,
    prompt_reminder boolean NOT NULL DEFAULT true,
    friend_joined boolean NOT NULL DEFAULT true,
    new_prompt boolean NOT NULL DEFAULT true,
    quiet_start time,
    quiet_end time,
    email_digest boolean NOT NULL DEFAULT false
);

CREATE TABLE public.notifications (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES public.profiles (id) ON DELETE CASCADE,
    type public.notification_kind NOT NULL,
    group_id uuid REFERENCES public.groups (id) ON DELETE CASCADE,
    data jsonb NOT NULL DEFAULT '{}',
    status varchar(16) NOT NULL DEFAULT 'pending',
    reason text,
    read_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    -- The app's own bookkeeping column, which broseph's migration 0007 would also add.
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The app's security: on Supabase its own policies; on plain PostgreSQL it has none to write.
DO $$
BEGIN
    IF to_regprocedure('auth.uid()') IS NOT NULL THEN
        ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY;
        ALTER TABLE public.messages ENABLE ROW LEVEL SECURITY;
        ALTER TABLE public.notifications ENABLE ROW LEVEL SECURITY;
        CREATE POLICY app_profiles_self ON public.profiles FOR ALL TO authenticated
            USING (id = auth.uid());
        CREATE POLICY app_messages_members ON public.messages FOR ALL TO authenticated
            USING (EXISTS (SELECT 1 FROM public.group_members m
                            WHERE m.group_id = messages.group_id AND m.user_id = auth.uid()));
        CREATE POLICY app_notifications_own ON public.notifications FOR SELECT TO authenticated
            USING (user_id = auth.uid());
    END IF;
END;
$$;
