-- 0017 — The enqueue contract through Supabase RPC.
--
--   public.broseph_enqueue(job_type, params, idempotency_key, run_at, priority, source, retry)
--       → uuid (the job record id)
--   public.broseph_enqueue_many(job_type, params, idempotency_keys, run_at, priority, source, retry)
--       → uuid[] (record ids, in input order)
--
-- Supabase's API (PostgREST) exposes the public schema only, and broseph.enqueue lives in schema
-- broseph: these two let a server holding the service_role key enqueue with
-- supabase.rpc('broseph_enqueue', {job_type, params, …}) (clients/typescript: enqueueRpc). They
-- call broseph.enqueue / broseph.enqueue_many with the same arguments, so they commit or roll back
-- with the request's transaction, and have the same defaults and errors, except:
--   * broseph_enqueue_many takes params as ONE jsonb array of objects (a JSON body maps onto
--     jsonb; a jsonb[] argument would not come through PostgREST as an array of objects);
--   * source defaults to 'rpc';
--   * PostgREST passes an error's message, detail, hint and code to the caller but drops its
--     COLUMN, which names the faulty argument (run_at, params.group_id, …): a 22023 error that
--     carries a COLUMN is raised again with "column: <name>" as the last line of its DETAIL.
-- Grants: service_role only. On Supabase every function created in public is executable by anon
-- and authenticated through default privileges (and by PUBLIC, as everywhere): hence the
-- explicit REVOKEs. SECURITY DEFINER with a fixed search_path, so the caller needs no rights on
-- the broseph schema's internals and cannot redirect the names used inside.

-- broseph.raise_with_column(message, detail, hint, column): raise 22023 again with the column
-- appended to the detail; the shared tail of both wrappers' error handlers.
CREATE FUNCTION broseph.raise_with_column(p_message text, p_detail text, p_hint text,
                                          p_column text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    detail text := concat_ws(E'\n', nullif(p_detail, ''), 'column: ' || p_column);
BEGIN
    -- RAISE refuses a NULL option, and an empty HINT would print as an empty "HINT:" line.
    IF coalesce(p_hint, '') = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = p_message,
            DETAIL = detail, COLUMN = p_column;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = p_message,
        DETAIL = detail, HINT = p_hint, COLUMN = p_column;
END;
$$;

CREATE FUNCTION public.broseph_enqueue(
    job_type text,
    params jsonb,
    idempotency_key text DEFAULT NULL,
    run_at timestamptz DEFAULT NULL,
    priority integer DEFAULT 0,
    source text DEFAULT 'rpc',
    retry jsonb DEFAULT NULL
) RETURNS uuid
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    msg text;
    det text;
    hnt text;
    col text;
BEGIN
    RETURN broseph.enqueue(job_type => broseph_enqueue.job_type,
                           params => broseph_enqueue.params,
                           idempotency_key => broseph_enqueue.idempotency_key,
                           run_at => broseph_enqueue.run_at,
                           priority => broseph_enqueue.priority,
                           source => broseph_enqueue.source,
                           retry => broseph_enqueue.retry);
EXCEPTION WHEN invalid_parameter_value THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
        hnt = PG_EXCEPTION_HINT, col = COLUMN_NAME;
    IF col = '' THEN
        RAISE;
    END IF;
    PERFORM broseph.raise_with_column(msg, det, hnt, col);
    RETURN NULL;  -- not reached
END;
$$;

CREATE FUNCTION public.broseph_enqueue_many(
    job_type text,
    params jsonb,
    idempotency_keys text[] DEFAULT NULL,
    run_at timestamptz DEFAULT NULL,
    priority integer DEFAULT 0,
    source text DEFAULT 'rpc',
    retry jsonb DEFAULT NULL
) RETURNS uuid[]
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    msg text;
    det text;
    hnt text;
    col text;
BEGIN
    IF jsonb_typeof(broseph_enqueue_many.params) <> 'array' THEN
        RAISE EXCEPTION '%: params must be a JSON array of objects, got %', job_type,
            jsonb_typeof(broseph_enqueue_many.params)
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'params';
    END IF;
    RETURN broseph.enqueue_many(
        job_type => broseph_enqueue_many.job_type,
        params => CASE WHEN broseph_enqueue_many.params IS NOT NULL THEN
            ARRAY(SELECT t.e
                    FROM jsonb_array_elements(broseph_enqueue_many.params)
                         WITH ORDINALITY AS t(e, i)
                   ORDER BY t.i)
        END,
        idempotency_keys => broseph_enqueue_many.idempotency_keys,
        run_at => broseph_enqueue_many.run_at,
        priority => broseph_enqueue_many.priority,
        source => broseph_enqueue_many.source,
        retry => broseph_enqueue_many.retry);
EXCEPTION WHEN invalid_parameter_value THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
        hnt = PG_EXCEPTION_HINT, col = COLUMN_NAME;
    IF col = '' THEN
        RAISE;
    END IF;
    PERFORM broseph.raise_with_column(msg, det, hnt, col);
    RETURN NULL;  -- not reached
END;
$$;

REVOKE EXECUTE ON FUNCTION broseph.raise_with_column(text, text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION public.broseph_enqueue(text, jsonb, text, timestamptz, integer, text,
    jsonb) FROM PUBLIC, anon, authenticated;
REVOKE EXECUTE ON FUNCTION public.broseph_enqueue_many(text, jsonb, text[], timestamptz, integer,
    text, jsonb) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.broseph_enqueue(text, jsonb, text, timestamptz, integer, text,
    jsonb) TO service_role;
GRANT EXECUTE ON FUNCTION public.broseph_enqueue_many(text, jsonb, text[], timestamptz, integer,
    text, jsonb) TO service_role;
