-- 0024 — Trace context stored with the job record (issue 16, "Tracing").
--
-- A producer that traces (the Python face with OpenTelemetry on, NestJS with its own
-- OpenTelemetry, the BullMQ ingress continuing a producer's trace) passes its current W3C trace
-- context to enqueue; it is stored with the record, and each attempt of the job runs in a span
-- whose parent is that context (broseph/tracing.py), in the producer's trace, across the queue.
--
--   broseph.enqueue(…, retry, traceparent text DEFAULT NULL, tracestate text DEFAULT NULL)
--   broseph.enqueue_many(…, retry, traceparent, tracestate)      one context for the whole call
--   public.broseph_enqueue / broseph_enqueue_many (0017's RPC wrappers): the same two arguments
--
-- Both new arguments come last and default to NULL, so every existing call (positional or named)
-- means what it meant. The functions are dropped and created again rather than overloaded: an
-- overload with more defaulted arguments would make every short call ambiguous.
--
-- traceparent is checked like every other argument (SQLSTATE 22023, COLUMN = 'traceparent'):
-- exactly the W3C version-00 form, 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>,
-- lowercase, neither id all zeros (the two invalid values of the spec), 55 characters. Other
-- versions are refused rather than guessed at: version 00 is the only one defined. tracestate:
-- 1 to 512 printable ASCII characters (the size the W3C spec asks vendors to propagate at
-- least), and only with a traceparent. The limits join enqueue_limits(). Nothing else about the
-- values is trusted: the worker parses them again with OpenTelemetry's own propagator.
--
-- The record's two new columns are internal: not in public.broseph_job_status (0020), so neither
-- clients nor Realtime see them. insert_job / insert_jobs take them as two more (defaulted)
-- arguments so the record is written once, with its context, in the same INSERT.

ALTER TABLE broseph.job_records
    ADD COLUMN traceparent text,
    ADD COLUMN tracestate text;

CREATE OR REPLACE FUNCTION broseph.enqueue_limits() RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT '{
        "idempotency_key_max_length": 500,
        "source_max_length": 64,
        "text_max_length": 10000,
        "run_at_earliest": "2000-01-01T00:00:00Z",
        "run_at_max_ahead": "366 days",
        "priority_min": -10000000,
        "priority_max": 10000000,
        "retry_max_attempts_max": 1000,
        "retry_backoff_seconds_max": 86400,
        "echo_max_length": 40,
        "traceparent_length": 55,
        "tracestate_max_length": 512
    }'::jsonb
$$;

-- broseph.check_trace_context(traceparent, tracestate): refuse what is not a W3C trace context.
CREATE FUNCTION broseph.check_trace_context(p_traceparent text, p_tracestate text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    lim jsonb := broseph.enqueue_limits();
BEGIN
    IF p_traceparent IS NULL THEN
        IF p_tracestate IS NOT NULL THEN
            RAISE EXCEPTION 'tracestate needs a traceparent (both come from the same trace context)'
                USING ERRCODE = 'invalid_parameter_value', COLUMN = 'tracestate';
        END IF;
        RETURN;
    END IF;
    IF length(p_traceparent) <> (lim ->> 'traceparent_length')::integer
        OR p_traceparent !~ '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'
        OR substr(p_traceparent, 4, 32) = repeat('0', 32)
        OR substr(p_traceparent, 37, 16) = repeat('0', 16) THEN
        RAISE EXCEPTION 'traceparent must be a W3C trace context, 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags> (lowercase, ids not all zero), got %',
            broseph.echo(p_traceparent)
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'traceparent';
    END IF;
    IF p_tracestate IS NOT NULL
        AND (length(p_tracestate) NOT BETWEEN 1 AND (lim ->> 'tracestate_max_length')::integer
             OR p_tracestate ~ '[^ -~]') THEN
        RAISE EXCEPTION 'tracestate must be 1 to % printable ASCII characters, got %',
            lim ->> 'tracestate_max_length', broseph.echo(p_tracestate)
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'tracestate';
    END IF;
END;
$$;

-- The four functions below are the current ones (0015, 0017, 0021) with the trace context
-- threaded through; nothing else changed.
DROP FUNCTION public.broseph_enqueue(text, jsonb, text, timestamptz, integer, text, jsonb);
DROP FUNCTION public.broseph_enqueue_many(text, jsonb, text[], timestamptz, integer, text, jsonb);
DROP FUNCTION broseph.enqueue(text, jsonb, text, timestamptz, integer, text, jsonb);
DROP FUNCTION broseph.enqueue_many(text, jsonb[], text[], timestamptz, integer, text, jsonb);
DROP FUNCTION broseph.insert_job(broseph.job_types, jsonb, text, uuid, timestamptz, integer, text,
                                 jsonb);
DROP FUNCTION broseph.insert_jobs(broseph.job_types, jsonb[], text[], uuid[], timestamptz, integer,
                                  text, jsonb);

CREATE FUNCTION broseph.insert_job(jt broseph.job_types, p_params jsonb, p_key text, p_rid uuid, p_run_at timestamptz, p_priority integer, p_source text, p_retry jsonb,
    p_traceparent text DEFAULT NULL, p_tracestate text DEFAULT NULL) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE
    job_id bigint;
BEGIN
    WITH inserted AS (
        INSERT INTO broseph.job_records AS r
            (id, job_type, params, idempotency_key, coalesce_key, source, max_attempts,
             procrastinate_job_id, traceparent, tracestate)
        VALUES (p_rid, jt.name, p_params, p_key,
                CASE WHEN jt.coalesce_fields IS NOT NULL
                     THEN broseph.field_key(jt.name, jt.coalesce_fields, p_params) END,
                p_source, coalesce((p_retry ->> 'max_attempts')::integer, jt.max_attempts),
                nextval(pg_get_serial_sequence('public.procrastinate_jobs', 'id')::regclass),
                p_traceparent, p_tracestate)
        ON CONFLICT DO NOTHING
        RETURNING r.procrastinate_job_id
    )
    INSERT INTO public.procrastinate_jobs
        (id, queue_name, task_name, priority, lock, args, scheduled_at)
    SELECT inserted.procrastinate_job_id, jt.queue, jt.task_name, p_priority,
           CASE WHEN jt.lock_fields IS NOT NULL
                THEN broseph.field_key(jt.name, jt.lock_fields, p_params) END,
           p_params || jsonb_build_object('record_id', p_rid)
               || CASE WHEN p_retry IS NULL THEN '{}'::jsonb
                       ELSE jsonb_build_object('_retry', p_retry) END,
           p_run_at
      FROM inserted
    RETURNING id INTO job_id;
    RETURN job_id;
END;
$$;

CREATE FUNCTION broseph.insert_jobs(jt broseph.job_types, p_params jsonb[], p_keys text[], p_rids uuid[], p_run_at timestamptz, p_priority integer, p_source text, p_retry jsonb,
    p_traceparent text DEFAULT NULL, p_tracestate text DEFAULT NULL) RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE
    inserted_count integer;
    job_seq regclass := pg_get_serial_sequence('public.procrastinate_jobs', 'id')::regclass;
BEGIN
    WITH input AS (
        SELECT u.p, u.k, u.rid
          FROM unnest(p_params, p_keys, p_rids) WITH ORDINALITY AS u(p, k, rid, ord)
         WHERE u.rid IS NOT NULL
         -- Key order: concurrent batches with overlapping keys wait on each other in one
         -- direction instead of deadlocking.
         ORDER BY u.k, u.ord
    ), inserted AS (
        INSERT INTO broseph.job_records AS r
            (id, job_type, params, idempotency_key, coalesce_key, source, max_attempts,
             procrastinate_job_id, traceparent, tracestate)
        SELECT input.rid, jt.name, input.p, input.k,
               CASE WHEN jt.coalesce_fields IS NOT NULL
                    THEN broseph.field_key(jt.name, jt.coalesce_fields, input.p) END,
               p_source,
               coalesce((p_retry ->> 'max_attempts')::integer, jt.max_attempts),
               nextval(job_seq), p_traceparent, p_tracestate
          FROM input
        ON CONFLICT DO NOTHING
        RETURNING r.id, r.params, r.procrastinate_job_id
    ), queued AS (
        INSERT INTO public.procrastinate_jobs
            (id, queue_name, task_name, priority, lock, args, scheduled_at)
        SELECT inserted.procrastinate_job_id, jt.queue, jt.task_name, p_priority,
               CASE WHEN jt.lock_fields IS NOT NULL
                    THEN broseph.field_key(jt.name, jt.lock_fields, inserted.params) END,
               inserted.params || jsonb_build_object('record_id', inserted.id)
                   || CASE WHEN p_retry IS NULL THEN '{}'::jsonb
                           ELSE jsonb_build_object('_retry', p_retry) END,
               p_run_at
          FROM inserted
        RETURNING 1
    )
    SELECT count(*) INTO inserted_count FROM queued;
    RETURN inserted_count;
END;
$$;

CREATE FUNCTION broseph.enqueue_many(job_type text, params jsonb[], idempotency_keys text[] DEFAULT NULL, run_at timestamptz DEFAULT NULL, priority integer DEFAULT 0, source text DEFAULT 'sql', retry jsonb DEFAULT NULL,
    traceparent text DEFAULT NULL, tracestate text DEFAULT NULL) RETURNS uuid[]
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $_$
DECLARE
    jt broseph.job_types := broseph.checked_arguments(job_type, NULL, run_at, priority, source,
                                                      retry);
    n integer := coalesce(cardinality(params), 0);
    keys text[];
    rids uuid[];
    result uuid[];
    inserted_count integer;
    key_max integer;
BEGIN
    PERFORM broseph.check_trace_context(traceparent, tracestate);
    IF params IS NULL OR array_ndims(params) > 1 OR array_lower(params, 1) <> 1 THEN
        RAISE EXCEPTION '%: params must be a one-dimensional array of JSON objects, got %',
            jt.name, CASE WHEN params IS NULL THEN 'NULL' ELSE 'a differently shaped array' END
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'params';
    END IF;
    IF idempotency_keys IS NOT NULL THEN
        IF cardinality(idempotency_keys) <> n OR array_ndims(idempotency_keys) > 1
            OR array_lower(idempotency_keys, 1) <> 1 THEN
            RAISE EXCEPTION '%: % idempotency keys for % params (one per element, NULL for none)',
                jt.name, cardinality(idempotency_keys), n
                USING ERRCODE = 'invalid_parameter_value', COLUMN = 'idempotency_keys';
        END IF;
        key_max := (broseph.enqueue_limits() ->> 'idempotency_key_max_length')::integer;
        IF EXISTS (SELECT 1 FROM unnest(idempotency_keys) AS k
                    WHERE length(k) NOT BETWEEN 1 AND key_max) THEN
            FOR i IN 1..n LOOP
                IF length(idempotency_keys[i]) NOT BETWEEN 1 AND key_max THEN
                    PERFORM broseph.refuse_idempotency_key(idempotency_keys[i],
                                                           format('idempotency_keys[%s]', i));
                END IF;
            END LOOP;
        END IF;
    END IF;
    IF n = 0 THEN
        RETURN ARRAY[]::uuid[];
    END IF;
    -- Small batches are checked row by row (the set-based screen costs a plan of its own).
    IF n < 16 OR broseph.params_screen(jt.fields, params) <> 0 THEN
        FOR i IN 1..n LOOP
            params[i] := broseph.checked_params(jt.name, jt.fields, params[i],
                                                format('params[%s].', i), format('params[%s]', i));
        END LOOP;
    END IF;
    -- Absent fields with a default (0021), before any key is built from params.
    IF jt.fields @? '$.*.default' THEN
        params := broseph.with_defaults(jt.fields, params);
    END IF;
    keys := coalesce(idempotency_keys, array_fill(NULL::text, ARRAY[n]));

    -- A coalesced job can leave 'pending' between our INSERT … ON CONFLICT and the look-up
    -- of the winner; a second pass then inserts a fresh job. Three passes is ample.
    FOR pass IN 1..3 LOOP
        rids := ARRAY(SELECT CASE WHEN result[i] IS NULL THEN gen_random_uuid() END
                      FROM generate_series(1, n) AS i);
        inserted_count := broseph.insert_jobs(jt, params, keys, rids, run_at, priority,
                                              source, retry, traceparent, tracestate);

        IF pass = 1 AND inserted_count = n THEN
            -- Every row is new: the record ids are the ones chosen above, in input order.
            RETURN rids;
        END IF;
        result := ARRAY(
            SELECT coalesce(
                       result[u.ord],
                       (SELECT r.id FROM broseph.job_records r WHERE r.id = u.rid),
                       (SELECT r.id FROM broseph.job_records r WHERE r.idempotency_key = u.k),
                       (SELECT r.id FROM broseph.job_records r
                         WHERE r.coalesce_key = broseph.field_key(jt.name, jt.coalesce_fields, u.p)
                           AND r.status = 'pending'))
              FROM unnest(params, keys, rids) WITH ORDINALITY AS u(p, k, rid, ord)
             ORDER BY u.ord);
        EXIT WHEN array_position(result, NULL) IS NULL;
    END LOOP;
    IF array_position(result, NULL) IS NOT NULL THEN
        RAISE EXCEPTION '%: could not settle a coalesced job; try again', jt.name
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN result;
END;
$_$;

CREATE FUNCTION broseph.enqueue(job_type text, params jsonb, idempotency_key text DEFAULT NULL, run_at timestamptz DEFAULT NULL, priority integer DEFAULT 0, source text DEFAULT 'sql', retry jsonb DEFAULT NULL,
    traceparent text DEFAULT NULL, tracestate text DEFAULT NULL) RETURNS uuid
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $_$
DECLARE
    jt broseph.job_types := broseph.checked_arguments(job_type, idempotency_key, run_at, priority,
                                                      source, retry);
    rid uuid := gen_random_uuid();
    job_id bigint;
BEGIN
    PERFORM broseph.check_trace_context(traceparent, tracestate);
    params := broseph.checked_params(jt.name, jt.fields, params, '', 'params');
    IF jt.fields @? '$.*.default' THEN
        params := (broseph.with_defaults(jt.fields, ARRAY[params]))[1];
    END IF;
    job_id := broseph.insert_job(jt, params, idempotency_key, rid, run_at, priority, source, retry,
                                 traceparent, tracestate);
    IF job_id IS NULL THEN
        -- The key (idempotency or coalesce) is taken: enqueue_many finds the holder, or retries
        -- when a coalesced holder started meanwhile.
        RETURN (broseph.enqueue_many(jt.name, ARRAY[params],
                CASE WHEN idempotency_key IS NULL THEN NULL ELSE ARRAY[idempotency_key] END,
                run_at, priority, source, retry, traceparent, tracestate))[1];
    END IF;
    RETURN rid;
END;
$_$;

CREATE FUNCTION public.broseph_enqueue(job_type text, params jsonb, idempotency_key text DEFAULT NULL, run_at timestamptz DEFAULT NULL, priority integer DEFAULT 0, source text DEFAULT 'rpc', retry jsonb DEFAULT NULL,
    traceparent text DEFAULT NULL, tracestate text DEFAULT NULL) RETURNS uuid
    LANGUAGE plpgsql SECURITY DEFINER
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
                           retry => broseph_enqueue.retry,
                           traceparent => broseph_enqueue.traceparent,
                           tracestate => broseph_enqueue.tracestate);
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

CREATE FUNCTION public.broseph_enqueue_many(job_type text, params jsonb, idempotency_keys text[] DEFAULT NULL, run_at timestamptz DEFAULT NULL, priority integer DEFAULT 0, source text DEFAULT 'rpc', retry jsonb DEFAULT NULL,
    traceparent text DEFAULT NULL, tracestate text DEFAULT NULL) RETURNS uuid[]
    LANGUAGE plpgsql SECURITY DEFINER
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
        retry => broseph_enqueue_many.retry,
        traceparent => broseph_enqueue_many.traceparent,
        tracestate => broseph_enqueue_many.tracestate);
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

