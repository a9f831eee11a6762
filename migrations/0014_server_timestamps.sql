-- 0014 — The server sets the timestamps of rows clients write.
--
-- A client (anon, authenticated: the roles PostgREST switches to for supabase-js requests) could
-- insert a message dated 1900 or 2999: the messages trigger then enqueued ProcessEngagement for
-- that day and the analytics got a row for it; a backdated prompt or membership moves reminders
-- and "new since you joined". For rows written by a client role, a BEFORE trigger now sets
--     the "created" column    to now() on INSERT and keeps the stored value on UPDATE,
--     the "updated" column    to now() on INSERT and on every UPDATE.
-- Rows written by the service (the migrating role, service_role, SECURITY DEFINER functions)
-- keep the times they give: imports, backfills and tests set past times on purpose.
--
-- broseph.server_timestamps(created [, updated]) — trigger arguments are the column names ('' for
-- none); a name the table lacks is ignored. Triggers on app-owned tables (see adopt/) are listed
-- by `broseph migrate` as they are added.

CREATE FUNCTION broseph.server_timestamps() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    stamps jsonb := '{}';
    created text := TG_ARGV[0];
    updated text := CASE WHEN TG_NARGS > 1 THEN TG_ARGV[1] ELSE '' END;
BEGIN
    -- Not SECURITY DEFINER: current_user is the role the statement runs as.
    IF current_user::text NOT IN ('anon', 'authenticated') THEN
        RETURN NEW;
    END IF;
    IF created <> '' THEN
        stamps := stamps || jsonb_build_object(created, CASE WHEN TG_OP = 'INSERT' THEN to_jsonb(now())
                                                             ELSE to_jsonb(OLD) -> created END);
    END IF;
    IF updated <> '' THEN
        stamps := stamps || jsonb_build_object(updated, now());
    END IF;
    RETURN jsonb_populate_record(NEW, stamps);
END;
$$;

CREATE TRIGGER broseph_server_timestamps
    BEFORE INSERT OR UPDATE ON public.messages
    FOR EACH ROW WHEN (current_user::text IN ('anon', 'authenticated'))
    EXECUTE FUNCTION broseph.server_timestamps('created_at');
CREATE TRIGGER broseph_server_timestamps
    BEFORE INSERT OR UPDATE ON public.prompts
    FOR EACH ROW WHEN (current_user::text IN ('anon', 'authenticated'))
    EXECUTE FUNCTION broseph.server_timestamps('created_at');
CREATE TRIGGER broseph_server_timestamps
    BEFORE INSERT OR UPDATE ON public.group_members
    FOR EACH ROW WHEN (current_user::text IN ('anon', 'authenticated'))
    EXECUTE FUNCTION broseph.server_timestamps('joined_at');
CREATE TRIGGER broseph_server_timestamps
    BEFORE INSERT OR UPDATE ON public.profiles
    FOR EACH ROW WHEN (current_user::text IN ('anon', 'authenticated'))
    EXECUTE FUNCTION broseph.server_timestamps('created_at');
CREATE TRIGGER broseph_server_timestamps
    BEFORE INSERT OR UPDATE ON public.device_tokens
    FOR EACH ROW WHEN (current_user::text IN ('anon', 'authenticated'))
    EXECUTE FUNCTION broseph.server_timestamps('created_at');
CREATE TRIGGER broseph_server_timestamps
    BEFORE INSERT OR UPDATE ON public.notification_preferences
    FOR EACH ROW WHEN (current_user::text IN ('anon', 'authenticated'))
    EXECUTE FUNCTION broseph.server_timestamps('', 'updated_at');