-- The BullMQ ingress's enqueue (0008), with the context of the ingress's span per job: a child of
-- the BullMQ producer's span when the job carried one (broseph/ingress/bullmq.py).
DROP FUNCTION broseph.ingress_enqueue(text, text, text, text, text, jsonb, timestamptz, text,
                                      jsonb, timestamptz, integer, jsonb);
CREATE FUNCTION broseph.ingress_enqueue(delivery_key text, source text, queue text, job_id text, job_name text, options jsonb, produced_at timestamptz, job_type text, params jsonb, run_at timestamptz, priority integer, retry jsonb,
    traceparent text DEFAULT NULL, tracestate text DEFAULT NULL,
    OUT record_id uuid, OUT duplicate boolean) RETURNS record
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    INSERT INTO broseph.ingress_receipts AS r
        (delivery_key, source, queue, job_id, job_name, options, produced_at)
    VALUES (ingress_enqueue.delivery_key, ingress_enqueue.source, ingress_enqueue.queue,
            ingress_enqueue.job_id, ingress_enqueue.job_name, coalesce(ingress_enqueue.options, '{}'),
            ingress_enqueue.produced_at)
    ON CONFLICT ON CONSTRAINT ingress_receipts_pkey DO NOTHING;
    IF NOT FOUND THEN
        SELECT r.record_id INTO ingress_enqueue.record_id
          FROM broseph.ingress_receipts r
         WHERE r.delivery_key = ingress_enqueue.delivery_key;
        duplicate := true;
        RETURN;
    END IF;
    record_id := broseph.enqueue(ingress_enqueue.job_type, ingress_enqueue.params,
                                 ingress_enqueue.delivery_key, ingress_enqueue.run_at,
                                 ingress_enqueue.priority, ingress_enqueue.source,
                                 ingress_enqueue.retry, ingress_enqueue.traceparent,
                                 ingress_enqueue.tracestate);
    UPDATE broseph.ingress_receipts r
       SET record_id = ingress_enqueue.record_id
     WHERE r.delivery_key = ingress_enqueue.delivery_key;
    duplicate := false;
END;
$$;

REVOKE EXECUTE ON FUNCTION
    broseph.enqueue(text, jsonb, text, timestamptz, integer, text, jsonb, text, text),
    broseph.enqueue_many(text, jsonb[], text[], timestamptz, integer, text, jsonb, text, text),
    public.broseph_enqueue(text, jsonb, text, timestamptz, integer, text, jsonb, text, text),
    public.broseph_enqueue_many(text, jsonb, text[], timestamptz, integer, text, jsonb, text, text)
    FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION
    broseph.enqueue(text, jsonb, text, timestamptz, integer, text, jsonb, text, text),
    broseph.enqueue_many(text, jsonb[], text[], timestamptz, integer, text, jsonb, text, text),
    public.broseph_enqueue(text, jsonb, text, timestamptz, integer, text, jsonb, text, text),
    public.broseph_enqueue_many(text, jsonb, text[], timestamptz, integer, text, jsonb, text, text)
    TO service_role;
-- Internal helpers, as in 0015 and 0008.
REVOKE EXECUTE ON FUNCTION
    broseph.ingress_enqueue(text, text, text, text, text, jsonb, timestamptz, text, jsonb,
                            timestamptz, integer, jsonb, text, text),
    broseph.check_trace_context(text, text),
    broseph.insert_jobs(broseph.job_types, jsonb[], text[], uuid[], timestamptz, integer, text,
                        jsonb, text, text),
    broseph.insert_job(broseph.job_types, jsonb, text, uuid, timestamptz, integer, text, jsonb,
                       text, text)
    FROM PUBLIC;
