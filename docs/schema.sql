-- The schema `broseph migrate` leaves in an empty database: GENERATED, do not edit.
-- Regenerate after adding a migration: TEST_DATABASE_URL=… python -m tests.schema_snapshot
-- (pg_dump 15 --schema-only --no-owner; tests/test_schema_snapshot.py checks it.)

--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: auth; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA auth;

--
-- Name: broseph; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA broseph;

--
-- Name: procrastinate_job_event_type; Type: TYPE; Schema: public; Owner: -
--

CREATE TYPE public.procrastinate_job_event_type AS ENUM (
    'deferred',
    'started',
    'deferred_for_retry',
    'failed',
    'succeeded',
    'cancelled',
    'abort_requested',
    'aborted',
    'scheduled',
    'retried'
);

--
-- Name: procrastinate_job_status; Type: TYPE; Schema: public; Owner: -
--

CREATE TYPE public.procrastinate_job_status AS ENUM (
    'todo',
    'doing',
    'succeeded',
    'failed',
    'cancelled',
    'aborting',
    'aborted'
);

--
-- Name: procrastinate_job_to_defer_v1; Type: TYPE; Schema: public; Owner: -
--

CREATE TYPE public.procrastinate_job_to_defer_v1 AS (
	queue_name character varying,
	task_name character varying,
	priority integer,
	lock text,
	queueing_lock text,
	args jsonb,
	scheduled_at timestamp with time zone
);

--
-- Name: uid(); Type: FUNCTION; Schema: auth; Owner: -
--

CREATE FUNCTION auth.uid() RETURNS uuid
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
            SELECT coalesce(
                nullif(current_setting('request.jwt.claim.sub', true), ''),
                (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
            )::uuid
        $$;

--
-- Name: check_retry(jsonb, jsonb); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.check_retry(p_retry jsonb, p_limits jsonb) RETURNS void
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
DECLARE
    k text;
    v jsonb;
    max_attempts integer := (p_limits ->> 'retry_max_attempts_max')::integer;
    max_backoff integer := (p_limits ->> 'retry_backoff_seconds_max')::integer;
BEGIN
    IF jsonb_typeof(p_retry) <> 'object' THEN
        RAISE EXCEPTION 'retry must be a JSON object (or NULL), got %', broseph.echo(p_retry)
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'retry';
    END IF;
    FOR k, v IN SELECT key, value FROM jsonb_each(p_retry) LOOP
        IF k = 'max_attempts' THEN
            IF jsonb_typeof(v) <> 'number' OR (v #>> '{}') !~ '^[0-9]{1,9}$'
                OR (v #>> '{}')::integer NOT BETWEEN 1 AND max_attempts THEN
                RAISE EXCEPTION 'retry.max_attempts must be an integer from 1 to %, got %',
                    max_attempts, broseph.echo(v)
                    USING ERRCODE = 'invalid_parameter_value', COLUMN = 'retry.max_attempts';
            END IF;
        ELSIF k = 'backoff_seconds' THEN
            IF jsonb_typeof(v) <> 'number' OR (v #>> '{}')::numeric NOT BETWEEN 0 AND max_backoff
            THEN
                RAISE EXCEPTION 'retry.backoff_seconds must be a number from 0 to %, got %',
                    max_backoff, broseph.echo(v)
                    USING ERRCODE = 'invalid_parameter_value', COLUMN = 'retry.backoff_seconds';
            END IF;
        ELSIF k = 'backoff_type' THEN
            IF v IS DISTINCT FROM '"fixed"'::jsonb AND v IS DISTINCT FROM '"exponential"'::jsonb
            THEN
                RAISE EXCEPTION 'retry.backoff_type must be "fixed" or "exponential", got %',
                    broseph.echo(v)
                    USING ERRCODE = 'invalid_parameter_value', COLUMN = 'retry.backoff_type';
            END IF;
        ELSE
            RAISE EXCEPTION 'retry: unknown field "%" (allowed: backoff_seconds, backoff_type, '
                'max_attempts)', broseph.field_name(k)
                USING ERRCODE = 'invalid_parameter_value', COLUMN = 'retry.' || broseph.field_name(k);
        END IF;
    END LOOP;
END;
$_$;

--
-- Name: check_trace_context(text, text); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.check_trace_context(p_traceparent text, p_tracestate text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
$_$;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: job_types; Type: TABLE; Schema: broseph; Owner: -
--

CREATE TABLE broseph.job_types (
    name text NOT NULL,
    task_name text NOT NULL,
    queue text DEFAULT 'default'::text NOT NULL,
    fields jsonb NOT NULL,
    coalesce_fields text[],
    coalesce_delay interval,
    lock_fields text[],
    max_attempts integer DEFAULT 5 NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    CONSTRAINT job_types_max_attempts_check CHECK ((max_attempts >= 1))
);

--
-- Name: checked_arguments(text, text, timestamp with time zone, integer, text, jsonb); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.checked_arguments(p_job_type text, p_key text, p_run_at timestamp with time zone, p_priority integer, p_source text, p_retry jsonb) RETURNS broseph.job_types
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    lim jsonb := broseph.enqueue_limits();
    jt broseph.job_types;
BEGIN
    IF p_job_type IS NULL THEN
        RAISE EXCEPTION 'job_type must not be NULL'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'job_type';
    END IF;
    SELECT * INTO jt FROM broseph.job_types t WHERE t.name = p_job_type;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown job type % (known: %)', broseph.echo(p_job_type),
            (SELECT string_agg(t.name, ', ' ORDER BY t.name) FROM broseph.job_types t)
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'job_type';
    END IF;
    IF length(p_key) NOT BETWEEN 1 AND (lim ->> 'idempotency_key_max_length')::integer THEN
        PERFORM broseph.refuse_idempotency_key(p_key, 'idempotency_key');
    END IF;
    IF p_run_at IS NOT NULL THEN
        IF NOT isfinite(p_run_at) THEN
            RAISE EXCEPTION 'run_at must be a finite time (NULL for now), got %', p_run_at
                USING ERRCODE = 'invalid_parameter_value', COLUMN = 'run_at';
        ELSIF p_run_at < (lim ->> 'run_at_earliest')::timestamptz
            OR p_run_at > now() + (lim ->> 'run_at_max_ahead')::interval THEN
            RAISE EXCEPTION 'run_at must be between % and % from now, got %',
                (lim ->> 'run_at_earliest')::timestamptz, (lim ->> 'run_at_max_ahead')::interval,
                p_run_at
                USING ERRCODE = 'invalid_parameter_value', COLUMN = 'run_at';
        END IF;
    END IF;
    IF p_priority IS NULL
        OR p_priority NOT BETWEEN (lim ->> 'priority_min')::integer
                              AND (lim ->> 'priority_max')::integer THEN
        RAISE EXCEPTION 'priority must be an integer from % to % (0 by default), got %',
            lim ->> 'priority_min', lim ->> 'priority_max', coalesce(p_priority::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'priority';
    END IF;
    IF p_source IS NULL
        OR length(p_source) NOT BETWEEN 1 AND (lim ->> 'source_max_length')::integer
        OR p_source ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'source must be 1 to % characters without control characters, got %',
            lim ->> 'source_max_length', broseph.echo(p_source)
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'source';
    END IF;
    IF p_retry IS NOT NULL THEN
        PERFORM broseph.check_retry(p_retry, lim);
    END IF;
    RETURN jt;
END;
$$;

--
-- Name: checked_params(text, jsonb, jsonb, text, text); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.checked_params(p_job_type text, p_spec jsonb, p_value jsonb, p_path text, p_column text) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
DECLARE
    k text;
    spec jsonb;
    v jsonb;
    sub jsonb;
    kind text;
    s text;
    max_len integer;
    need text;
    ruled text[];
    result jsonb := p_value;
BEGIN
    IF p_value IS NULL OR jsonb_typeof(p_value) <> 'object' THEN
        RAISE EXCEPTION '%: % must be a JSON object, got %', p_job_type,
            coalesce(nullif(rtrim(p_path, '.'), ''), 'params'), broseph.echo(p_value)
            USING ERRCODE = 'invalid_parameter_value', COLUMN = p_column;
    END IF;
    FOR k IN SELECT jsonb_object_keys(p_value) LOOP
        IF NOT p_spec ? k THEN
            RAISE EXCEPTION '%: unknown field "%" (allowed: %)', p_job_type,
                p_path || broseph.field_name(k),
                (SELECT string_agg(key, ', ' ORDER BY key) FROM jsonb_object_keys(p_spec) AS key)
                USING ERRCODE = 'invalid_parameter_value',
                      COLUMN = p_column || '.' || broseph.field_name(k);
        END IF;
    END LOOP;
    FOR k, spec IN SELECT key, value FROM jsonb_each(p_spec) LOOP
        v := p_value -> k;
        IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
            IF coalesce((spec ->> 'required')::boolean, true) THEN
                RAISE EXCEPTION '%: missing field "%"', p_job_type, p_path || k
                    USING ERRCODE = 'invalid_parameter_value', COLUMN = p_column || '.' || k;
            ELSIF v IS NOT NULL THEN
                result := result - k;  -- an explicit null reads as absent: store it absent
            END IF;
            CONTINUE;
        END IF;
        kind := spec ->> 'type';
        IF kind = 'object' THEN
            sub := broseph.checked_params(p_job_type, spec -> 'fields', v, p_path || k || '.',
                                          p_column || '.' || k);
            IF sub IS DISTINCT FROM v THEN
                result := jsonb_set(result, ARRAY[k], sub);
            END IF;
            CONTINUE;
        ELSIF kind = 'integer' THEN
            IF jsonb_typeof(v) <> 'number' OR (v #>> '{}') !~ '^-?[0-9]+$' THEN
                RAISE EXCEPTION '%: field "%" must be an integer, got %', p_job_type, p_path || k,
                    broseph.echo(v) USING ERRCODE = 'invalid_parameter_value',
                                          COLUMN = p_column || '.' || k;
            END IF;
            CONTINUE;
        ELSIF jsonb_typeof(v) <> 'string' THEN
            RAISE EXCEPTION '%: field "%" must be a % string, got %', p_job_type, p_path || k,
                kind, broseph.echo(v)
                USING ERRCODE = 'invalid_parameter_value', COLUMN = p_column || '.' || k;
        END IF;
        s := v #>> '{}';
        IF kind = 'uuid' THEN
            IF s ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
                NULL;  -- canonical already (the common case: one regex)
            ELSIF s ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
            THEN
                result := jsonb_set(result, ARRAY[k], to_jsonb(lower(s)));
            ELSE
                RAISE EXCEPTION '%: field "%" must be a UUID, got %', p_job_type, p_path || k,
                    broseph.echo(v)
                    USING ERRCODE = 'invalid_parameter_value', COLUMN = p_column || '.' || k;
            END IF;
        ELSIF kind = 'date' AND NOT broseph.is_date(s) THEN
            RAISE EXCEPTION '%: field "%" must be a date (YYYY-MM-DD), got %', p_job_type,
                p_path || k, broseph.echo(v)
                USING ERRCODE = 'invalid_parameter_value', COLUMN = p_column || '.' || k;
        ELSIF kind = 'enum' THEN
            IF NOT (spec -> 'values') ? s THEN
                RAISE EXCEPTION '%: field "%" must be one of %, got %', p_job_type, p_path || k,
                    spec -> 'values', broseph.echo(v)
                    USING ERRCODE = 'invalid_parameter_value', COLUMN = p_column || '.' || k;
            ELSIF spec ? 'requires' THEN
                ruled := ruled || k;
            END IF;
        ELSIF kind = 'text' THEN
            max_len := coalesce((spec ->> 'max_length')::integer,
                                (broseph.enqueue_limits() ->> 'text_max_length')::integer);
            IF length(s) > max_len THEN
                RAISE EXCEPTION '%: field "%" is longer than % characters, got % characters: %',
                    p_job_type, p_path || k, max_len, length(s), broseph.echo(v)
                    USING ERRCODE = 'invalid_parameter_value', COLUMN = p_column || '.' || k;
            END IF;
        END IF;
    END LOOP;
    -- Per-type rules, once every field is known good: an enum value may require other fields
    -- (paths relative to this object).
    FOREACH k IN ARRAY coalesce(ruled, ARRAY[]::text[]) LOOP
        s := result ->> k;
        spec := p_spec -> k -> 'requires' -> s;
        -- Indexes rather than a query per rule: expressions only, no executor round.
        FOR j IN 0 .. coalesce(jsonb_array_length(spec), 0) - 1 LOOP
            need := spec ->> j;
            IF coalesce(jsonb_typeof(result #> string_to_array(need, '.')), 'null') = 'null' THEN
                RAISE EXCEPTION '%: % "%" needs %', p_job_type, p_path || k, s, p_path || need
                    USING ERRCODE = 'invalid_parameter_value', COLUMN = p_column || '.' || need;
            END IF;
        END LOOP;
    END LOOP;
    RETURN result;
END;
$_$;

--
-- Name: echo(jsonb); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.echo(p_value jsonb) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    max_len integer := (broseph.enqueue_limits() ->> 'echo_max_length')::integer;
    s text;
BEGIN
    IF p_value IS NULL THEN
        RETURN 'NULL';
    ELSIF jsonb_typeof(p_value) = 'string' THEN
        s := p_value #>> '{}';
        RETURN to_jsonb(left(s, max_len))::text || CASE WHEN length(s) > max_len THEN '…' ELSE '' END;
    END IF;
    s := p_value::text;
    RETURN left(s, max_len) || CASE WHEN length(s) > max_len THEN '…' ELSE '' END;
END;
$$;

--
-- Name: echo(text); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.echo(p_value text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT broseph.echo(to_jsonb(left(p_value,
        (broseph.enqueue_limits() ->> 'echo_max_length')::integer + 1)))
$$;

--
-- Name: enqueue(text, jsonb, text, timestamp with time zone, integer, text, jsonb, text, text); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.enqueue(job_type text, params jsonb, idempotency_key text DEFAULT NULL::text, run_at timestamp with time zone DEFAULT NULL::timestamp with time zone, priority integer DEFAULT 0, source text DEFAULT 'sql'::text, retry jsonb DEFAULT NULL::jsonb, traceparent text DEFAULT NULL::text, tracestate text DEFAULT NULL::text) RETURNS uuid
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET jit TO 'off'
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

--
-- Name: enqueue_limits(); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.enqueue_limits() RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
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

--
-- Name: enqueue_many(text, jsonb[], text[], timestamp with time zone, integer, text, jsonb, text, text); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.enqueue_many(job_type text, params jsonb[], idempotency_keys text[] DEFAULT NULL::text[], run_at timestamp with time zone DEFAULT NULL::timestamp with time zone, priority integer DEFAULT 0, source text DEFAULT 'sql'::text, retry jsonb DEFAULT NULL::jsonb, traceparent text DEFAULT NULL::text, tracestate text DEFAULT NULL::text) RETURNS uuid[]
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET jit TO 'off'
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

--
-- Name: procrastinate_jobs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.procrastinate_jobs (
    id bigint NOT NULL,
    queue_name character varying(128) NOT NULL,
    task_name character varying(128) NOT NULL,
    priority integer DEFAULT 0 NOT NULL,
    lock text,
    queueing_lock text,
    args jsonb DEFAULT '{}'::jsonb NOT NULL,
    status public.procrastinate_job_status DEFAULT 'todo'::public.procrastinate_job_status NOT NULL,
    scheduled_at timestamp with time zone,
    attempts integer DEFAULT 0 NOT NULL,
    abort_requested boolean DEFAULT false NOT NULL,
    worker_id bigint,
    CONSTRAINT check_not_todo_abort_requested CHECK ((NOT ((status = 'todo'::public.procrastinate_job_status) AND (abort_requested = true))))
);

--
-- Name: fetch_job(character varying[], bigint); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.fetch_job(target_queue_names character varying[], p_worker_id bigint) RETURNS public.procrastinate_jobs
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET enable_sort TO 'off'
    SET enable_bitmapscan TO 'off'
    SET jit TO 'off'
    AS $$
DECLARE
    found_job public.procrastinate_jobs;
BEGIN
    WITH candidate AS (
        SELECT jobs.id
          FROM public.procrastinate_jobs AS jobs
         WHERE NOT EXISTS (
                   SELECT 1
                     FROM public.procrastinate_jobs AS other_jobs
                    WHERE jobs.lock IS NOT NULL
                      AND other_jobs.lock = jobs.lock
                      AND (
                          -- a job with the same lock is running
                          other_jobs.status = 'doing'
                          OR (
                              -- an earlier job with the same lock is waiting AND due
                              other_jobs.status = 'todo'
                              AND (other_jobs.scheduled_at IS NULL
                                   OR other_jobs.scheduled_at <= now())
                              AND (other_jobs.priority > jobs.priority
                                   OR (other_jobs.priority = jobs.priority
                                       AND other_jobs.id < jobs.id))
                          )
                      )
               )
           AND jobs.status = 'todo'
           AND (target_queue_names IS NULL OR jobs.queue_name = ANY (target_queue_names))
           AND (jobs.scheduled_at IS NULL OR jobs.scheduled_at <= now())
         ORDER BY jobs.priority DESC, jobs.id ASC
         LIMIT 1
           FOR UPDATE OF jobs SKIP LOCKED
    )
    UPDATE public.procrastinate_jobs AS j
       SET status = 'doing', worker_id = p_worker_id
      FROM candidate
     WHERE j.id = candidate.id
    RETURNING j.* INTO found_job;
    RETURN found_job;
EXCEPTION
    WHEN unique_violation THEN
        -- Another fetch took an earlier job of the same lock meanwhile (header): no job now.
        RETURN NULL;
END;
$$;

--
-- Name: fetch_jobs(character varying[], bigint, integer); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.fetch_jobs(target_queue_names character varying[], p_worker_id bigint, p_limit integer) RETURNS SETOF public.procrastinate_jobs
    LANGUAGE plpgsql ROWS 10
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET enable_sort TO 'off'
    SET enable_bitmapscan TO 'off'
    SET jit TO 'off'
    AS $$
DECLARE
    ids bigint[];
    fetched public.procrastinate_jobs[];
BEGIN
    BEGIN
        WITH candidate AS (
            SELECT jobs.id, jobs.priority
              FROM public.procrastinate_jobs AS jobs
             WHERE NOT EXISTS (
                       SELECT 1
                         FROM public.procrastinate_jobs AS other_jobs
                        WHERE jobs.lock IS NOT NULL
                          AND other_jobs.lock = jobs.lock
                          AND (
                              -- a job with the same lock is running
                              other_jobs.status = 'doing'
                              OR (
                                  -- an earlier job with the same lock is waiting AND due
                                  other_jobs.status = 'todo'
                                  AND (other_jobs.scheduled_at IS NULL
                                       OR other_jobs.scheduled_at <= now())
                                  AND (other_jobs.priority > jobs.priority
                                       OR (other_jobs.priority = jobs.priority
                                           AND other_jobs.id < jobs.id))
                              )
                          )
                   )
               AND jobs.status = 'todo'
               AND (target_queue_names IS NULL OR jobs.queue_name = ANY (target_queue_names))
               AND (jobs.scheduled_at IS NULL OR jobs.scheduled_at <= now())
             ORDER BY jobs.priority DESC, jobs.id ASC
             LIMIT greatest(p_limit, 1)
               FOR UPDATE OF jobs SKIP LOCKED
        )
        SELECT array_agg(candidate.id ORDER BY candidate.priority DESC, candidate.id)
          INTO ids
          FROM candidate;
        IF ids IS NULL THEN
            RETURN;
        END IF;
        -- Before the UPDATE: its trigger must see which jobs are not started. A mark left by a
        -- start that failed is dropped first (the first job starts in this statement).
        DELETE FROM broseph.unstarted_jobs AS u WHERE u.job_id = ANY (ids);
        INSERT INTO broseph.unstarted_jobs (job_id)
        SELECT unnest(ids[2:])
        ON CONFLICT DO NOTHING;
        WITH taken AS (
            UPDATE public.procrastinate_jobs AS j
               SET status = 'doing', worker_id = p_worker_id
             WHERE j.id = ANY (ids)
            RETURNING j.*
        )
        SELECT array_agg(taken) INTO fetched FROM taken;
    EXCEPTION
        WHEN unique_violation THEN
            -- Another fetch took an earlier job of the same lock meanwhile (0016): no job now.
            RETURN;
    END;
    RETURN QUERY SELECT * FROM unnest(fetched);
END;
$$;

--
-- Name: field_key(text, text[], jsonb); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.field_key(p_job_type text, p_fields text[], p_params jsonb) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    f text;
    key text;
BEGIN
    IF p_fields IS NULL OR cardinality(p_fields) = 0 THEN
        RETURN NULL;
    END IF;
    key := p_job_type;
    FOREACH f IN ARRAY p_fields LOOP
        key := key || ':' || coalesce(p_params ->> f, '');
    END LOOP;
    RETURN key;
END;
$$;

--
-- Name: field_name(text); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.field_name(p_key text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT regexp_replace(left(p_key, (broseph.enqueue_limits() ->> 'echo_max_length')::integer),
                          '[[:cntrl:]]', '?', 'g')
$$;

--
-- Name: job_records; Type: TABLE; Schema: broseph; Owner: -
--

CREATE TABLE broseph.job_records (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    job_type text NOT NULL,
    params jsonb NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    progress smallint DEFAULT 0 NOT NULL,
    progress_message text,
    attempts integer DEFAULT 0 NOT NULL,
    max_attempts integer,
    last_error text,
    result jsonb,
    idempotency_key text,
    coalesce_key text,
    source text DEFAULT 'sql'::text NOT NULL,
    procrastinate_job_id bigint,
    group_id uuid GENERATED ALWAYS AS (((params ->> 'group_id'::text))::uuid) STORED,
    user_id uuid GENERATED ALWAYS AS (((params ->> 'user_id'::text))::uuid) STORED,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    next_attempt_at timestamp with time zone,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    traceparent text,
    tracestate text,
    trouble_status text GENERATED ALWAYS AS (
CASE
    WHEN (status = ANY (ARRAY['retrying'::text, 'failed'::text, 'cancelled'::text])) THEN status
    ELSE NULL::text
END) STORED,
    CONSTRAINT job_records_progress_check CHECK (((progress >= 0) AND (progress <= 100))),
    CONSTRAINT job_records_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'processing'::text, 'retrying'::text, 'completed'::text, 'failed'::text, 'cancelled'::text])))
)
WITH (fillfactor='70');

--
-- Name: COLUMN job_records.coalesce_key; Type: COMMENT; Schema: broseph; Owner: -
--

COMMENT ON COLUMN broseph.job_records.coalesce_key IS 'while the job is pending: the key later enqueues of the same values coalesce into (NULL once it left pending)';

--
-- Name: COLUMN job_records.trouble_status; Type: COMMENT; Schema: broseph; Owner: -
--

COMMENT ON COLUMN broseph.job_records.trouble_status IS 'status when retrying, failed or cancelled, else NULL (generated; indexed for finding them)';

--
-- Name: find_records(text[], text, timestamp with time zone, timestamp with time zone, uuid, uuid, text, timestamp with time zone, uuid, integer); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.find_records(statuses text[] DEFAULT NULL::text[], job_type text DEFAULT NULL::text, created_from timestamp with time zone DEFAULT NULL::timestamp with time zone, created_to timestamp with time zone DEFAULT NULL::timestamp with time zone, group_id uuid DEFAULT NULL::uuid, user_id uuid DEFAULT NULL::uuid, idempotency_key text DEFAULT NULL::text, before_at timestamp with time zone DEFAULT NULL::timestamp with time zone, before_id uuid DEFAULT NULL::uuid, max_rows integer DEFAULT NULL::integer) RETURNS SETOF broseph.job_records
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    -- Open bounds become infinite ones, so each condition below is a plain index bound. The
    -- upper bound is inclusive (created_to is exclusive: one microsecond, timestamptz's
    -- resolution, less), so an open one keeps a stored created_at of 'infinity' in the list.
    -- The cursor's default id is no record's: record ids are version-4 UUIDs.
    lo timestamptz := coalesce(created_from, '-infinity');
    hi timestamptz := coalesce(created_to - interval '1 microsecond', 'infinity');
    cur_at timestamptz := coalesce(before_at, 'infinity');
    cur_id uuid := coalesce(before_id, 'ffffffff-ffff-ffff-ffff-ffffffffffff');
    wanted text[] := coalesce(statuses, ARRAY['pending', 'processing', 'retrying', 'completed',
                                              'failed', 'cancelled']);
    troubled text[] := ARRAY(SELECT s FROM unnest(wanted) AS s
                              WHERE s IN ('retrying', 'failed', 'cancelled'));
BEGIN
    IF find_records.idempotency_key IS NOT NULL THEN
        RETURN QUERY
            SELECT r.* FROM broseph.job_records r
             WHERE r.idempotency_key = find_records.idempotency_key
               AND r.status = ANY (wanted)
               AND r.job_type = coalesce(find_records.job_type, r.job_type)
               AND r.created_at >= lo AND r.created_at <= hi
               AND (r.created_at, r.id) < (cur_at, cur_id)
               AND (find_records.group_id IS NULL OR r.group_id = find_records.group_id)
               AND (find_records.user_id IS NULL OR r.user_id = find_records.user_id);
    ELSIF find_records.group_id IS NOT NULL THEN
        RETURN QUERY
            SELECT r.* FROM broseph.job_records r
             WHERE r.group_id = find_records.group_id
               AND r.created_at >= lo AND r.created_at <= hi
               AND (r.created_at, r.id) < (cur_at, cur_id)
               AND r.status = ANY (wanted)
               AND r.job_type = coalesce(find_records.job_type, r.job_type)
               AND (find_records.user_id IS NULL OR r.user_id = find_records.user_id)
             ORDER BY r.created_at DESC, r.id DESC
             LIMIT max_rows;
    ELSIF find_records.user_id IS NOT NULL THEN
        RETURN QUERY
            SELECT r.* FROM broseph.job_records r
             WHERE r.user_id = find_records.user_id
               AND r.created_at >= lo AND r.created_at <= hi
               AND (r.created_at, r.id) < (cur_at, cur_id)
               AND r.status = ANY (wanted)
               AND r.job_type = coalesce(find_records.job_type, r.job_type)
             ORDER BY r.created_at DESC, r.id DESC
             LIMIT max_rows;
    ELSIF 'completed' = ANY (wanted) THEN
        RETURN QUERY
            SELECT r.* FROM broseph.job_records r
             WHERE r.created_at >= lo AND r.created_at <= hi
               AND (r.created_at, r.id) < (cur_at, cur_id)
               AND r.status = ANY (wanted)
               AND r.job_type = coalesce(find_records.job_type, r.job_type)
             ORDER BY r.created_at DESC, r.id DESC
             LIMIT max_rows;
    ELSE
        RETURN QUERY
            SELECT found.* FROM (
                SELECT r.* FROM public.procrastinate_jobs j
                  JOIN broseph.job_records r ON r.procrastinate_job_id = j.id
                 WHERE wanted && ARRAY['pending', 'processing']  -- else not run at all
                   AND j.status IN ('todo', 'doing')
                   AND r.status IN ('pending', 'processing') AND r.status = ANY (wanted)
                   AND r.job_type = coalesce(find_records.job_type, r.job_type)
                   AND r.created_at >= lo AND r.created_at <= hi
                   AND (r.created_at, r.id) < (cur_at, cur_id)
                UNION ALL
                SELECT t.* FROM (
                    SELECT s.status, jt.name AS job_type
                      FROM unnest(troubled) AS s (status)
                     CROSS JOIN broseph.job_types jt
                     WHERE jt.name = coalesce(find_records.job_type, jt.name)
                ) AS k
                CROSS JOIN LATERAL (
                    SELECT r.* FROM broseph.job_records r
                     WHERE r.trouble_status = k.status AND r.job_type = k.job_type
                       AND r.created_at >= lo AND r.created_at <= hi
                       AND (r.created_at, r.id) < (cur_at, cur_id)
                     ORDER BY r.created_at DESC, r.id DESC
                     LIMIT max_rows
                ) AS t
            ) AS found
            ORDER BY found.created_at DESC, found.id DESC
            LIMIT max_rows;
    END IF;
END;
$$;

--
-- Name: finish_jobs(bigint[], public.procrastinate_job_status[], boolean[], uuid[], text[], jsonb[], integer[], text[], bigint[]); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.finish_jobs(job_ids bigint[], end_statuses public.procrastinate_job_status[], delete_jobs boolean[], record_ids uuid[], errors text[], results jsonb[], progresses integer[], messages text[], start_ids bigint[]) RETURNS TABLE(job_id bigint, outcome text)
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    finishable bigint[];
    startable bigint[];
    aborted bigint[];
BEGIN
    IF EXISTS (SELECT 1 FROM unnest(end_statuses) AS s(status)
                WHERE s.status IS NULL OR s.status NOT IN ('succeeded', 'failed', 'aborted')) THEN
        RAISE 'End status should be either "succeeded", "failed" or "aborted" (job ids: %)',
            job_ids;
    END IF;
    -- Every row this statement changes, locked in id order (no deadlock with a rescue or
    -- another worker's group).
    PERFORM 1
       FROM public.procrastinate_jobs AS j
      WHERE j.id = ANY (job_ids || start_ids)
      ORDER BY j.id
        FOR UPDATE;
    SELECT coalesce(array_agg(j.id), '{}') INTO finishable
      FROM public.procrastinate_jobs AS j
     WHERE j.id = ANY (job_ids) AND j.status IN ('todo', 'doing');

    -- Starts: as in 0032.
    WITH gone AS (
        DELETE FROM broseph.unstarted_jobs AS u
         USING public.procrastinate_jobs AS j
         WHERE u.job_id = ANY (start_ids) AND j.id = u.job_id AND j.status = 'doing'
        RETURNING j.id, j.abort_requested
    )
    SELECT coalesce(array_agg(gone.id) FILTER (WHERE NOT gone.abort_requested), '{}'),
           coalesce(array_agg(gone.id) FILTER (WHERE gone.abort_requested), '{}')
      INTO startable, aborted
      FROM gone;
    UPDATE broseph.job_records AS r
       SET status = 'processing',
           attempts = j.attempts + 1,
           started_at = coalesce(r.started_at, now()),
           next_attempt_at = NULL,
           finished_at = NULL,
           coalesce_key = NULL,
           updated_at = now()
      FROM public.procrastinate_jobs AS j
     WHERE j.id = ANY (startable) AND r.procrastinate_job_id = j.id;
    UPDATE public.procrastinate_jobs AS j
       SET status = 'aborted', abort_requested = false
     WHERE j.id = ANY (aborted);

    -- A finish that keeps its queue row: the note and the end in one write (the trigger's
    -- rules for the end; the note's progress kept only while the record is processing, as
    -- 0032 wrote it before the end). The trigger then finds the record ended and leaves it.
    UPDATE broseph.job_records AS r
       SET status = CASE n.end_status WHEN 'succeeded' THEN 'completed'
                                      WHEN 'failed' THEN 'failed'
                                      ELSE 'cancelled' END,
           attempts = greatest(r.attempts,
                               CASE j.status WHEN 'doing' THEN j.attempts + 1
                                             ELSE j.attempts END),
           next_attempt_at = NULL,
           finished_at = now(),
           result = coalesce(n.result, r.result),
           progress = CASE WHEN n.end_status = 'succeeded' THEN 100
                           WHEN r.status = 'processing' THEN coalesce(n.progress, r.progress)
                           ELSE r.progress END,
           progress_message = CASE WHEN r.status = 'processing'
                                   THEN coalesce(n.message, r.progress_message)
                                   ELSE r.progress_message END,
           last_error = CASE WHEN n.end_status = 'succeeded' THEN NULL
                             WHEN n.end_status = 'aborted'
                                 THEN coalesce(n.error, r.last_error, 'cancelled')
                             ELSE coalesce(n.error, r.last_error) END,
           coalesce_key = NULL,
           updated_at = now()
      FROM unnest(job_ids, end_statuses, delete_jobs, record_ids, errors, results, progresses,
                  messages)
               AS n(job_id, end_status, delete_job, record_id, error, result, progress, message),
           public.procrastinate_jobs AS j
     WHERE n.record_id IS NOT NULL
       AND NOT n.delete_job
       AND r.id = n.record_id
       AND r.procrastinate_job_id = n.job_id
       AND j.id = n.job_id
       AND n.job_id = ANY (finishable);

    -- A finish that deletes its queue row: the note first, then the delete trigger (0032).
    UPDATE broseph.job_records AS r
       SET last_error = coalesce(n.error, r.last_error),
           result = coalesce(n.result, r.result),
           progress = CASE WHEN r.status = 'processing' THEN coalesce(n.progress, r.progress)
                           ELSE r.progress END,
           progress_message = CASE WHEN r.status = 'processing'
                                   THEN coalesce(n.message, r.progress_message)
                                   ELSE r.progress_message END,
           updated_at = now()
      FROM unnest(job_ids, delete_jobs, record_ids, errors, results, progresses, messages)
               AS n(job_id, delete_job, record_id, error, result, progress, message)
     WHERE n.record_id IS NOT NULL
       AND n.delete_job
       AND r.id = n.record_id
       AND n.job_id = ANY (finishable);

    DELETE FROM public.procrastinate_jobs AS j
     USING unnest(job_ids, delete_jobs) AS f(id, delete_job)
     WHERE f.delete_job AND j.id = f.id AND j.id = ANY (finishable);

    UPDATE public.procrastinate_jobs AS j
       SET status = f.end_status,
           abort_requested = false,
           attempts = CASE j.status WHEN 'doing' THEN j.attempts + 1 ELSE j.attempts END
      FROM unnest(job_ids, end_statuses, delete_jobs) AS f(id, end_status, delete_job)
     WHERE NOT f.delete_job AND j.id = f.id AND j.id = ANY (finishable);

    RETURN QUERY
    SELECT f.id, 'finished' FROM unnest(finishable) AS f(id)
    UNION ALL SELECT s.id, 'started' FROM unnest(startable) AS s(id)
    UNION ALL SELECT a.id, 'aborted' FROM unnest(aborted) AS a(id);
END;
$$;

--
-- Name: ingress_enqueue(text, text, text, text, text, jsonb, timestamp with time zone, text, jsonb, timestamp with time zone, integer, jsonb, text, text); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.ingress_enqueue(delivery_key text, source text, queue text, job_id text, job_name text, options jsonb, produced_at timestamp with time zone, job_type text, params jsonb, run_at timestamp with time zone, priority integer, retry jsonb, traceparent text DEFAULT NULL::text, tracestate text DEFAULT NULL::text, OUT record_id uuid, OUT duplicate boolean) RETURNS record
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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

--
-- Name: insert_job(broseph.job_types, jsonb, text, uuid, timestamp with time zone, integer, text, jsonb, text, text); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.insert_job(jt broseph.job_types, p_params jsonb, p_key text, p_rid uuid, p_run_at timestamp with time zone, p_priority integer, p_source text, p_retry jsonb, p_traceparent text DEFAULT NULL::text, p_tracestate text DEFAULT NULL::text) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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

--
-- Name: insert_jobs(broseph.job_types, jsonb[], text[], uuid[], timestamp with time zone, integer, text, jsonb, text, text); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.insert_jobs(jt broseph.job_types, p_params jsonb[], p_keys text[], p_rids uuid[], p_run_at timestamp with time zone, p_priority integer, p_source text, p_retry jsonb, p_traceparent text DEFAULT NULL::text, p_tracestate text DEFAULT NULL::text) RETURNS integer
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET jit TO 'off'
    AS $$
DECLARE
    inserted_count integer;
    job_seq regclass := pg_get_serial_sequence('public.procrastinate_jobs', 'id')::regclass;
    v_max_attempts integer := coalesce((p_retry ->> 'max_attempts')::integer, jt.max_attempts);
    extra jsonb := CASE WHEN p_retry IS NULL THEN '{}'::jsonb
                        ELSE jsonb_build_object('_retry', p_retry) END;
    cf text[] := jt.coalesce_fields;
    lf text[] := jt.lock_fields;
    n_coalesce integer := coalesce(cardinality(jt.coalesce_fields), 0);
    n_lock integer := coalesce(cardinality(jt.lock_fields), 0);
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
               CASE n_coalesce
                   WHEN 0 THEN NULL
                   WHEN 1 THEN jt.name || ':' || coalesce(input.p ->> cf[1], '')
                   WHEN 2 THEN jt.name || ':' || coalesce(input.p ->> cf[1], '')
                               || ':' || coalesce(input.p ->> cf[2], '')
                   WHEN 3 THEN jt.name || ':' || coalesce(input.p ->> cf[1], '')
                               || ':' || coalesce(input.p ->> cf[2], '')
                               || ':' || coalesce(input.p ->> cf[3], '')
                   ELSE broseph.field_key(jt.name, cf, input.p)
               END,
               p_source, v_max_attempts, nextval(job_seq), p_traceparent, p_tracestate
          FROM input
        ON CONFLICT DO NOTHING
        RETURNING r.id, r.params, r.procrastinate_job_id
    ), queued AS (
        INSERT INTO public.procrastinate_jobs
            (id, queue_name, task_name, priority, lock, args, scheduled_at)
        SELECT inserted.procrastinate_job_id, jt.queue, jt.task_name, p_priority,
               CASE n_lock
                   WHEN 0 THEN NULL
                   WHEN 1 THEN jt.name || ':' || coalesce(inserted.params ->> lf[1], '')
                   WHEN 2 THEN jt.name || ':' || coalesce(inserted.params ->> lf[1], '')
                               || ':' || coalesce(inserted.params ->> lf[2], '')
                   WHEN 3 THEN jt.name || ':' || coalesce(inserted.params ->> lf[1], '')
                               || ':' || coalesce(inserted.params ->> lf[2], '')
                               || ':' || coalesce(inserted.params ->> lf[3], '')
                   ELSE broseph.field_key(jt.name, lf, inserted.params)
               END,
               inserted.params || jsonb_build_object('record_id', inserted.id) || extra,
               p_run_at
          FROM inserted
        RETURNING 1
    )
    SELECT count(*) INTO inserted_count FROM queued;
    RETURN inserted_count;
END;
$$;

--
-- Name: is_date(text); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.is_date(s text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
    SELECT CASE
        WHEN s !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN false
        WHEN substr(s, 1, 4)::int < 1 OR substr(s, 6, 2)::int NOT BETWEEN 1 AND 12 THEN false
        ELSE substr(s, 9, 2)::int BETWEEN 1 AND extract(day FROM
            make_date(substr(s, 1, 4)::int, substr(s, 6, 2)::int, 1)
            + interval '1 month' - interval '1 day')::int
    END
$_$;

--
-- Name: is_member(uuid); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.is_member(p_group_id uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
    SELECT EXISTS (
        SELECT 1 FROM public.group_members
        WHERE group_id = p_group_id AND user_id = auth.uid()
    )
$$;

--
-- Name: is_time_zone(text); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.is_time_zone(tz text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT EXISTS (SELECT 1 FROM broseph.time_zone_names WHERE name = tz)
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names WHERE name = tz)
$$;

--
-- Name: job_type(text); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.job_type(p_name text) RETURNS broseph.job_types
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    jt broseph.job_types;
BEGIN
    SELECT * INTO jt FROM broseph.job_types WHERE name = p_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown job type "%" (known: %)', p_name,
            (SELECT string_agg(name, ', ' ORDER BY name) FROM broseph.job_types)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN jt;
END;
$$;

--
-- Name: notification_recipients(uuid, text, uuid, uuid); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.notification_recipients(p_group_id uuid, p_type text, p_sender_id uuid DEFAULT NULL::uuid, p_friend_id uuid DEFAULT NULL::uuid) RETURNS TABLE(user_id uuid)
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT gm.user_id
      FROM public.group_members gm
     WHERE gm.group_id = p_group_id AND NOT gm.muted
       AND gm.user_id IS DISTINCT FROM p_sender_id
       AND (p_type <> 'friend_joined'
            OR gm.joined_at < (SELECT f.joined_at FROM public.group_members f
                                WHERE f.group_id = p_group_id AND f.user_id = p_friend_id))
$$;

--
-- Name: notify_inline(uuid); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.notify_inline(p_group_id uuid) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
    SELECT count(*) <= broseph.notify_inline_max()
      FROM (SELECT 1 FROM public.group_members
             WHERE group_id = p_group_id AND NOT muted
             LIMIT broseph.notify_inline_max() + 1) AS members
$$;

--
-- Name: notify_inline_max(); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.notify_inline_max() RETURNS integer
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT 25 $$;

--
-- Name: notify_members_joined(); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.notify_members_joined() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    PERFORM broseph.enqueue_many(
        'DeliverGroupEvent',
        ARRAY(
            SELECT jsonb_build_object(
                       'group_id', n.group_id, 'type', 'friend_joined', 'friend_id', n.user_id)
              FROM new_members n
             WHERE EXISTS (SELECT 1 FROM public.group_members gm
                            WHERE gm.group_id = n.group_id AND NOT gm.muted
                              AND gm.joined_at < n.joined_at)
             ORDER BY n.group_id, n.user_id),
        NULL, NULL, 0, 'trigger');
    RETURN NULL;
END;
$$;

--
-- Name: notify_new_messages(); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.notify_new_messages() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    jt broseph.job_types := broseph.job_type('DeliverGroupEvent');
BEGIN
    PERFORM broseph.enqueue_many(
        jt.name,
        ARRAY(
            SELECT t.params
              FROM (SELECT g.group_id,
                           jsonb_build_object('group_id', g.group_id, 'type', 'new_message')
                               AS params
                      FROM (SELECT DISTINCT group_id FROM new_messages) AS g
                     -- Someone to tell (broseph.notification_recipients' rule, as a probe that
                     -- stops at the first member): a member, not muted, who sent none of them.
                     WHERE EXISTS (
                               SELECT 1 FROM public.group_members gm
                                WHERE gm.group_id = g.group_id AND NOT gm.muted
                                  AND gm.user_id NOT IN (SELECT m.sender_id FROM new_messages m
                                                          WHERE m.group_id = g.group_id))) AS t
             WHERE NOT EXISTS (
                       SELECT 1 FROM broseph.job_records r
                        WHERE r.coalesce_key = broseph.field_key(jt.name, jt.coalesce_fields, t.params)
                          AND r.status = 'pending')
             -- Key order, like enqueue_many's: concurrent statements wait, never deadlock.
             ORDER BY t.group_id),
        NULL, now() + jt.coalesce_delay, 0, 'trigger');
    RETURN NULL;
END;
$$;

--
-- Name: notify_new_prompts(); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.notify_new_prompts() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    PERFORM broseph.notify_prompts_published(
        ARRAY(SELECT np.id FROM new_prompts np WHERE np.published_at IS NOT NULL ORDER BY np.id));
    RETURN NULL;
END;
$$;

--
-- Name: notify_prompts_published(uuid[]); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.notify_prompts_published(p_prompt_ids uuid[]) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    params jsonb[];
    keys text[];
BEGIN
    SELECT coalesce(array_agg(t.params ORDER BY t.key), ARRAY[]::jsonb[]),
           coalesce(array_agg(t.key ORDER BY t.key), ARRAY[]::text[])
      INTO params, keys
      FROM (SELECT jsonb_build_object(
                       'group_id', p.group_id, 'type', 'new_prompt', 'prompt_id', p.id) AS params,
                   'new_prompt:' || p.id::text AS key
              FROM public.prompts p
             WHERE p.id = ANY (p_prompt_ids)
               -- broseph.notification_recipients(group, 'new_prompt') is not empty, asked as an
               -- index probe: the function (not inlined) would list every member first.
               AND EXISTS (SELECT 1 FROM public.group_members gm
                            WHERE gm.group_id = p.group_id AND NOT gm.muted)) AS t;
    PERFORM broseph.enqueue_many('DeliverGroupEvent', params, keys, NULL, 0, 'trigger');
END;
$$;

--
-- Name: on_messages_inserted(); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.on_messages_inserted() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    PERFORM broseph.enqueue_many(
        'ProcessEngagement',
        ARRAY(
            SELECT DISTINCT jsonb_build_object(
                       'group_id', m.group_id,
                       'local_date',
                       (m.created_at AT TIME ZONE broseph.usable_time_zone(g.time_zone))::date)
              FROM new_messages m
              JOIN public.groups g ON g.id = m.group_id
             ORDER BY 1),
        NULL,
        now() + (SELECT coalesce_delay FROM broseph.job_types WHERE name = 'ProcessEngagement'),
        0, 'trigger');
    RETURN NULL;
END;
$$;

--
-- Name: params_screen(jsonb, jsonb[]); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.params_screen(p_spec jsonb, p_params jsonb[]) RETURNS integer
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET jit TO 'off'
    AS $_$
BEGIN
    RETURN (
    WITH RECURSIVE objects (path, spec) AS (
        SELECT ARRAY[]::text[], p_spec
        UNION ALL
        SELECT o.path || s.k, s.f -> 'fields'
          FROM objects o, jsonb_each(o.spec) AS s (k, f)
         WHERE s.f ->> 'type' = 'object'
    ), rules AS MATERIALIZED (
        SELECT o.path, ARRAY(SELECT jsonb_object_keys(o.spec)) AS keys, NULL::text AS name,
               NULL::jsonb AS f, NULL::text AS kind, NULL::text AS value, NULL::text[] AS need
          FROM objects o
        UNION ALL
        SELECT o.path, NULL, s.k, s.f, s.f ->> 'type', NULL, NULL
          FROM objects o, jsonb_each(o.spec) AS s (k, f)
        UNION ALL
        SELECT o.path, NULL, s.k, NULL, 'requires', c.value_name, string_to_array(n.need, '.')
          FROM objects o, jsonb_each(o.spec) AS s (k, f),
               jsonb_each(s.f -> 'requires') AS c (value_name, paths),
               jsonb_array_elements_text(c.paths) AS n (need)
         WHERE s.f ? 'requires'
    )
    SELECT coalesce(max(coalesce(
               CASE
                   WHEN r.kind = 'requires' THEN
                       CASE WHEN jsonb_typeof(x.obj) IS DISTINCT FROM 'object' THEN 0
                            WHEN (y.v #>> '{}') IS DISTINCT FROM r.value THEN 0
                            WHEN coalesce(jsonb_typeof(x.obj #> r.need), 'null') <> 'null' THEN 0
                            ELSE 2 END
                   WHEN r.name IS NULL THEN
                       CASE WHEN cardinality(r.path) = 0 THEN
                                CASE WHEN jsonb_typeof(p) = 'object' AND p - r.keys = '{}'::jsonb
                                     THEN 0 ELSE 2 END
                            WHEN jsonb_typeof(x.obj) = 'object' THEN
                                CASE WHEN x.obj - r.keys = '{}'::jsonb THEN 0 ELSE 2 END
                            ELSE 0 END
                   WHEN jsonb_typeof(x.obj) IS DISTINCT FROM 'object' THEN 0
                   WHEN y.v IS NULL THEN
                       CASE WHEN coalesce((r.f ->> 'required')::boolean, true) THEN 2 ELSE 0 END
                   WHEN jsonb_typeof(y.v) = 'null' THEN
                       CASE WHEN coalesce((r.f ->> 'required')::boolean, true) THEN 2 ELSE 1 END
                   WHEN r.kind = 'object' THEN
                       CASE WHEN jsonb_typeof(y.v) = 'object' THEN 0 ELSE 2 END
                   WHEN r.kind = 'integer' THEN
                       CASE WHEN jsonb_typeof(y.v) = 'number' AND (y.v #>> '{}') ~ '^-?[0-9]+$'
                            THEN 0 ELSE 2 END
                   WHEN jsonb_typeof(y.v) <> 'string' THEN 2
                   WHEN r.kind = 'uuid' THEN
                       CASE WHEN (y.v #>> '{}')::uuid::text = (y.v #>> '{}') THEN 0
                            WHEN (y.v #>> '{}') ~ ('^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}'
                                                   '-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')
                            THEN 1 ELSE 2 END
                   WHEN r.kind = 'date' THEN
                       CASE WHEN length(y.v #>> '{}') = 10
                                 AND to_char((y.v #>> '{}')::date, 'YYYY-MM-DD') = (y.v #>> '{}')
                            THEN 0 ELSE 2 END
                   WHEN r.kind = 'enum' THEN
                       CASE WHEN (r.f -> 'values') ? (y.v #>> '{}') THEN 0 ELSE 2 END
                   WHEN r.kind = 'text' THEN
                       CASE WHEN length(y.v #>> '{}') <= coalesce((r.f ->> 'max_length')::integer,
                                 (broseph.enqueue_limits() ->> 'text_max_length')::integer)
                            THEN 0 ELSE 2 END
                   ELSE 0
               END, 2)), 0)
      FROM unnest(p_params) AS p
     CROSS JOIN rules r
     CROSS JOIN LATERAL (SELECT p #> r.path AS obj) x
     CROSS JOIN LATERAL (SELECT x.obj -> r.name AS v) y
    );
EXCEPTION WHEN data_exception THEN
    -- A value that is not a UUID or a date at all: 0015's query says which answer it gets.
    RETURN broseph.params_screen_exact(p_spec, p_params);
END;
$_$;

--
-- Name: params_screen_exact(jsonb, jsonb[]); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.params_screen_exact(p_spec jsonb, p_params jsonb[]) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET jit TO 'off'
    AS $_$
    WITH RECURSIVE objects (path, spec) AS (
        SELECT ARRAY[]::text[], p_spec
        UNION ALL
        SELECT o.path || s.k, s.f -> 'fields'
          FROM objects o, jsonb_each(o.spec) AS s (k, f)
         WHERE s.f ->> 'type' = 'object'
    ), rules AS MATERIALIZED (
        SELECT o.path, ARRAY(SELECT jsonb_object_keys(o.spec)) AS keys, NULL::text AS name,
               NULL::jsonb AS f, NULL::text AS kind, NULL::text AS value, NULL::text[] AS need
          FROM objects o
        UNION ALL
        SELECT o.path, NULL, s.k, s.f, s.f ->> 'type', NULL, NULL
          FROM objects o, jsonb_each(o.spec) AS s (k, f)
        UNION ALL
        SELECT o.path, NULL, s.k, NULL, 'requires', c.value_name, string_to_array(n.need, '.')
          FROM objects o, jsonb_each(o.spec) AS s (k, f),
               jsonb_each(s.f -> 'requires') AS c (value_name, paths),
               jsonb_array_elements_text(c.paths) AS n (need)
         WHERE s.f ? 'requires'
    )
    SELECT coalesce(max(coalesce(
               CASE
                   WHEN r.kind = 'requires' THEN
                       CASE WHEN jsonb_typeof(x.obj) IS DISTINCT FROM 'object' THEN 0
                            WHEN (y.v #>> '{}') IS DISTINCT FROM r.value THEN 0
                            WHEN coalesce(jsonb_typeof(x.obj #> r.need), 'null') <> 'null' THEN 0
                            ELSE 2 END
                   WHEN r.name IS NULL THEN
                       CASE WHEN cardinality(r.path) = 0 THEN
                                CASE WHEN jsonb_typeof(p) = 'object' AND p - r.keys = '{}'::jsonb
                                     THEN 0 ELSE 2 END
                            WHEN jsonb_typeof(x.obj) = 'object' THEN
                                CASE WHEN x.obj - r.keys = '{}'::jsonb THEN 0 ELSE 2 END
                            ELSE 0 END
                   WHEN jsonb_typeof(x.obj) IS DISTINCT FROM 'object' THEN 0
                   WHEN y.v IS NULL THEN
                       CASE WHEN coalesce((r.f ->> 'required')::boolean, true) THEN 2 ELSE 0 END
                   WHEN jsonb_typeof(y.v) = 'null' THEN
                       CASE WHEN coalesce((r.f ->> 'required')::boolean, true) THEN 2 ELSE 1 END
                   WHEN r.kind = 'object' THEN
                       CASE WHEN jsonb_typeof(y.v) = 'object' THEN 0 ELSE 2 END
                   WHEN r.kind = 'integer' THEN
                       CASE WHEN jsonb_typeof(y.v) = 'number' AND (y.v #>> '{}') ~ '^-?[0-9]+$'
                            THEN 0 ELSE 2 END
                   WHEN jsonb_typeof(y.v) <> 'string' THEN 2
                   WHEN r.kind = 'uuid' THEN
                       CASE WHEN (y.v #>> '{}')
                                 ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                            THEN 0
                            WHEN (y.v #>> '{}') ~ ('^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}'
                                                   '-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')
                            THEN 1 ELSE 2 END
                   WHEN r.kind = 'date' THEN
                       CASE WHEN broseph.is_date(y.v #>> '{}') THEN 0 ELSE 2 END
                   WHEN r.kind = 'enum' THEN
                       CASE WHEN (r.f -> 'values') ? (y.v #>> '{}') THEN 0 ELSE 2 END
                   WHEN r.kind = 'text' THEN
                       CASE WHEN length(y.v #>> '{}') <= coalesce((r.f ->> 'max_length')::integer,
                                 (broseph.enqueue_limits() ->> 'text_max_length')::integer)
                            THEN 0 ELSE 2 END
                   ELSE 0
               END, 2)), 0)
      FROM unnest(p_params) AS p
     CROSS JOIN rules r
     CROSS JOIN LATERAL (SELECT p #> r.path AS obj) x
     CROSS JOIN LATERAL (SELECT x.obj -> r.name AS v) y
$_$;

--
-- Name: FUNCTION params_screen_exact(p_spec jsonb, p_params jsonb[]); Type: COMMENT; Schema: broseph; Owner: -
--

COMMENT ON FUNCTION broseph.params_screen_exact(p_spec jsonb, p_params jsonb[]) IS 'migrations/0015''s params_screen, rule by rule: broseph.params_screen''s answer when a value of the batch does not cast';

--
-- Name: publish_due_prompts(integer, timestamp with time zone); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.publish_due_prompts(p_hour integer, p_at timestamp with time zone DEFAULT now()) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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

--
-- Name: queue_rows_inserted(); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.queue_rows_inserted() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    -- What procrastinate_trigger_function_status_events_insert_v1 writes, per 'todo' row.
    INSERT INTO public.procrastinate_events (job_id, type)
    SELECT n.id, 'deferred'::public.procrastinate_job_event_type
      FROM inserted_jobs n
     WHERE n.status = 'todo'::public.procrastinate_job_status;
    -- What procrastinate_notify_queue_job_inserted_v1 sends, once per queue instead of per job.
    PERFORM pg_notify(c.channel, q.payload)
       FROM (SELECT n.queue_name,
                    json_build_object('type', 'job_inserted', 'job_id', min(n.id))::text AS payload
               FROM inserted_jobs n
              WHERE n.status = 'todo'::public.procrastinate_job_status
              GROUP BY n.queue_name) AS q
      CROSS JOIN LATERAL (VALUES ('procrastinate_queue_v1#' || q.queue_name),
                                 ('procrastinate_any_queue_v1')) AS c (channel);
    RETURN NULL;
END;
$$;

--
-- Name: raise_with_column(text, text, text, text); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.raise_with_column(p_message text, p_detail text, p_hint text, p_column text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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

--
-- Name: refuse_idempotency_key(text, text); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.refuse_idempotency_key(p_key text, p_column text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    RAISE EXCEPTION '% must be 1 to % characters (NULL for no key), got % characters: %',
        p_column, broseph.enqueue_limits() ->> 'idempotency_key_max_length', length(p_key),
        broseph.echo(p_key)
        USING ERRCODE = 'invalid_parameter_value', COLUMN = p_column;
END;
$$;

--
-- Name: release_jobs(bigint, bigint[]); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.release_jobs(p_worker_id bigint, job_ids bigint[]) RETURNS SETOF bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    released bigint[];
    queue_names text[];
    queue text;
    wake text;
BEGIN
    WITH back AS (
        UPDATE public.procrastinate_jobs AS j
           SET status = 'todo', worker_id = NULL
         WHERE j.id = ANY (job_ids)
           AND j.status = 'doing'
           AND j.worker_id IS NOT DISTINCT FROM p_worker_id
           AND EXISTS (SELECT 1 FROM broseph.unstarted_jobs AS u WHERE u.job_id = j.id)
        RETURNING j.id, j.queue_name
    )
    SELECT array_agg(back.id), array_agg(DISTINCT back.queue_name) INTO released, queue_names
      FROM back;
    DELETE FROM broseph.unstarted_jobs AS u WHERE u.job_id = ANY (job_ids);
    IF released IS NULL THEN
        RETURN;
    END IF;
    -- procrastinate only notifies on INSERT; wake the workers like its trigger would.
    wake := json_build_object('type', 'job_inserted', 'job_id', NULL)::text;
    FOREACH queue IN ARRAY queue_names LOOP
        PERFORM pg_notify('procrastinate_queue_v1#' || queue, wake);
    END LOOP;
    PERFORM pg_notify('procrastinate_any_queue_v1', wake);
    RETURN QUERY SELECT unnest(released);
END;
$$;

--
-- Name: rescue_lost_jobs(double precision); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.rescue_lost_jobs(lost_after_seconds double precision) RETURNS TABLE(job_id bigint, record_id uuid, worker_id bigint, action text)
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    lost record;
    reason text;
    wake text;
BEGIN
    FOR lost IN
        SELECT j.id, j.worker_id, j.attempts, j.abort_requested, j.queue_name,
               w.last_heartbeat, r.id AS rid, r.max_attempts AS max_attempts,
               u.job_id IS NOT NULL AS unstarted
          FROM procrastinate_jobs j
          LEFT JOIN procrastinate_workers w ON w.id = j.worker_id
          LEFT JOIN broseph.job_records r ON r.procrastinate_job_id = j.id
          LEFT JOIN broseph.unstarted_jobs u ON u.job_id = j.id
         WHERE j.status = 'doing'
           AND (w.id IS NULL
                OR w.last_heartbeat < now() - make_interval(secs => lost_after_seconds))
         ORDER BY j.id
           FOR UPDATE OF j SKIP LOCKED
    LOOP
        reason := format('worker lost (worker %s, last heartbeat %s)',
                         coalesce(lost.worker_id::text, 'gone'),
                         coalesce(to_char(now() - lost.last_heartbeat, 'HH24:MI:SS') || ' ago',
                                  'unknown'));
        wake := json_build_object('type', 'job_inserted', 'job_id', lost.id)::text;
        IF lost.unstarted THEN
            -- Fetched, never started: nothing happened to it. Back to waiting as it was (the
            -- record is left alone while the unstarted row exists), or cancelled if asked.
            IF lost.abort_requested THEN
                action := 'cancelled';
                DELETE FROM broseph.unstarted_jobs u WHERE u.job_id = lost.id;
                UPDATE procrastinate_jobs SET status = 'aborted', abort_requested = false
                 WHERE id = lost.id;
            ELSE
                action := 'released';
                UPDATE procrastinate_jobs SET status = 'todo', worker_id = NULL
                 WHERE id = lost.id;
                DELETE FROM broseph.unstarted_jobs u WHERE u.job_id = lost.id;
                PERFORM pg_notify('procrastinate_queue_v1#' || lost.queue_name, wake);
                PERFORM pg_notify('procrastinate_any_queue_v1', wake);
            END IF;
        ELSE
            UPDATE broseph.job_records SET last_error = reason, updated_at = now()
             WHERE id = lost.rid;
            IF lost.abort_requested THEN
                action := 'cancelled';
                PERFORM procrastinate_finish_job_v1(lost.id, 'aborted', false);
            ELSIF lost.attempts + 1 < coalesce(lost.max_attempts, 1) THEN
                action := 'retried';
                PERFORM procrastinate_retry_job_v2(lost.id, now(), NULL, NULL, NULL);
                -- procrastinate only notifies on INSERT; wake the workers like its trigger would.
                PERFORM pg_notify('procrastinate_queue_v1#' || lost.queue_name, wake);
                PERFORM pg_notify('procrastinate_any_queue_v1', wake);
            ELSE
                action := 'failed';
                PERFORM procrastinate_finish_job_v1(lost.id, 'failed', false);
            END IF;
        END IF;
        job_id := lost.id;
        record_id := lost.rid;
        worker_id := lost.worker_id;
        RETURN NEXT;
    END LOOP;
    DELETE FROM procrastinate_workers w
     WHERE w.last_heartbeat < now() - make_interval(secs => lost_after_seconds);
END;
$$;

--
-- Name: retry_job(bigint, timestamp with time zone, integer, character varying, character varying, uuid, text, jsonb, integer, text); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.retry_job(job_id bigint, retry_at timestamp with time zone, new_priority integer, new_queue_name character varying, new_lock character varying, record_id uuid, error text, result jsonb, progress integer, message text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    UPDATE broseph.job_records AS r
       SET last_error = coalesce(retry_job.error, r.last_error),
           result = coalesce(retry_job.result, r.result),
           progress = CASE WHEN r.status = 'processing'
                           THEN coalesce(retry_job.progress, r.progress) ELSE r.progress END,
           progress_message = CASE WHEN r.status = 'processing'
                                   THEN coalesce(retry_job.message, r.progress_message)
                                   ELSE r.progress_message END,
           updated_at = now()
     WHERE r.id = retry_job.record_id;
    -- Raises procrastinate's "Job was not found or …" (rolling the note back with it).
    PERFORM public.procrastinate_retry_job_v2(
        retry_job.job_id, retry_job.retry_at, retry_job.new_priority, retry_job.new_queue_name,
        retry_job.new_lock);
END;
$$;

--
-- Name: security_findings(); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.security_findings() RETURNS TABLE(object text, role text, privileges text[], problem text, fix text)
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    WITH clients (oid, role, keyword) AS (
        SELECT 0::oid, 'PUBLIC', 'PUBLIC'
        UNION ALL
        SELECT r.oid, r.rolname::text, format('%I', r.rolname)
          FROM pg_catalog.pg_roles r WHERE r.rolname IN ('anon', 'authenticated')
    ), client_columns (name) AS (
        -- What a member may see of a job record: the columns of the apps' read path (0020).
        SELECT a.attname::text
          FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = to_regclass('public.broseph_job_status')
           AND a.attnum > 0 AND NOT a.attisdropped
    ), allowed (object, role, privilege) AS (
        SELECT format('broseph.job_records (%I)', c.name), 'authenticated', 'SELECT'
          FROM client_columns c
        UNION ALL
        VALUES ('broseph.is_member(uuid)', 'authenticated', 'EXECUTE'),
               ('broseph.is_time_zone(text)', 'authenticated', 'EXECUTE'),
               ('public.broseph_job_status', 'authenticated', 'SELECT'),
               ('broseph.job_types', 'authenticated', 'SELECT'),
               ('broseph.time_zone_names', 'anon', 'SELECT'),
               ('broseph.time_zone_names', 'authenticated', 'SELECT'),
               ('schema broseph', 'anon', 'USAGE'),
               ('schema broseph', 'authenticated', 'USAGE'),
               ('schema public', 'anon', 'USAGE'),
               ('schema public', 'authenticated', 'USAGE'),
               ('schema public', 'PUBLIC', 'USAGE')
    ), relations AS (
        SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS name, c.relkind, c.relacl,
               c.relowner
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
           AND ((n.nspname = 'public'
                 AND (c.relname LIKE 'procrastinate\_%' OR c.relname LIKE 'broseph\_%'))
                OR n.nspname = 'broseph')
    ), objects (object, target, col, acl) AS (
        -- Relations: table-level grants (target: what follows ON in the fix).
        SELECT r.name,
               CASE WHEN r.relkind = 'S' THEN 'SEQUENCE ' ELSE 'TABLE ' END || r.name, NULL::text,
               coalesce(r.relacl, acldefault(CASE WHEN r.relkind = 'S' THEN 's' ELSE 'r'
                                             END::"char", r.relowner))
          FROM relations r
        UNION ALL
        -- Column-level grants, one object per column ("broseph.job_records (params)"): a
        -- table-level REVOKE would take the columns clients may read along with the rest.
        SELECT format('%s (%I)', r.name, att.attname), 'TABLE ' || r.name, att.attname::text,
               att.attacl
          FROM relations r JOIN pg_catalog.pg_attribute att ON att.attrelid = r.oid
         WHERE att.attacl IS NOT NULL AND att.attnum > 0 AND NOT att.attisdropped
        UNION ALL
        SELECT format('%I.%I(%s)', n.nspname, p.proname, oidvectortypes(p.proargtypes)),
               'FUNCTION ' || p.oid::regprocedure::text, NULL,
               coalesce(p.proacl, acldefault('f', p.proowner))
          FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE (n.nspname = 'public'
                AND (p.proname LIKE 'procrastinate\_%' OR p.proname LIKE 'broseph\_%'))
            OR n.nspname = 'broseph'
        UNION ALL
        SELECT 'schema ' || n.nspname, 'SCHEMA ' || quote_ident(n.nspname), NULL,
               coalesce(n.nspacl, acldefault('n', n.nspowner))
          FROM pg_catalog.pg_namespace n WHERE n.nspname IN ('public', 'broseph')
    ), granted AS (
        SELECT DISTINCT o.object, o.target, o.col, c.role, c.keyword,
               g.privilege_type AS privilege
          FROM objects o, aclexplode(o.acl) g, clients c
         WHERE g.grantee = c.oid
           AND NOT EXISTS (SELECT 1 FROM allowed a
                            WHERE a.object = o.object AND a.role = c.role
                              AND a.privilege = g.privilege_type)
    ), order_of (privilege, rank) AS (
        SELECT p, r FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE',
                                      'REFERENCES', 'TRIGGER', 'MAINTAIN', 'USAGE', 'CREATE',
                                      'EXECUTE'])
                         WITH ORDINALITY AS u (p, r)
    ), grants AS (
        SELECT g.object, g.role,
               array_agg(g.privilege ORDER BY o.rank) AS privileges,
               format('%s can %s %s', g.role,
                      array_to_string(array_agg(g.privilege ORDER BY o.rank), ', '), g.object)
                   AS problem,
               format('REVOKE %s ON %s FROM %s',
                      string_agg(g.privilege || coalesce(' (' || quote_ident(g.col) || ')', ''),
                                 ', ' ORDER BY o.rank),
                      g.target, g.keyword) AS fix
          FROM granted g JOIN order_of o ON o.privilege = g.privilege
         GROUP BY g.object, g.target, g.col, g.role, g.keyword
    ), rls_tables (name) AS (
        SELECT 'broseph.job_records'
        UNION ALL
        SELECT 'public.' || t
          FROM unnest(ARRAY['profiles', 'groups', 'group_members', 'prompts', 'messages',
                            'device_tokens', 'notification_preferences', 'notifications',
                            'group_engagement_daily']) AS t
         -- Adopted (the runner records adopt/0002_domain.sql): the app's tables, the app's RLS.
         WHERE NOT EXISTS (SELECT 1 FROM broseph.schema_migrations
                            WHERE name = 'adopt/0002_domain.sql')
    ), rls AS (
        SELECT t.name AS object, NULL::text AS role, NULL::text[] AS privileges,
               format('row-level security is off on %s', t.name) AS problem,
               format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', t.name) AS fix
          FROM rls_tables t JOIN pg_catalog.pg_class c ON c.oid = to_regclass(t.name)
         WHERE NOT c.relrowsecurity
    ), required (object, kind, role, privilege, why) AS (
        VALUES ('broseph.is_member(uuid)', 'FUNCTION', 'authenticated', 'EXECUTE',
                'RLS policies call it'),
               ('broseph.is_time_zone(text)', 'FUNCTION', 'authenticated', 'EXECUTE',
                'the time-zone CHECKs call it'),
               ('broseph.time_zone_names', 'TABLE', 'authenticated', 'SELECT',
                'the time-zone CHECKs read it'),
               ('public.broseph_job_status', 'TABLE', 'authenticated', 'SELECT',
                'users read their job records'),
               ('broseph', 'SCHEMA', 'authenticated', 'USAGE', 'users read their job records'),
               ('broseph.enqueue(text, jsonb, text, timestamptz, integer, text, jsonb, text, text)',
                'FUNCTION', 'service_role', 'EXECUTE', 'producers enqueue'),
               ('broseph.enqueue_many(text, jsonb[], text[], timestamptz, integer, text, jsonb, text, text)',
                'FUNCTION', 'service_role', 'EXECUTE', 'producers enqueue')
    ), missing AS (
        SELECT q.object, q.role, ARRAY[q.privilege],
               format('%s cannot %s %s%s (%s)', q.role, q.privilege,
                      CASE q.kind WHEN 'SCHEMA' THEN 'schema ' ELSE '' END, q.object, q.why),
               format('GRANT %s ON %s %s TO %I', q.privilege, q.kind, q.object, q.role)
          FROM required q
         WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = q.role)
           AND NOT CASE q.kind
                   WHEN 'FUNCTION' THEN coalesce(has_function_privilege(
                       q.role, to_regprocedure(q.object), q.privilege), true)
                   WHEN 'TABLE' THEN coalesce(has_table_privilege(
                       q.role, to_regclass(q.object), q.privilege), true)
                   ELSE has_schema_privilege(q.role, q.object, q.privilege) END
    ), missing_columns AS (
        -- The view reads these as its caller; Realtime sends a subscriber only these.
        SELECT 'broseph.job_records', 'authenticated', ARRAY['SELECT'],
               format('authenticated cannot SELECT broseph.job_records (%s) (users read their job records)',
                      string_agg(quote_ident(c.name), ', ' ORDER BY c.name)),
               format('GRANT SELECT (%s) ON TABLE broseph.job_records TO authenticated',
                      string_agg(quote_ident(c.name), ', ' ORDER BY c.name))
          FROM client_columns c
         WHERE NOT has_column_privilege('authenticated', 'broseph.job_records', c.name, 'SELECT')
        HAVING count(*) > 0
    ), invoker AS (
        SELECT 'public.broseph_job_status', NULL::text, NULL::text[],
               'public.broseph_job_status runs with its owner''s rights (security_invoker is off): every job record is readable through it',
               'ALTER VIEW public.broseph_job_status SET (security_invoker = true)'
          FROM pg_catalog.pg_class c
         WHERE c.oid = to_regclass('public.broseph_job_status')
           AND NOT EXISTS (SELECT 1 FROM unnest(c.reloptions) o
                            WHERE lower(o) IN ('security_invoker=true', 'security_invoker=on',
                                               'security_invoker=1', 'security_invoker=yes'))
    ), realtime AS (
        -- Supabase Realtime streams what supabase_realtime publishes (where the publication
        -- exists: not on plain PostgreSQL until someone creates it). broseph.job_records is in it
        -- with the view's columns as its column list: a consumer of the publication gets no
        -- internals, whatever it does with column privileges. One step per run of the fixes: an
        -- entry with other columns is dropped, then added again (no ALTER changes a column list).
        SELECT 'publication supabase_realtime', NULL::text, NULL::text[],
               CASE WHEN pr.oid IS NULL
                    THEN 'broseph.job_records is not published to supabase_realtime (apps cannot subscribe to job progress)'
                    WHEN EXISTS (SELECT 1 FROM unnest(published.names) n
                                  WHERE n <> ALL (wanted.names))
                    THEN format('supabase_realtime publishes internals of broseph.job_records (%s)',
                                (SELECT string_agg(n, ', ' ORDER BY n) FROM unnest(published.names) n
                                  WHERE n <> ALL (wanted.names)))
                    ELSE format('supabase_realtime publishes broseph.job_records without %s',
                                (SELECT string_agg(n, ', ' ORDER BY n) FROM unnest(wanted.names) n
                                  WHERE n <> ALL (published.names)))
               END,
               CASE WHEN pr.oid IS NULL
                    THEN format('ALTER PUBLICATION supabase_realtime ADD TABLE broseph.job_records (%s)',
                                (SELECT string_agg(quote_ident(n), ', ' ORDER BY n)
                                   FROM unnest(wanted.names) n))
                    ELSE 'ALTER PUBLICATION supabase_realtime DROP TABLE broseph.job_records'
               END
          FROM pg_catalog.pg_publication p
          -- Generated columns (group_id, user_id) cannot be in a column list before PostgreSQL
          -- 18 (nor are they decoded): Realtime's RLS check reads them from the table.
          CROSS JOIN (SELECT array_agg(c.name ORDER BY c.name) AS names
                        FROM client_columns c JOIN pg_catalog.pg_attribute a
                          ON a.attrelid = to_regclass('broseph.job_records') AND a.attname = c.name
                       WHERE a.attgenerated = '') wanted
          LEFT JOIN pg_catalog.pg_publication_rel pr
                 ON pr.prpubid = p.oid AND pr.prrelid = to_regclass('broseph.job_records')
          LEFT JOIN LATERAL (
              -- NULL prattrs: every column.
              SELECT array_agg(a.attname::text ORDER BY a.attname) AS names
                FROM pg_catalog.pg_attribute a
               WHERE a.attrelid = pr.prrelid AND a.attnum > 0 AND NOT a.attisdropped
                 AND a.attgenerated = ''
                 AND (pr.prattrs IS NULL OR a.attnum = ANY (pr.prattrs))) published ON true
         WHERE p.pubname = 'supabase_realtime'
           -- FOR ALL TABLES / TABLES IN SCHEMA: no table entry to add, drop or narrow.
           AND NOT p.puballtables
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication_namespace pn
                            WHERE pn.pnpubid = p.oid)
           AND wanted.names IS NOT NULL
           AND (pr.oid IS NULL OR published.names IS DISTINCT FROM wanted.names)
    )
    SELECT * FROM grants
    UNION ALL SELECT * FROM rls
    UNION ALL SELECT * FROM missing
    UNION ALL SELECT * FROM missing_columns
    UNION ALL SELECT * FROM invoker
    UNION ALL SELECT * FROM realtime
    ORDER BY 1, 2
$$;

--
-- Name: server_timestamps(); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.server_timestamps() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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

--
-- Name: snooze_job(bigint, timestamp with time zone, text); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.snooze_job(job_id bigint, until timestamp with time zone, reason text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    job public.procrastinate_jobs;
BEGIN
    SELECT * INTO job FROM public.procrastinate_jobs AS j
     WHERE j.id = job_id AND j.status = 'doing'
       FOR UPDATE;
    IF NOT FOUND THEN
        -- procrastinate's wording: the worker's finish treats it as "already recorded" when a
        -- lost connection made it repeat a snooze whose first try committed (broseph/engine.py).
        RAISE 'Job was not found or has an invalid status to snooze (job id: %)', job_id;
    END IF;
    IF job.abort_requested THEN
        PERFORM public.procrastinate_finish_job_v1(job_id, 'aborted', false);
        RETURN;
    END IF;
    UPDATE public.procrastinate_jobs AS j
       SET status = 'todo', scheduled_at = until
     WHERE j.id = job_id;
    -- After the record trigger (0003), which has just written 'retrying': say what happened.
    UPDATE broseph.job_records AS r
       SET status = CASE WHEN EXISTS (SELECT 1 FROM broseph.job_records AS o
                                       WHERE o.coalesce_key = r.coalesce_key
                                         AND o.status = 'pending' AND o.id <> r.id)
                         THEN 'retrying' ELSE 'pending' END,
           attempts = job.attempts,
           next_attempt_at = until,
           progress_message = left('snoozed: ' || reason, 500),
           updated_at = now()
     WHERE r.procrastinate_job_id = job_id;
END;
$$;

--
-- Name: sync_job_record(); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.sync_job_record() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    target text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM broseph.unstarted_jobs WHERE job_id = OLD.id;
        UPDATE broseph.job_records
           SET status = 'cancelled',
               finished_at = now(),
               updated_at = now(),
               coalesce_key = NULL,
               last_error = coalesce(last_error, 'queue row deleted before the job finished')
         WHERE procrastinate_job_id = OLD.id
           AND status IN ('pending', 'processing', 'retrying');
        RETURN OLD;
    END IF;

    IF NEW.status IN ('todo', 'doing')
       AND EXISTS (SELECT 1 FROM broseph.unstarted_jobs AS u WHERE u.job_id = NEW.id) THEN
        RETURN NEW;  -- held in a worker's buffer, or going back from it: nothing happened yet
    END IF;

    target := CASE NEW.status
                  WHEN 'todo' THEN 'retrying'
                  WHEN 'doing' THEN 'processing'
                  WHEN 'succeeded' THEN 'completed'
                  WHEN 'failed' THEN 'failed'
                  ELSE 'cancelled'
              END;
    UPDATE broseph.job_records AS r
       SET status = target,
           attempts = CASE WHEN NEW.status = 'doing' THEN NEW.attempts + 1
                           ELSE greatest(r.attempts, NEW.attempts) END,
           started_at = CASE WHEN NEW.status = 'doing' THEN coalesce(r.started_at, now())
                             ELSE r.started_at END,
           next_attempt_at = CASE WHEN NEW.status = 'todo' THEN coalesce(NEW.scheduled_at, now())
                                  ELSE NULL END,
           finished_at = CASE WHEN NEW.status IN ('todo', 'doing') THEN NULL ELSE now() END,
           progress = CASE WHEN NEW.status = 'succeeded' THEN 100 ELSE r.progress END,
           last_error = CASE
                            WHEN NEW.status = 'succeeded' THEN NULL
                            WHEN NEW.status IN ('cancelled', 'aborted')
                                THEN coalesce(r.last_error, 'cancelled')
                            ELSE r.last_error
                        END,
           coalesce_key = NULL,
           updated_at = now()
     WHERE r.procrastinate_job_id = NEW.id
       -- Ended by broseph.finish_jobs in this transaction, note and end in one write: done.
       AND NOT (target IN ('completed', 'failed', 'cancelled')
                AND r.status = target
                AND r.finished_at = now());
    RETURN NEW;
END;
$$;

--
-- Name: take_budget(text[], double precision[], timestamp with time zone, double precision[]); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.take_budget(names text[], amounts double precision[], now_at timestamp with time zone, per_minute double precision[]) RETURNS double precision
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    n integer := coalesce(cardinality(names), 0);
    i integer;
    ordered integer[];
    capacity double precision;
    rate double precision;
    bucket broseph.rate_budgets;
    have double precision[] := array_fill(0::double precision, ARRAY[n]);
    short double precision[] := array_fill(0::double precision, ARRAY[n]);
    ahead double precision[] := array_fill(0::double precision, ARRAY[n]);
    rates double precision[] := array_fill(0::double precision, ARRAY[n]);
    shut double precision;
    wait double precision := 0;
BEGIN
    IF n = 0 OR cardinality(amounts) IS DISTINCT FROM n
       OR cardinality(per_minute) IS DISTINCT FROM n OR now_at IS NULL THEN
        RAISE EXCEPTION 'take_budget needs one amount and one limit per name, and a time'
            USING ERRCODE = '22023';
    END IF;
    FOR i IN 1 .. n LOOP
        IF names[i] IS NULL OR NOT (amounts[i] > 0 AND amounts[i] < 'infinity')
           OR NOT (per_minute[i] > 0 AND per_minute[i] < 'infinity') THEN
            RAISE EXCEPTION 'take_budget: % needs a positive, finite amount and limit', names[i]
                USING ERRCODE = '22023';
        END IF;
    END LOOP;
    -- Lock (creating full where missing) in name order: two takers of the same buckets queue.
    SELECT array_agg(k ORDER BY names[k]) INTO ordered FROM generate_series(1, n) AS k;
    FOREACH i IN ARRAY ordered LOOP
        capacity := per_minute[i] / 60;
        INSERT INTO broseph.rate_budgets AS b (name, tokens, updated_at)
        VALUES (names[i], capacity, now_at)
        ON CONFLICT (name) DO NOTHING;
        SELECT * INTO bucket FROM broseph.rate_budgets AS b WHERE b.name = names[i] FOR UPDATE;
        rate := (per_minute[i] - capacity) / 63;
        have[i] := least(capacity,
                         bucket.tokens
                         + rate * greatest(extract(epoch FROM now_at - bucket.updated_at), 0));
        rates[i] := rate;
        shut := greatest(extract(epoch FROM bucket.updated_at - now_at), 0);
        short[i] := shut + greatest(least(amounts[i], capacity) - have[i], 0) / rate;
        ahead[i] := greatest(bucket.reserved
                             - rate * greatest(extract(epoch FROM now_at - bucket.reserved_at), 0),
                             0);
    END LOOP;
    IF (SELECT max(s) FROM unnest(short) AS s) > 0 THEN
        -- Refused: wait until this bucket has the amount AND the refused takes before it had
        -- theirs; book this one behind them in every bucket that was short.
        FOR i IN 1 .. n LOOP
            IF short[i] > 0 THEN
                wait := greatest(wait, short[i] + ahead[i] / rates[i]);
                UPDATE broseph.rate_budgets AS b
                   SET reserved = ahead[i] + amounts[i], reserved_at = now_at
                 WHERE b.name = names[i];
            END IF;
        END LOOP;
        RETURN wait;
    END IF;
    FOR i IN 1 .. n LOOP
        UPDATE broseph.rate_budgets AS b
           SET tokens = have[i] - amounts[i], updated_at = greatest(b.updated_at, now_at)
         WHERE b.name = names[i];
    END LOOP;
    RETURN 0;
END;
$$;

--
-- Name: tighten_budget(text, timestamp with time zone); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.tighten_budget(bucket text, until timestamp with time zone) RETURNS void
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    INSERT INTO broseph.rate_budgets AS b (name, tokens, updated_at)
    VALUES (bucket, 0, until)
    ON CONFLICT (name) DO UPDATE
       SET tokens = least(b.tokens, 0), updated_at = greatest(b.updated_at, excluded.updated_at);
$$;

--
-- Name: usable_time_zone(text); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.usable_time_zone(tz text) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT CASE WHEN broseph.is_time_zone(tz) THEN tz ELSE 'UTC' END
$$;

--
-- Name: with_defaults(jsonb, jsonb[]); Type: FUNCTION; Schema: broseph; Owner: -
--

CREATE FUNCTION broseph.with_defaults(p_spec jsonb, p_params jsonb[]) RETURNS jsonb[]
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    k text;
    rule text;
BEGIN
    FOR k, rule IN
        SELECT s.key, s.value ->> 'default' FROM jsonb_each(p_spec) AS s
         WHERE s.value ? 'default' ORDER BY s.key
    LOOP
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM unnest(p_params) AS p WHERE NOT p ? k);
        IF rule = 'group_local_date' THEN
            p_params := ARRAY(
                SELECT CASE WHEN u.p ? k THEN u.p
                            ELSE u.p || jsonb_build_object(k,
                                (now() AT TIME ZONE broseph.usable_time_zone(g.time_zone))::date)
                       END
                  FROM unnest(p_params) WITH ORDINALITY AS u (p, ord)
                  LEFT JOIN public.groups g
                         ON NOT u.p ? k AND g.id = (u.p ->> 'group_id')::uuid
                 ORDER BY u.ord);
        ELSE
            RAISE EXCEPTION 'broseph.job_types: field "%" has an unknown default rule %', k,
                broseph.echo(rule);
        END IF;
    END LOOP;
    RETURN p_params;
END;
$$;

--
-- Name: broseph_enqueue(text, jsonb, text, timestamp with time zone, integer, text, jsonb, text, text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.broseph_enqueue(job_type text, params jsonb, idempotency_key text DEFAULT NULL::text, run_at timestamp with time zone DEFAULT NULL::timestamp with time zone, priority integer DEFAULT 0, source text DEFAULT 'rpc'::text, retry jsonb DEFAULT NULL::jsonb, traceparent text DEFAULT NULL::text, tracestate text DEFAULT NULL::text) RETURNS uuid
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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

--
-- Name: broseph_enqueue_many(text, jsonb, text[], timestamp with time zone, integer, text, jsonb, text, text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.broseph_enqueue_many(job_type text, params jsonb, idempotency_keys text[] DEFAULT NULL::text[], run_at timestamp with time zone DEFAULT NULL::timestamp with time zone, priority integer DEFAULT 0, source text DEFAULT 'rpc'::text, retry jsonb DEFAULT NULL::jsonb, traceparent text DEFAULT NULL::text, tracestate text DEFAULT NULL::text) RETURNS uuid[]
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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

--
-- Name: procrastinate_cancel_job_v1(bigint, boolean, boolean); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.procrastinate_cancel_job_v1(job_id bigint, abort boolean, delete_job boolean) RETURNS bigint
    LANGUAGE plpgsql
    AS $$
DECLARE
    _job_id bigint;
BEGIN
    IF delete_job THEN
        DELETE FROM procrastinate_jobs
        WHERE id = job_id AND status = 'todo'
        RETURNING id INTO _job_id;
    END IF;
    IF _job_id IS NULL THEN
        IF abort THEN
            UPDATE procrastinate_jobs
            SET abort_requested = true,
                status = CASE status
                    WHEN 'todo' THEN 'cancelled'::procrastinate_job_status ELSE status
                END
            WHERE id = job_id AND status IN ('todo', 'doing')
            RETURNING id INTO _job_id;
        ELSE
            UPDATE procrastinate_jobs
            SET status = 'cancelled'::procrastinate_job_status
            WHERE id = job_id AND status = 'todo'
            RETURNING id INTO _job_id;
        END IF;
    END IF;
    RETURN _job_id;
END;
$$;

--
-- Name: procrastinate_defer_jobs_v1(public.procrastinate_job_to_defer_v1[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.procrastinate_defer_jobs_v1(jobs public.procrastinate_job_to_defer_v1[]) RETURNS bigint[]
    LANGUAGE plpgsql
    AS $$
DECLARE
    job_ids bigint[];
BEGIN
    WITH inserted_jobs AS (
        INSERT INTO procrastinate_jobs (queue_name, task_name, priority, lock, queueing_lock, args, scheduled_at)
        SELECT (job).queue_name,
               (job).task_name,
               (job).priority,
               (job).lock,
               (job).queueing_lock,
               (job).args,
               (job).scheduled_at
        FROM unnest(jobs) AS job
        RETURNING id
    )
    SELECT array_agg(id) FROM inserted_jobs INTO job_ids;

    RETURN job_ids;
END;
$$;

--
-- Name: procrastinate_defer_periodic_job_v2(character varying, character varying, character varying, character varying, integer, character varying, bigint, jsonb); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.procrastinate_defer_periodic_job_v2(_queue_name character varying, _lock character varying, _queueing_lock character varying, _task_name character varying, _priority integer, _periodic_id character varying, _defer_timestamp bigint, _args jsonb) RETURNS bigint
    LANGUAGE plpgsql
    AS $$
DECLARE
	_job_id bigint;
	_defer_id bigint;
BEGIN
    INSERT
        INTO procrastinate_periodic_defers (task_name, periodic_id, defer_timestamp)
        VALUES (_task_name, _periodic_id, _defer_timestamp)
        ON CONFLICT DO NOTHING
        RETURNING id into _defer_id;

    IF _defer_id IS NULL THEN
        RETURN NULL;
    END IF;

    UPDATE procrastinate_periodic_defers
        SET job_id = (
            SELECT COALESCE((
                SELECT unnest(procrastinate_defer_jobs_v1(
                    ARRAY[
                        ROW(
                            _queue_name,
                            _task_name,
                            _priority,
                            _lock,
                            _queueing_lock,
                            _args,
                            NULL::timestamptz
                        )
                    ]::procrastinate_job_to_defer_v1[]
                ))
            ), NULL)
        )
        WHERE id = _defer_id
        RETURNING job_id INTO _job_id;

    DELETE
        FROM procrastinate_periodic_defers
        USING (
            SELECT id
            FROM procrastinate_periodic_defers
            WHERE procrastinate_periodic_defers.task_name = _task_name
            AND procrastinate_periodic_defers.periodic_id = _periodic_id
            AND procrastinate_periodic_defers.defer_timestamp < _defer_timestamp
            ORDER BY id
            FOR UPDATE
        ) to_delete
        WHERE procrastinate_periodic_defers.id = to_delete.id;

    RETURN _job_id;
END;
$$;

--
-- Name: procrastinate_fetch_job_v2(character varying[], bigint); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.procrastinate_fetch_job_v2(target_queue_names character varying[], p_worker_id bigint) RETURNS public.procrastinate_jobs
    LANGUAGE plpgsql
    SET enable_sort TO 'off'
    SET enable_bitmapscan TO 'off'
    AS $$
DECLARE
	found_jobs procrastinate_jobs;
BEGIN
    WITH candidate AS (
        SELECT jobs.*
            FROM procrastinate_jobs AS jobs
            WHERE
                -- reject the job if its lock has earlier or higher priority jobs
                NOT EXISTS (
                    SELECT 1
                        FROM procrastinate_jobs AS other_jobs
                        WHERE
                            jobs.lock IS NOT NULL
                            AND other_jobs.lock = jobs.lock
                            AND (
                                -- job with same lock is already running
                                other_jobs.status = 'doing'
                                OR
                                -- job with same lock is waiting and has higher priority (or same priority but was queued first)
                                (
                                    other_jobs.status = 'todo'
                                    AND (
                                        other_jobs.priority > jobs.priority
                                        OR (
                                        other_jobs.priority = jobs.priority
                                        AND other_jobs.id < jobs.id
                                        )
                                    )
                                )
                            )
                )
                AND jobs.status = 'todo'
                AND (target_queue_names IS NULL OR jobs.queue_name = ANY( target_queue_names ))
                AND (jobs.scheduled_at IS NULL OR jobs.scheduled_at <= now())
            ORDER BY jobs.priority DESC, jobs.id ASC LIMIT 1
            FOR UPDATE OF jobs SKIP LOCKED
    )
    UPDATE procrastinate_jobs
        SET status = 'doing', worker_id = p_worker_id
        FROM candidate
        WHERE procrastinate_jobs.id = candidate.id
        RETURNING procrastinate_jobs.* INTO found_jobs;

 RETURN found_jobs;
END;
$$;

--
-- Name: procrastinate_finish_job_v1(bigint, public.procrastinate_job_status, boolean); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.procrastinate_finish_job_v1(job_id bigint, end_status public.procrastinate_job_status, delete_job boolean) RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
    _job_id bigint;
BEGIN
    IF end_status NOT IN ('succeeded', 'failed', 'aborted') THEN
        RAISE 'End status should be either "succeeded", "failed" or "aborted" (job id: %)', job_id;
    END IF;
    IF delete_job THEN
        DELETE FROM procrastinate_jobs
        WHERE id = job_id AND status IN ('todo', 'doing')
        RETURNING id INTO _job_id;
    ELSE
        UPDATE procrastinate_jobs
        SET status = end_status,
            abort_requested = false,
            attempts = CASE status
                WHEN 'doing' THEN attempts + 1 ELSE attempts
            END
        WHERE id = job_id AND status IN ('todo', 'doing')
        RETURNING id INTO _job_id;
    END IF;
    IF _job_id IS NULL THEN
        RAISE 'Job was not found or not in "doing" or "todo" status (job id: %)', job_id;
    END IF;
END;
$$;

--
-- Name: procrastinate_notify_queue_abort_job_v1(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.procrastinate_notify_queue_abort_job_v1() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    payload TEXT;
BEGIN
    SELECT json_build_object('type', 'abort_job_requested', 'job_id', NEW.id)::text INTO payload;
	PERFORM pg_notify('procrastinate_queue_v1#' || NEW.queue_name, payload);
	PERFORM pg_notify('procrastinate_any_queue_v1', payload);
	RETURN NEW;
END;
$$;

--
-- Name: procrastinate_notify_queue_job_inserted_v1(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.procrastinate_notify_queue_job_inserted_v1() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    payload TEXT;
BEGIN
    SELECT json_build_object('type', 'job_inserted', 'job_id', NEW.id)::text INTO payload;
	PERFORM pg_notify('procrastinate_queue_v1#' || NEW.queue_name, payload);
	PERFORM pg_notify('procrastinate_any_queue_v1', payload);
	RETURN NEW;
END;
$$;

--
-- Name: procrastinate_prune_stalled_workers_v1(double precision); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.procrastinate_prune_stalled_workers_v1(seconds_since_heartbeat double precision) RETURNS TABLE(worker_id bigint)
    LANGUAGE plpgsql
    AS $$
BEGIN
    RETURN QUERY
    DELETE FROM procrastinate_workers
    WHERE last_heartbeat < NOW() - (seconds_since_heartbeat || 'SECOND')::INTERVAL
    RETURNING procrastinate_workers.id;
END;
$$;

--
-- Name: procrastinate_register_worker_v1(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.procrastinate_register_worker_v1() RETURNS TABLE(worker_id bigint)
    LANGUAGE plpgsql
    AS $$
BEGIN
    RETURN QUERY
    INSERT INTO procrastinate_workers DEFAULT VALUES
    RETURNING procrastinate_workers.id;
END;
$$;

--
-- Name: procrastinate_retry_job_v1(bigint, timestamp with time zone, integer, character varying, character varying); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.procrastinate_retry_job_v1(job_id bigint, retry_at timestamp with time zone, new_priority integer, new_queue_name character varying, new_lock character varying) RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
    _job_id bigint;
    _abort_requested boolean;
BEGIN
    SELECT abort_requested FROM procrastinate_jobs
    WHERE id = job_id AND status = 'doing'
    FOR UPDATE
    INTO _abort_requested;
    IF _abort_requested THEN
        UPDATE procrastinate_jobs
        SET status = 'failed'::procrastinate_job_status
        WHERE id = job_id AND status = 'doing'
        RETURNING id INTO _job_id;
    ELSE
        UPDATE procrastinate_jobs
        SET status = 'todo'::procrastinate_job_status,
            attempts = attempts + 1,
            scheduled_at = retry_at,
            priority = COALESCE(new_priority, priority),
            queue_name = COALESCE(new_queue_name, queue_name),
            lock = COALESCE(new_lock, lock)
        WHERE id = job_id AND status = 'doing'
        RETURNING id INTO _job_id;
    END IF;

    IF _job_id IS NULL THEN
        RAISE 'Job was not found or not in "doing" status (job id: %)', job_id;
    END IF;
END;
$$;

--
-- Name: procrastinate_retry_job_v2(bigint, timestamp with time zone, integer, character varying, character varying); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.procrastinate_retry_job_v2(job_id bigint, retry_at timestamp with time zone, new_priority integer, new_queue_name character varying, new_lock character varying) RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
    _job_id bigint;
    _abort_requested boolean;
    _current_status procrastinate_job_status;
BEGIN
    SELECT status, abort_requested FROM procrastinate_jobs
    WHERE id = job_id AND status IN ('doing', 'failed')
    FOR UPDATE
    INTO _current_status, _abort_requested;
    IF _current_status = 'doing' AND _abort_requested THEN
        UPDATE procrastinate_jobs
        SET status = 'failed'::procrastinate_job_status
        WHERE id = job_id AND status = 'doing'
        RETURNING id INTO _job_id;
    ELSE
        UPDATE procrastinate_jobs
        SET status = 'todo'::procrastinate_job_status,
            attempts = attempts + 1,
            scheduled_at = retry_at,
            priority = COALESCE(new_priority, priority),
            queue_name = COALESCE(new_queue_name, queue_name),
            lock = COALESCE(new_lock, lock)
        WHERE id = job_id AND status IN ('doing', 'failed')
        RETURNING id INTO _job_id;
    END IF;

    IF _job_id IS NULL THEN
        RAISE 'Job was not found or has an invalid status to retry (job id: %)', job_id;
    END IF;

END;
$$;

--
-- Name: procrastinate_trigger_abort_requested_events_procedure_v1(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.procrastinate_trigger_abort_requested_events_procedure_v1() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    INSERT INTO procrastinate_events(job_id, type)
        VALUES (NEW.id, 'abort_requested'::procrastinate_job_event_type);
    RETURN NEW;
END;
$$;

--
-- Name: procrastinate_trigger_function_scheduled_events_v1(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.procrastinate_trigger_function_scheduled_events_v1() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    INSERT INTO procrastinate_events(job_id, type, at)
        VALUES (NEW.id, 'scheduled'::procrastinate_job_event_type, NEW.scheduled_at);

	RETURN NEW;
END;
$$;

--
-- Name: procrastinate_trigger_function_status_events_insert_v1(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.procrastinate_trigger_function_status_events_insert_v1() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    INSERT INTO procrastinate_events(job_id, type)
        VALUES (NEW.id, 'deferred'::procrastinate_job_event_type);
	RETURN NEW;
END;
$$;

--
-- Name: procrastinate_trigger_function_status_events_update_v1(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.procrastinate_trigger_function_status_events_update_v1() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    WITH t AS (
        SELECT CASE
            WHEN OLD.status = 'todo'::procrastinate_job_status
                AND NEW.status = 'doing'::procrastinate_job_status
                THEN 'started'::procrastinate_job_event_type
            WHEN OLD.status = 'doing'::procrastinate_job_status
                AND NEW.status = 'todo'::procrastinate_job_status
                THEN 'deferred_for_retry'::procrastinate_job_event_type
            WHEN OLD.status = 'doing'::procrastinate_job_status
                AND NEW.status = 'failed'::procrastinate_job_status
                THEN 'failed'::procrastinate_job_event_type
            WHEN OLD.status = 'doing'::procrastinate_job_status
                AND NEW.status = 'succeeded'::procrastinate_job_status
                THEN 'succeeded'::procrastinate_job_event_type
            WHEN OLD.status = 'todo'::procrastinate_job_status
                AND (
                    NEW.status = 'cancelled'::procrastinate_job_status
                    OR NEW.status = 'failed'::procrastinate_job_status
                    OR NEW.status = 'succeeded'::procrastinate_job_status
                )
                THEN 'cancelled'::procrastinate_job_event_type
            WHEN OLD.status = 'doing'::procrastinate_job_status
                AND NEW.status = 'aborted'::procrastinate_job_status
                THEN 'aborted'::procrastinate_job_event_type
            WHEN OLD.status = 'failed'::procrastinate_job_status
                AND NEW.status = 'todo'::procrastinate_job_status
                THEN 'retried'::procrastinate_job_event_type
            ELSE NULL
        END as event_type
    )
    INSERT INTO procrastinate_events(job_id, type)
        SELECT NEW.id, t.event_type
        FROM t
        WHERE t.event_type IS NOT NULL;
	RETURN NEW;
END;
$$;

--
-- Name: procrastinate_unlink_periodic_defers_v1(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.procrastinate_unlink_periodic_defers_v1() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    UPDATE procrastinate_periodic_defers
    SET job_id = NULL
    WHERE job_id = OLD.id;
    RETURN OLD;
END;
$$;

--
-- Name: procrastinate_unregister_worker_v1(bigint); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.procrastinate_unregister_worker_v1(worker_id bigint) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    DELETE FROM procrastinate_workers
    WHERE id = worker_id;
END;
$$;

--
-- Name: procrastinate_update_heartbeat_v1(bigint); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.procrastinate_update_heartbeat_v1(worker_id bigint) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    UPDATE procrastinate_workers
    SET last_heartbeat = NOW()
    WHERE id = worker_id;
END;
$$;

--
-- Name: ingress_quarantine; Type: TABLE; Schema: broseph; Owner: -
--

CREATE TABLE broseph.ingress_quarantine (
    id bigint NOT NULL,
    delivery_key text NOT NULL,
    source text NOT NULL,
    queue text NOT NULL,
    job_id text NOT NULL,
    job_name text NOT NULL,
    raw text NOT NULL,
    reason text NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL,
    replayed_at timestamp with time zone,
    record_id uuid
);

--
-- Name: ingress_quarantine_id_seq; Type: SEQUENCE; Schema: broseph; Owner: -
--

ALTER TABLE broseph.ingress_quarantine ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME broseph.ingress_quarantine_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: ingress_receipts; Type: TABLE; Schema: broseph; Owner: -
--

CREATE TABLE broseph.ingress_receipts (
    delivery_key text NOT NULL,
    source text NOT NULL,
    queue text NOT NULL,
    job_id text NOT NULL,
    job_name text NOT NULL,
    record_id uuid,
    options jsonb DEFAULT '{}'::jsonb NOT NULL,
    produced_at timestamp with time zone,
    received_at timestamp with time zone DEFAULT now() NOT NULL
);

--
-- Name: notification_deliveries; Type: TABLE; Schema: broseph; Owner: -
--

CREATE TABLE broseph.notification_deliveries (
    notification_id uuid NOT NULL,
    device_id uuid NOT NULL,
    status text NOT NULL,
    sends smallint DEFAULT 0 NOT NULL,
    unanswered smallint DEFAULT 0 NOT NULL,
    message_id text,
    error_code text,
    reason text,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT notification_deliveries_status_check CHECK ((status = ANY (ARRAY['sending'::text, 'delivered'::text, 'retry'::text, 'dead_token'::text, 'failed'::text, 'unconfirmed'::text]))),
    CONSTRAINT notification_deliveries_unanswered_check CHECK ((unanswered >= 0))
);

--
-- Name: push_outbox; Type: TABLE; Schema: broseph; Owner: -
--

CREATE TABLE broseph.push_outbox (
    id bigint NOT NULL,
    device_id uuid NOT NULL,
    target_kind text NOT NULL,
    notification_type text NOT NULL,
    title text NOT NULL,
    body text NOT NULL,
    data jsonb NOT NULL,
    collapse_key text,
    message_id text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT push_outbox_target_kind_check CHECK ((target_kind = ANY (ARRAY['fid'::text, 'token'::text])))
);

--
-- Name: push_outbox_id_seq; Type: SEQUENCE; Schema: broseph; Owner: -
--

CREATE SEQUENCE broseph.push_outbox_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

--
-- Name: push_outbox_id_seq; Type: SEQUENCE OWNED BY; Schema: broseph; Owner: -
--

ALTER SEQUENCE broseph.push_outbox_id_seq OWNED BY broseph.push_outbox.id;

--
-- Name: rate_budgets; Type: TABLE; Schema: broseph; Owner: -
--

CREATE TABLE broseph.rate_budgets (
    name text NOT NULL,
    tokens double precision NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    reserved double precision DEFAULT 0 NOT NULL,
    reserved_at timestamp with time zone DEFAULT now() NOT NULL
);

--
-- Name: schema_migrations; Type: TABLE; Schema: broseph; Owner: -
--

CREATE TABLE broseph.schema_migrations (
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

--
-- Name: time_zone_names; Type: TABLE; Schema: broseph; Owner: -
--

CREATE TABLE broseph.time_zone_names (
    name text NOT NULL
);

--
-- Name: unstarted_jobs; Type: TABLE; Schema: broseph; Owner: -
--

CREATE TABLE broseph.unstarted_jobs (
    job_id bigint NOT NULL
);

--
-- Name: broseph_job_status; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.broseph_job_status WITH (security_invoker='true') AS
 SELECT job_records.id,
    job_records.job_type,
    job_records.status,
    job_records.progress,
    job_records.progress_message,
    job_records.group_id,
    job_records.user_id,
    job_records.attempts,
    job_records.created_at,
    job_records.started_at,
    job_records.finished_at,
    job_records.next_attempt_at,
    job_records.updated_at
   FROM broseph.job_records;

--
-- Name: VIEW broseph_job_status; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON VIEW public.broseph_job_status IS 'Status of the jobs about you or your groups (RLS of broseph.job_records applies: security_invoker).';

--
-- Name: device_tokens; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.device_tokens (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    user_id uuid NOT NULL,
    kind text DEFAULT 'fid'::text NOT NULL,
    identifier text NOT NULL,
    platform text DEFAULT 'android'::text NOT NULL,
    disabled_at timestamp with time zone,
    disabled_reason text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT device_tokens_kind_check CHECK ((kind = ANY (ARRAY['fid'::text, 'token'::text]))),
    CONSTRAINT device_tokens_platform_check CHECK ((platform = ANY (ARRAY['android'::text, 'ios'::text, 'web'::text])))
);

--
-- Name: group_engagement_daily; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.group_engagement_daily (
    group_id uuid NOT NULL,
    local_date date NOT NULL,
    message_count integer NOT NULL,
    active_members integer NOT NULL,
    member_count integer NOT NULL,
    messages_per_member numeric(10,2) NOT NULL,
    prompt_response_rate numeric(5,4),
    computed_at timestamp with time zone DEFAULT now() NOT NULL
);

--
-- Name: group_members; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.group_members (
    group_id uuid NOT NULL,
    user_id uuid NOT NULL,
    role text DEFAULT 'member'::text NOT NULL,
    muted boolean DEFAULT false NOT NULL,
    joined_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT group_members_role_check CHECK ((role = ANY (ARRAY['owner'::text, 'member'::text])))
);

--
-- Name: groups; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.groups (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    name text NOT NULL,
    time_zone text DEFAULT 'UTC'::text NOT NULL,
    active boolean DEFAULT true NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT groups_name_check CHECK (((length(name) >= 1) AND (length(name) <= 120))),
    CONSTRAINT groups_time_zone_check CHECK (broseph.is_time_zone(time_zone))
);

--
-- Name: messages; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.messages (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    group_id uuid NOT NULL,
    sender_id uuid NOT NULL,
    body text NOT NULL,
    prompt_id uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

--
-- Name: notification_preferences; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.notification_preferences (
    user_id uuid NOT NULL,
    new_message boolean DEFAULT true NOT NULL,
    prompt_reminder boolean DEFAULT true NOT NULL,
    friend_joined boolean DEFAULT true NOT NULL,
    new_prompt boolean DEFAULT true NOT NULL,
    quiet_start time without time zone,
    quiet_end time without time zone,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT notification_preferences_check CHECK (((quiet_start IS NULL) = (quiet_end IS NULL)))
);

--
-- Name: notifications; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.notifications (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    user_id uuid NOT NULL,
    type text NOT NULL,
    group_id uuid,
    data jsonb DEFAULT '{}'::jsonb NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    reason text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    sent_at timestamp with time zone,
    record_id uuid,
    message_count integer,
    covered_until timestamp with time zone,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT notifications_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'sent'::text, 'skipped'::text, 'failed'::text]))),
    CONSTRAINT notifications_type_check CHECK ((type = ANY (ARRAY['new_message'::text, 'prompt_reminder'::text, 'friend_joined'::text, 'new_prompt'::text])))
);

--
-- Name: procrastinate_events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.procrastinate_events (
    id bigint NOT NULL,
    job_id bigint NOT NULL,
    type public.procrastinate_job_event_type,
    at timestamp with time zone DEFAULT now()
);

--
-- Name: procrastinate_events_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.procrastinate_events_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

--
-- Name: procrastinate_events_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.procrastinate_events_id_seq OWNED BY public.procrastinate_events.id;

--
-- Name: procrastinate_jobs_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.procrastinate_jobs_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

--
-- Name: procrastinate_jobs_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.procrastinate_jobs_id_seq OWNED BY public.procrastinate_jobs.id;

--
-- Name: procrastinate_periodic_defers; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.procrastinate_periodic_defers (
    id bigint NOT NULL,
    task_name character varying(128) NOT NULL,
    defer_timestamp bigint,
    job_id bigint,
    periodic_id character varying(128) DEFAULT ''::character varying NOT NULL
);

--
-- Name: procrastinate_periodic_defers_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.procrastinate_periodic_defers_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

--
-- Name: procrastinate_periodic_defers_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.procrastinate_periodic_defers_id_seq OWNED BY public.procrastinate_periodic_defers.id;

--
-- Name: procrastinate_workers; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.procrastinate_workers (
    id bigint NOT NULL,
    last_heartbeat timestamp with time zone DEFAULT now() NOT NULL
);

--
-- Name: procrastinate_workers_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.procrastinate_workers ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.procrastinate_workers_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: profiles; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.profiles (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    display_name text NOT NULL,
    time_zone text DEFAULT 'UTC'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT profiles_display_name_check CHECK (((length(display_name) >= 1) AND (length(display_name) <= 80))),
    CONSTRAINT profiles_time_zone_check CHECK (broseph.is_time_zone(time_zone))
);

--
-- Name: prompts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.prompts (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    group_id uuid NOT NULL,
    local_date date NOT NULL,
    text text NOT NULL,
    category text NOT NULL,
    follow_up text,
    source text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    published_at timestamp with time zone DEFAULT now(),
    CONSTRAINT prompts_source_check CHECK ((source = ANY (ARRAY['openai'::text, 'offline'::text, 'manual'::text]))),
    CONSTRAINT prompts_text_check CHECK (((length(text) >= 1) AND (length(text) <= 280)))
);

--
-- Name: COLUMN prompts.published_at; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.prompts.published_at IS 'When members got the prompt; NULL while it waits, generated ahead, for its local prompt hour (migrations/0038). Clients never see a NULL one.';

--
-- Name: push_outbox id; Type: DEFAULT; Schema: broseph; Owner: -
--

ALTER TABLE ONLY broseph.push_outbox ALTER COLUMN id SET DEFAULT nextval('broseph.push_outbox_id_seq'::regclass);

--
-- Name: procrastinate_events id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.procrastinate_events ALTER COLUMN id SET DEFAULT nextval('public.procrastinate_events_id_seq'::regclass);

--
-- Name: procrastinate_jobs id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.procrastinate_jobs ALTER COLUMN id SET DEFAULT nextval('public.procrastinate_jobs_id_seq'::regclass);

--
-- Name: procrastinate_periodic_defers id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.procrastinate_periodic_defers ALTER COLUMN id SET DEFAULT nextval('public.procrastinate_periodic_defers_id_seq'::regclass);

--
-- Name: ingress_quarantine ingress_quarantine_delivery_key_key; Type: CONSTRAINT; Schema: broseph; Owner: -
--

ALTER TABLE ONLY broseph.ingress_quarantine
    ADD CONSTRAINT ingress_quarantine_delivery_key_key UNIQUE (delivery_key);

--
-- Name: ingress_quarantine ingress_quarantine_pkey; Type: CONSTRAINT; Schema: broseph; Owner: -
--

ALTER TABLE ONLY broseph.ingress_quarantine
    ADD CONSTRAINT ingress_quarantine_pkey PRIMARY KEY (id);

--
-- Name: ingress_receipts ingress_receipts_pkey; Type: CONSTRAINT; Schema: broseph; Owner: -
--

ALTER TABLE ONLY broseph.ingress_receipts
    ADD CONSTRAINT ingress_receipts_pkey PRIMARY KEY (delivery_key);

--
-- Name: job_records job_records_pkey; Type: CONSTRAINT; Schema: broseph; Owner: -
--

ALTER TABLE ONLY broseph.job_records
    ADD CONSTRAINT job_records_pkey PRIMARY KEY (id);

--
-- Name: job_records job_records_procrastinate_job_id_key; Type: CONSTRAINT; Schema: broseph; Owner: -
--

ALTER TABLE ONLY broseph.job_records
    ADD CONSTRAINT job_records_procrastinate_job_id_key UNIQUE (procrastinate_job_id);

--
-- Name: job_types job_types_pkey; Type: CONSTRAINT; Schema: broseph; Owner: -
--

ALTER TABLE ONLY broseph.job_types
    ADD CONSTRAINT job_types_pkey PRIMARY KEY (name);

--
-- Name: job_types job_types_task_name_key; Type: CONSTRAINT; Schema: broseph; Owner: -
--

ALTER TABLE ONLY broseph.job_types
    ADD CONSTRAINT job_types_task_name_key UNIQUE (task_name);

--
-- Name: notification_deliveries notification_deliveries_pkey; Type: CONSTRAINT; Schema: broseph; Owner: -
--

ALTER TABLE ONLY broseph.notification_deliveries
    ADD CONSTRAINT notification_deliveries_pkey PRIMARY KEY (notification_id, device_id);

--
-- Name: push_outbox push_outbox_pkey; Type: CONSTRAINT; Schema: broseph; Owner: -
--

ALTER TABLE ONLY broseph.push_outbox
    ADD CONSTRAINT push_outbox_pkey PRIMARY KEY (id);

--
-- Name: rate_budgets rate_budgets_pkey; Type: CONSTRAINT; Schema: broseph; Owner: -
--

ALTER TABLE ONLY broseph.rate_budgets
    ADD CONSTRAINT rate_budgets_pkey PRIMARY KEY (name);

--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: broseph; Owner: -
--

ALTER TABLE ONLY broseph.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (name);

--
-- Name: time_zone_names time_zone_names_pkey; Type: CONSTRAINT; Schema: broseph; Owner: -
--

ALTER TABLE ONLY broseph.time_zone_names
    ADD CONSTRAINT time_zone_names_pkey PRIMARY KEY (name);

--
-- Name: unstarted_jobs unstarted_jobs_pkey; Type: CONSTRAINT; Schema: broseph; Owner: -
--

ALTER TABLE ONLY broseph.unstarted_jobs
    ADD CONSTRAINT unstarted_jobs_pkey PRIMARY KEY (job_id);

--
-- Name: device_tokens device_tokens_identifier_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.device_tokens
    ADD CONSTRAINT device_tokens_identifier_key UNIQUE (identifier);

--
-- Name: device_tokens device_tokens_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.device_tokens
    ADD CONSTRAINT device_tokens_pkey PRIMARY KEY (id);

--
-- Name: group_engagement_daily group_engagement_daily_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.group_engagement_daily
    ADD CONSTRAINT group_engagement_daily_pkey PRIMARY KEY (group_id, local_date);

--
-- Name: group_members group_members_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.group_members
    ADD CONSTRAINT group_members_pkey PRIMARY KEY (group_id, user_id);

--
-- Name: groups groups_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.groups
    ADD CONSTRAINT groups_pkey PRIMARY KEY (id);

--
-- Name: messages messages_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.messages
    ADD CONSTRAINT messages_pkey PRIMARY KEY (id);

--
-- Name: notification_preferences notification_preferences_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.notification_preferences
    ADD CONSTRAINT notification_preferences_pkey PRIMARY KEY (user_id);

--
-- Name: notifications notifications_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.notifications
    ADD CONSTRAINT notifications_pkey PRIMARY KEY (id);

--
-- Name: procrastinate_events procrastinate_events_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.procrastinate_events
    ADD CONSTRAINT procrastinate_events_pkey PRIMARY KEY (id);

--
-- Name: procrastinate_jobs procrastinate_jobs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.procrastinate_jobs
    ADD CONSTRAINT procrastinate_jobs_pkey PRIMARY KEY (id);

--
-- Name: procrastinate_periodic_defers procrastinate_periodic_defers_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.procrastinate_periodic_defers
    ADD CONSTRAINT procrastinate_periodic_defers_pkey PRIMARY KEY (id);

--
-- Name: procrastinate_periodic_defers procrastinate_periodic_defers_unique; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.procrastinate_periodic_defers
    ADD CONSTRAINT procrastinate_periodic_defers_unique UNIQUE (task_name, periodic_id, defer_timestamp);

--
-- Name: procrastinate_workers procrastinate_workers_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.procrastinate_workers
    ADD CONSTRAINT procrastinate_workers_pkey PRIMARY KEY (id);

--
-- Name: profiles profiles_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.profiles
    ADD CONSTRAINT profiles_pkey PRIMARY KEY (id);

--
-- Name: prompts prompts_group_id_local_date_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.prompts
    ADD CONSTRAINT prompts_group_id_local_date_key UNIQUE (group_id, local_date);

--
-- Name: prompts prompts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.prompts
    ADD CONSTRAINT prompts_pkey PRIMARY KEY (id);

--
-- Name: ingress_quarantine_open_idx; Type: INDEX; Schema: broseph; Owner: -
--

CREATE INDEX ingress_quarantine_open_idx ON broseph.ingress_quarantine USING btree (received_at) WHERE (replayed_at IS NULL);

--
-- Name: ingress_receipts_received_idx; Type: INDEX; Schema: broseph; Owner: -
--

CREATE INDEX ingress_receipts_received_idx ON broseph.ingress_receipts USING btree (received_at);

--
-- Name: job_records_coalesce_key_idx; Type: INDEX; Schema: broseph; Owner: -
--

CREATE UNIQUE INDEX job_records_coalesce_key_idx ON broseph.job_records USING btree (coalesce_key) WHERE (coalesce_key IS NOT NULL);

--
-- Name: job_records_created_idx; Type: INDEX; Schema: broseph; Owner: -
--

CREATE INDEX job_records_created_idx ON broseph.job_records USING btree (created_at, id);

--
-- Name: job_records_group_created_idx; Type: INDEX; Schema: broseph; Owner: -
--

CREATE INDEX job_records_group_created_idx ON broseph.job_records USING btree (group_id, created_at, id) WHERE (group_id IS NOT NULL);

--
-- Name: job_records_idempotency_key_idx; Type: INDEX; Schema: broseph; Owner: -
--

CREATE UNIQUE INDEX job_records_idempotency_key_idx ON broseph.job_records USING btree (idempotency_key) WHERE (idempotency_key IS NOT NULL);

--
-- Name: job_records_trouble_idx; Type: INDEX; Schema: broseph; Owner: -
--

CREATE INDEX job_records_trouble_idx ON broseph.job_records USING btree (trouble_status, job_type, created_at, id) WHERE (trouble_status IS NOT NULL);

--
-- Name: job_records_user_created_idx; Type: INDEX; Schema: broseph; Owner: -
--

CREATE INDEX job_records_user_created_idx ON broseph.job_records USING btree (user_id, created_at, id) WHERE (user_id IS NOT NULL);

--
-- Name: notification_deliveries_device_idx; Type: INDEX; Schema: broseph; Owner: -
--

CREATE INDEX notification_deliveries_device_idx ON broseph.notification_deliveries USING btree (device_id);

--
-- Name: push_outbox_created_idx; Type: INDEX; Schema: broseph; Owner: -
--

CREATE INDEX push_outbox_created_idx ON broseph.push_outbox USING btree (created_at);

--
-- Name: device_tokens_user_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX device_tokens_user_idx ON public.device_tokens USING btree (user_id) WHERE (disabled_at IS NULL);

--
-- Name: group_members_user_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX group_members_user_idx ON public.group_members USING btree (user_id);

--
-- Name: groups_active_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX groups_active_idx ON public.groups USING btree (time_zone) WHERE active;

--
-- Name: idx_procrastinate_jobs_worker_not_null; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_procrastinate_jobs_worker_not_null ON public.procrastinate_jobs USING btree (worker_id) WHERE ((worker_id IS NOT NULL) AND (status = 'doing'::public.procrastinate_job_status));

--
-- Name: idx_procrastinate_workers_last_heartbeat; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_procrastinate_workers_last_heartbeat ON public.procrastinate_workers USING btree (last_heartbeat);

--
-- Name: messages_group_time_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX messages_group_time_idx ON public.messages USING btree (group_id, created_at);

--
-- Name: messages_prompt_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX messages_prompt_idx ON public.messages USING btree (prompt_id) WHERE (prompt_id IS NOT NULL);

--
-- Name: notifications_new_message_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX notifications_new_message_idx ON public.notifications USING btree (user_id, group_id, covered_until) WHERE (type = 'new_message'::text);

--
-- Name: notifications_record_user_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX notifications_record_user_idx ON public.notifications USING btree (record_id, user_id);

--
-- Name: notifications_user_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX notifications_user_idx ON public.notifications USING btree (user_id, created_at DESC);

--
-- Name: procrastinate_events_final_at_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX procrastinate_events_final_at_idx ON public.procrastinate_events USING btree (at, id) WHERE (type = ANY (ARRAY['succeeded'::public.procrastinate_job_event_type, 'failed'::public.procrastinate_job_event_type, 'cancelled'::public.procrastinate_job_event_type, 'aborted'::public.procrastinate_job_event_type]));

--
-- Name: procrastinate_events_job_id_fkey_v1; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX procrastinate_events_job_id_fkey_v1 ON public.procrastinate_events USING btree (job_id);

--
-- Name: procrastinate_jobs_id_lock_idx_v1; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX procrastinate_jobs_id_lock_idx_v1 ON public.procrastinate_jobs USING btree (id, lock) WHERE (status = ANY (ARRAY['todo'::public.procrastinate_job_status, 'doing'::public.procrastinate_job_status]));

--
-- Name: procrastinate_jobs_lock_idx_v1; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX procrastinate_jobs_lock_idx_v1 ON public.procrastinate_jobs USING btree (lock) WHERE (status = 'doing'::public.procrastinate_job_status);

--
-- Name: procrastinate_jobs_priority_idx_v1; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX procrastinate_jobs_priority_idx_v1 ON public.procrastinate_jobs USING btree (priority DESC, id) WHERE (status = 'todo'::public.procrastinate_job_status);

--
-- Name: procrastinate_jobs_queue_name_idx_v1; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX procrastinate_jobs_queue_name_idx_v1 ON public.procrastinate_jobs USING btree (queue_name);

--
-- Name: procrastinate_jobs_queueing_lock_idx_v1; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX procrastinate_jobs_queueing_lock_idx_v1 ON public.procrastinate_jobs USING btree (queueing_lock) WHERE (status = 'todo'::public.procrastinate_job_status);

--
-- Name: procrastinate_jobs_waiting_lock_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX procrastinate_jobs_waiting_lock_idx ON public.procrastinate_jobs USING btree (lock) WHERE (status = ANY (ARRAY['todo'::public.procrastinate_job_status, 'doing'::public.procrastinate_job_status]));

--
-- Name: procrastinate_periodic_defers_job_id_fkey_v1; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX procrastinate_periodic_defers_job_id_fkey_v1 ON public.procrastinate_periodic_defers USING btree (job_id);

--
-- Name: prompts_created_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX prompts_created_idx ON public.prompts USING btree (created_at);

--
-- Name: prompts_published_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX prompts_published_idx ON public.prompts USING btree (published_at);

--
-- Name: prompts_unpublished_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX prompts_unpublished_idx ON public.prompts USING btree (group_id) WHERE (published_at IS NULL);

--
-- Name: group_members broseph_group_members_notify; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER broseph_group_members_notify AFTER INSERT ON public.group_members REFERENCING NEW TABLE AS new_members FOR EACH STATEMENT EXECUTE FUNCTION broseph.notify_members_joined();

--
-- Name: messages broseph_messages_engagement; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER broseph_messages_engagement AFTER INSERT ON public.messages REFERENCING NEW TABLE AS new_messages FOR EACH STATEMENT EXECUTE FUNCTION broseph.on_messages_inserted();

--
-- Name: messages broseph_messages_notify; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER broseph_messages_notify AFTER INSERT ON public.messages REFERENCING NEW TABLE AS new_messages FOR EACH STATEMENT EXECUTE FUNCTION broseph.notify_new_messages();

--
-- Name: prompts broseph_prompts_notify; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER broseph_prompts_notify AFTER INSERT ON public.prompts REFERENCING NEW TABLE AS new_prompts FOR EACH STATEMENT EXECUTE FUNCTION broseph.notify_new_prompts();

--
-- Name: procrastinate_jobs broseph_queue_rows_inserted; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER broseph_queue_rows_inserted AFTER INSERT ON public.procrastinate_jobs REFERENCING NEW TABLE AS inserted_jobs FOR EACH STATEMENT EXECUTE FUNCTION broseph.queue_rows_inserted();

--
-- Name: device_tokens broseph_server_timestamps; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER broseph_server_timestamps BEFORE INSERT OR UPDATE ON public.device_tokens FOR EACH ROW WHEN (((CURRENT_USER)::text = ANY (ARRAY['anon'::text, 'authenticated'::text]))) EXECUTE FUNCTION broseph.server_timestamps('created_at');

--
-- Name: group_members broseph_server_timestamps; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER broseph_server_timestamps BEFORE INSERT OR UPDATE ON public.group_members FOR EACH ROW WHEN (((CURRENT_USER)::text = ANY (ARRAY['anon'::text, 'authenticated'::text]))) EXECUTE FUNCTION broseph.server_timestamps('joined_at');

--
-- Name: messages broseph_server_timestamps; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER broseph_server_timestamps BEFORE INSERT OR UPDATE ON public.messages FOR EACH ROW WHEN (((CURRENT_USER)::text = ANY (ARRAY['anon'::text, 'authenticated'::text]))) EXECUTE FUNCTION broseph.server_timestamps('created_at');

--
-- Name: notification_preferences broseph_server_timestamps; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER broseph_server_timestamps BEFORE INSERT OR UPDATE ON public.notification_preferences FOR EACH ROW WHEN (((CURRENT_USER)::text = ANY (ARRAY['anon'::text, 'authenticated'::text]))) EXECUTE FUNCTION broseph.server_timestamps('', 'updated_at');

--
-- Name: profiles broseph_server_timestamps; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER broseph_server_timestamps BEFORE INSERT OR UPDATE ON public.profiles FOR EACH ROW WHEN (((CURRENT_USER)::text = ANY (ARRAY['anon'::text, 'authenticated'::text]))) EXECUTE FUNCTION broseph.server_timestamps('created_at');

--
-- Name: prompts broseph_server_timestamps; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER broseph_server_timestamps BEFORE INSERT OR UPDATE ON public.prompts FOR EACH ROW WHEN (((CURRENT_USER)::text = ANY (ARRAY['anon'::text, 'authenticated'::text]))) EXECUTE FUNCTION broseph.server_timestamps('created_at');

--
-- Name: procrastinate_jobs broseph_sync_job_record_delete; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER broseph_sync_job_record_delete AFTER DELETE ON public.procrastinate_jobs FOR EACH ROW WHEN ((old.status = ANY (ARRAY['todo'::public.procrastinate_job_status, 'doing'::public.procrastinate_job_status]))) EXECUTE FUNCTION broseph.sync_job_record();

--
-- Name: procrastinate_jobs broseph_sync_job_record_update; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER broseph_sync_job_record_update AFTER UPDATE OF status ON public.procrastinate_jobs FOR EACH ROW WHEN ((old.status IS DISTINCT FROM new.status)) EXECUTE FUNCTION broseph.sync_job_record();

--
-- Name: procrastinate_jobs procrastinate_jobs_notify_queue_job_aborted_v1; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER procrastinate_jobs_notify_queue_job_aborted_v1 AFTER UPDATE OF abort_requested ON public.procrastinate_jobs FOR EACH ROW WHEN (((old.abort_requested = false) AND (new.abort_requested = true) AND (new.status = 'doing'::public.procrastinate_job_status))) EXECUTE FUNCTION public.procrastinate_notify_queue_abort_job_v1();

--
-- Name: procrastinate_jobs procrastinate_trigger_abort_requested_events_v1; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER procrastinate_trigger_abort_requested_events_v1 AFTER UPDATE OF abort_requested ON public.procrastinate_jobs FOR EACH ROW WHEN ((new.abort_requested = true)) EXECUTE FUNCTION public.procrastinate_trigger_abort_requested_events_procedure_v1();

--
-- Name: procrastinate_jobs procrastinate_trigger_delete_jobs_v1; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER procrastinate_trigger_delete_jobs_v1 BEFORE DELETE ON public.procrastinate_jobs FOR EACH ROW EXECUTE FUNCTION public.procrastinate_unlink_periodic_defers_v1();

--
-- Name: procrastinate_jobs procrastinate_trigger_scheduled_events_v1; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER procrastinate_trigger_scheduled_events_v1 AFTER INSERT OR UPDATE ON public.procrastinate_jobs FOR EACH ROW WHEN (((new.scheduled_at IS NOT NULL) AND (new.status = 'todo'::public.procrastinate_job_status))) EXECUTE FUNCTION public.procrastinate_trigger_function_scheduled_events_v1();

--
-- Name: procrastinate_jobs procrastinate_trigger_status_events_update_v1; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER procrastinate_trigger_status_events_update_v1 AFTER UPDATE OF status ON public.procrastinate_jobs FOR EACH ROW EXECUTE FUNCTION public.procrastinate_trigger_function_status_events_update_v1();

--
-- Name: job_records job_records_job_type_fkey; Type: FK CONSTRAINT; Schema: broseph; Owner: -
--

ALTER TABLE ONLY broseph.job_records
    ADD CONSTRAINT job_records_job_type_fkey FOREIGN KEY (job_type) REFERENCES broseph.job_types(name);

--
-- Name: notification_deliveries notification_deliveries_device_id_fkey; Type: FK CONSTRAINT; Schema: broseph; Owner: -
--

ALTER TABLE ONLY broseph.notification_deliveries
    ADD CONSTRAINT notification_deliveries_device_id_fkey FOREIGN KEY (device_id) REFERENCES public.device_tokens(id) ON DELETE CASCADE;

--
-- Name: notification_deliveries notification_deliveries_notification_id_fkey; Type: FK CONSTRAINT; Schema: broseph; Owner: -
--

ALTER TABLE ONLY broseph.notification_deliveries
    ADD CONSTRAINT notification_deliveries_notification_id_fkey FOREIGN KEY (notification_id) REFERENCES public.notifications(id) ON DELETE CASCADE;

--
-- Name: device_tokens device_tokens_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.device_tokens
    ADD CONSTRAINT device_tokens_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.profiles(id) ON DELETE CASCADE;

--
-- Name: group_engagement_daily group_engagement_daily_group_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.group_engagement_daily
    ADD CONSTRAINT group_engagement_daily_group_id_fkey FOREIGN KEY (group_id) REFERENCES public.groups(id) ON DELETE CASCADE;

--
-- Name: group_members group_members_group_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.group_members
    ADD CONSTRAINT group_members_group_id_fkey FOREIGN KEY (group_id) REFERENCES public.groups(id) ON DELETE CASCADE;

--
-- Name: group_members group_members_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.group_members
    ADD CONSTRAINT group_members_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.profiles(id) ON DELETE CASCADE;

--
-- Name: messages messages_group_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.messages
    ADD CONSTRAINT messages_group_id_fkey FOREIGN KEY (group_id) REFERENCES public.groups(id) ON DELETE CASCADE;

--
-- Name: messages messages_prompt_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.messages
    ADD CONSTRAINT messages_prompt_id_fkey FOREIGN KEY (prompt_id) REFERENCES public.prompts(id) ON DELETE SET NULL;

--
-- Name: messages messages_sender_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.messages
    ADD CONSTRAINT messages_sender_id_fkey FOREIGN KEY (sender_id) REFERENCES public.profiles(id) ON DELETE CASCADE;

--
-- Name: notification_preferences notification_preferences_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.notification_preferences
    ADD CONSTRAINT notification_preferences_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.profiles(id) ON DELETE CASCADE;

--
-- Name: notifications notifications_group_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.notifications
    ADD CONSTRAINT notifications_group_id_fkey FOREIGN KEY (group_id) REFERENCES public.groups(id) ON DELETE CASCADE;

--
-- Name: notifications notifications_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.notifications
    ADD CONSTRAINT notifications_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.profiles(id) ON DELETE CASCADE;

--
-- Name: procrastinate_events procrastinate_events_job_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.procrastinate_events
    ADD CONSTRAINT procrastinate_events_job_id_fkey FOREIGN KEY (job_id) REFERENCES public.procrastinate_jobs(id) ON DELETE CASCADE;

--
-- Name: procrastinate_jobs procrastinate_jobs_worker_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.procrastinate_jobs
    ADD CONSTRAINT procrastinate_jobs_worker_id_fkey FOREIGN KEY (worker_id) REFERENCES public.procrastinate_workers(id) ON DELETE SET NULL;

--
-- Name: procrastinate_periodic_defers procrastinate_periodic_defers_job_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.procrastinate_periodic_defers
    ADD CONSTRAINT procrastinate_periodic_defers_job_id_fkey FOREIGN KEY (job_id) REFERENCES public.procrastinate_jobs(id);

--
-- Name: prompts prompts_group_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.prompts
    ADD CONSTRAINT prompts_group_id_fkey FOREIGN KEY (group_id) REFERENCES public.groups(id) ON DELETE CASCADE;

--
-- Name: job_records; Type: ROW SECURITY; Schema: broseph; Owner: -
--

ALTER TABLE broseph.job_records ENABLE ROW LEVEL SECURITY;

--
-- Name: job_records job_records_read; Type: POLICY; Schema: broseph; Owner: -
--

CREATE POLICY job_records_read ON broseph.job_records FOR SELECT TO authenticated USING (((user_id = auth.uid()) OR ((group_id IS NOT NULL) AND broseph.is_member(group_id))));

--
-- Name: device_tokens; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.device_tokens ENABLE ROW LEVEL SECURITY;

--
-- Name: device_tokens device_tokens_own; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY device_tokens_own ON public.device_tokens TO authenticated USING ((user_id = auth.uid())) WITH CHECK ((user_id = auth.uid()));

--
-- Name: group_engagement_daily engagement_read; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY engagement_read ON public.group_engagement_daily FOR SELECT TO authenticated USING (broseph.is_member(group_id));

--
-- Name: group_engagement_daily; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.group_engagement_daily ENABLE ROW LEVEL SECURITY;

--
-- Name: group_members; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.group_members ENABLE ROW LEVEL SECURITY;

--
-- Name: group_members group_members_read; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY group_members_read ON public.group_members FOR SELECT TO authenticated USING (broseph.is_member(group_id));

--
-- Name: groups; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.groups ENABLE ROW LEVEL SECURITY;

--
-- Name: groups groups_read; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY groups_read ON public.groups FOR SELECT TO authenticated USING (broseph.is_member(id));

--
-- Name: messages; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.messages ENABLE ROW LEVEL SECURITY;

--
-- Name: messages messages_insert; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY messages_insert ON public.messages FOR INSERT TO authenticated WITH CHECK (((sender_id = auth.uid()) AND broseph.is_member(group_id) AND ((prompt_id IS NULL) OR (EXISTS ( SELECT 1
   FROM public.prompts p
  WHERE ((p.id = messages.prompt_id) AND (p.group_id = messages.group_id) AND (p.published_at IS NOT NULL)))))));

--
-- Name: messages messages_read; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY messages_read ON public.messages FOR SELECT TO authenticated USING (broseph.is_member(group_id));

--
-- Name: notification_preferences; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.notification_preferences ENABLE ROW LEVEL SECURITY;

--
-- Name: notification_preferences notification_preferences_own; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY notification_preferences_own ON public.notification_preferences TO authenticated USING ((user_id = auth.uid())) WITH CHECK ((user_id = auth.uid()));

--
-- Name: notifications; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.notifications ENABLE ROW LEVEL SECURITY;

--
-- Name: notifications notifications_own; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY notifications_own ON public.notifications FOR SELECT TO authenticated USING ((user_id = auth.uid()));

--
-- Name: profiles; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY;

--
-- Name: profiles profiles_read; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY profiles_read ON public.profiles FOR SELECT TO authenticated USING (((id = auth.uid()) OR (EXISTS ( SELECT 1
   FROM public.group_members m
  WHERE ((m.user_id = profiles.id) AND broseph.is_member(m.group_id))))));

--
-- Name: profiles profiles_update_self; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY profiles_update_self ON public.profiles FOR UPDATE TO authenticated USING ((id = auth.uid())) WITH CHECK ((id = auth.uid()));

--
-- Name: prompts; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.prompts ENABLE ROW LEVEL SECURITY;

--
-- Name: prompts prompts_read; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY prompts_read ON public.prompts FOR SELECT TO authenticated USING (((published_at IS NOT NULL) AND broseph.is_member(group_id)));

--
-- Name: SCHEMA auth; Type: ACL; Schema: -; Owner: -
--

GRANT USAGE ON SCHEMA auth TO anon;
GRANT USAGE ON SCHEMA auth TO authenticated;
GRANT USAGE ON SCHEMA auth TO service_role;

--
-- Name: SCHEMA broseph; Type: ACL; Schema: -; Owner: -
--

GRANT USAGE ON SCHEMA broseph TO anon;
GRANT USAGE ON SCHEMA broseph TO authenticated;
GRANT USAGE ON SCHEMA broseph TO service_role;

--
-- Name: FUNCTION uid(); Type: ACL; Schema: auth; Owner: -
--

GRANT ALL ON FUNCTION auth.uid() TO anon;
GRANT ALL ON FUNCTION auth.uid() TO authenticated;
GRANT ALL ON FUNCTION auth.uid() TO service_role;

--
-- Name: FUNCTION check_retry(p_retry jsonb, p_limits jsonb); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.check_retry(p_retry jsonb, p_limits jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.check_retry(p_retry jsonb, p_limits jsonb) TO service_role;

--
-- Name: FUNCTION check_trace_context(p_traceparent text, p_tracestate text); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.check_trace_context(p_traceparent text, p_tracestate text) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.check_trace_context(p_traceparent text, p_tracestate text) TO service_role;

--
-- Name: TABLE job_types; Type: ACL; Schema: broseph; Owner: -
--

GRANT SELECT ON TABLE broseph.job_types TO authenticated;
GRANT ALL ON TABLE broseph.job_types TO service_role;

--
-- Name: FUNCTION checked_arguments(p_job_type text, p_key text, p_run_at timestamp with time zone, p_priority integer, p_source text, p_retry jsonb); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.checked_arguments(p_job_type text, p_key text, p_run_at timestamp with time zone, p_priority integer, p_source text, p_retry jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.checked_arguments(p_job_type text, p_key text, p_run_at timestamp with time zone, p_priority integer, p_source text, p_retry jsonb) TO service_role;

--
-- Name: FUNCTION checked_params(p_job_type text, p_spec jsonb, p_value jsonb, p_path text, p_column text); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.checked_params(p_job_type text, p_spec jsonb, p_value jsonb, p_path text, p_column text) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.checked_params(p_job_type text, p_spec jsonb, p_value jsonb, p_path text, p_column text) TO service_role;

--
-- Name: FUNCTION echo(p_value jsonb); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.echo(p_value jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.echo(p_value jsonb) TO service_role;

--
-- Name: FUNCTION echo(p_value text); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.echo(p_value text) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.echo(p_value text) TO service_role;

--
-- Name: FUNCTION enqueue(job_type text, params jsonb, idempotency_key text, run_at timestamp with time zone, priority integer, source text, retry jsonb, traceparent text, tracestate text); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.enqueue(job_type text, params jsonb, idempotency_key text, run_at timestamp with time zone, priority integer, source text, retry jsonb, traceparent text, tracestate text) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.enqueue(job_type text, params jsonb, idempotency_key text, run_at timestamp with time zone, priority integer, source text, retry jsonb, traceparent text, tracestate text) TO service_role;

--
-- Name: FUNCTION enqueue_limits(); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.enqueue_limits() FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.enqueue_limits() TO service_role;

--
-- Name: FUNCTION enqueue_many(job_type text, params jsonb[], idempotency_keys text[], run_at timestamp with time zone, priority integer, source text, retry jsonb, traceparent text, tracestate text); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.enqueue_many(job_type text, params jsonb[], idempotency_keys text[], run_at timestamp with time zone, priority integer, source text, retry jsonb, traceparent text, tracestate text) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.enqueue_many(job_type text, params jsonb[], idempotency_keys text[], run_at timestamp with time zone, priority integer, source text, retry jsonb, traceparent text, tracestate text) TO service_role;

--
-- Name: TABLE procrastinate_jobs; Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON TABLE public.procrastinate_jobs TO service_role;

--
-- Name: FUNCTION fetch_job(target_queue_names character varying[], p_worker_id bigint); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.fetch_job(target_queue_names character varying[], p_worker_id bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.fetch_job(target_queue_names character varying[], p_worker_id bigint) TO service_role;

--
-- Name: FUNCTION fetch_jobs(target_queue_names character varying[], p_worker_id bigint, p_limit integer); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.fetch_jobs(target_queue_names character varying[], p_worker_id bigint, p_limit integer) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.fetch_jobs(target_queue_names character varying[], p_worker_id bigint, p_limit integer) TO service_role;

--
-- Name: FUNCTION field_key(p_job_type text, p_fields text[], p_params jsonb); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.field_key(p_job_type text, p_fields text[], p_params jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.field_key(p_job_type text, p_fields text[], p_params jsonb) TO service_role;

--
-- Name: FUNCTION field_name(p_key text); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.field_name(p_key text) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.field_name(p_key text) TO service_role;

--
-- Name: TABLE job_records; Type: ACL; Schema: broseph; Owner: -
--

GRANT ALL ON TABLE broseph.job_records TO service_role;

--
-- Name: COLUMN job_records.id; Type: ACL; Schema: broseph; Owner: -
--

GRANT SELECT(id) ON TABLE broseph.job_records TO authenticated;

--
-- Name: COLUMN job_records.job_type; Type: ACL; Schema: broseph; Owner: -
--

GRANT SELECT(job_type) ON TABLE broseph.job_records TO authenticated;

--
-- Name: COLUMN job_records.status; Type: ACL; Schema: broseph; Owner: -
--

GRANT SELECT(status) ON TABLE broseph.job_records TO authenticated;

--
-- Name: COLUMN job_records.progress; Type: ACL; Schema: broseph; Owner: -
--

GRANT SELECT(progress) ON TABLE broseph.job_records TO authenticated;

--
-- Name: COLUMN job_records.progress_message; Type: ACL; Schema: broseph; Owner: -
--

GRANT SELECT(progress_message) ON TABLE broseph.job_records TO authenticated;

--
-- Name: COLUMN job_records.attempts; Type: ACL; Schema: broseph; Owner: -
--

GRANT SELECT(attempts) ON TABLE broseph.job_records TO authenticated;

--
-- Name: COLUMN job_records.group_id; Type: ACL; Schema: broseph; Owner: -
--

GRANT SELECT(group_id) ON TABLE broseph.job_records TO authenticated;

--
-- Name: COLUMN job_records.user_id; Type: ACL; Schema: broseph; Owner: -
--

GRANT SELECT(user_id) ON TABLE broseph.job_records TO authenticated;

--
-- Name: COLUMN job_records.created_at; Type: ACL; Schema: broseph; Owner: -
--

GRANT SELECT(created_at) ON TABLE broseph.job_records TO authenticated;

--
-- Name: COLUMN job_records.started_at; Type: ACL; Schema: broseph; Owner: -
--

GRANT SELECT(started_at) ON TABLE broseph.job_records TO authenticated;

--
-- Name: COLUMN job_records.finished_at; Type: ACL; Schema: broseph; Owner: -
--

GRANT SELECT(finished_at) ON TABLE broseph.job_records TO authenticated;

--
-- Name: COLUMN job_records.next_attempt_at; Type: ACL; Schema: broseph; Owner: -
--

GRANT SELECT(next_attempt_at) ON TABLE broseph.job_records TO authenticated;

--
-- Name: COLUMN job_records.updated_at; Type: ACL; Schema: broseph; Owner: -
--

GRANT SELECT(updated_at) ON TABLE broseph.job_records TO authenticated;

--
-- Name: FUNCTION find_records(statuses text[], job_type text, created_from timestamp with time zone, created_to timestamp with time zone, group_id uuid, user_id uuid, idempotency_key text, before_at timestamp with time zone, before_id uuid, max_rows integer); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.find_records(statuses text[], job_type text, created_from timestamp with time zone, created_to timestamp with time zone, group_id uuid, user_id uuid, idempotency_key text, before_at timestamp with time zone, before_id uuid, max_rows integer) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.find_records(statuses text[], job_type text, created_from timestamp with time zone, created_to timestamp with time zone, group_id uuid, user_id uuid, idempotency_key text, before_at timestamp with time zone, before_id uuid, max_rows integer) TO service_role;

--
-- Name: FUNCTION finish_jobs(job_ids bigint[], end_statuses public.procrastinate_job_status[], delete_jobs boolean[], record_ids uuid[], errors text[], results jsonb[], progresses integer[], messages text[], start_ids bigint[]); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.finish_jobs(job_ids bigint[], end_statuses public.procrastinate_job_status[], delete_jobs boolean[], record_ids uuid[], errors text[], results jsonb[], progresses integer[], messages text[], start_ids bigint[]) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.finish_jobs(job_ids bigint[], end_statuses public.procrastinate_job_status[], delete_jobs boolean[], record_ids uuid[], errors text[], results jsonb[], progresses integer[], messages text[], start_ids bigint[]) TO service_role;

--
-- Name: FUNCTION ingress_enqueue(delivery_key text, source text, queue text, job_id text, job_name text, options jsonb, produced_at timestamp with time zone, job_type text, params jsonb, run_at timestamp with time zone, priority integer, retry jsonb, traceparent text, tracestate text, OUT record_id uuid, OUT duplicate boolean); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.ingress_enqueue(delivery_key text, source text, queue text, job_id text, job_name text, options jsonb, produced_at timestamp with time zone, job_type text, params jsonb, run_at timestamp with time zone, priority integer, retry jsonb, traceparent text, tracestate text, OUT record_id uuid, OUT duplicate boolean) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.ingress_enqueue(delivery_key text, source text, queue text, job_id text, job_name text, options jsonb, produced_at timestamp with time zone, job_type text, params jsonb, run_at timestamp with time zone, priority integer, retry jsonb, traceparent text, tracestate text, OUT record_id uuid, OUT duplicate boolean) TO service_role;

--
-- Name: FUNCTION insert_job(jt broseph.job_types, p_params jsonb, p_key text, p_rid uuid, p_run_at timestamp with time zone, p_priority integer, p_source text, p_retry jsonb, p_traceparent text, p_tracestate text); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.insert_job(jt broseph.job_types, p_params jsonb, p_key text, p_rid uuid, p_run_at timestamp with time zone, p_priority integer, p_source text, p_retry jsonb, p_traceparent text, p_tracestate text) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.insert_job(jt broseph.job_types, p_params jsonb, p_key text, p_rid uuid, p_run_at timestamp with time zone, p_priority integer, p_source text, p_retry jsonb, p_traceparent text, p_tracestate text) TO service_role;

--
-- Name: FUNCTION insert_jobs(jt broseph.job_types, p_params jsonb[], p_keys text[], p_rids uuid[], p_run_at timestamp with time zone, p_priority integer, p_source text, p_retry jsonb, p_traceparent text, p_tracestate text); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.insert_jobs(jt broseph.job_types, p_params jsonb[], p_keys text[], p_rids uuid[], p_run_at timestamp with time zone, p_priority integer, p_source text, p_retry jsonb, p_traceparent text, p_tracestate text) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.insert_jobs(jt broseph.job_types, p_params jsonb[], p_keys text[], p_rids uuid[], p_run_at timestamp with time zone, p_priority integer, p_source text, p_retry jsonb, p_traceparent text, p_tracestate text) TO service_role;

--
-- Name: FUNCTION is_date(s text); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.is_date(s text) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.is_date(s text) TO service_role;

--
-- Name: FUNCTION is_member(p_group_id uuid); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.is_member(p_group_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.is_member(p_group_id uuid) TO authenticated;
GRANT ALL ON FUNCTION broseph.is_member(p_group_id uuid) TO service_role;

--
-- Name: FUNCTION is_time_zone(tz text); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.is_time_zone(tz text) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.is_time_zone(tz text) TO authenticated;
GRANT ALL ON FUNCTION broseph.is_time_zone(tz text) TO service_role;

--
-- Name: FUNCTION job_type(p_name text); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.job_type(p_name text) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.job_type(p_name text) TO service_role;

--
-- Name: FUNCTION notification_recipients(p_group_id uuid, p_type text, p_sender_id uuid, p_friend_id uuid); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.notification_recipients(p_group_id uuid, p_type text, p_sender_id uuid, p_friend_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.notification_recipients(p_group_id uuid, p_type text, p_sender_id uuid, p_friend_id uuid) TO service_role;

--
-- Name: FUNCTION notify_inline(p_group_id uuid); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.notify_inline(p_group_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.notify_inline(p_group_id uuid) TO service_role;

--
-- Name: FUNCTION notify_inline_max(); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.notify_inline_max() FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.notify_inline_max() TO service_role;

--
-- Name: FUNCTION notify_members_joined(); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.notify_members_joined() FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.notify_members_joined() TO service_role;

--
-- Name: FUNCTION notify_new_messages(); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.notify_new_messages() FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.notify_new_messages() TO service_role;

--
-- Name: FUNCTION notify_new_prompts(); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.notify_new_prompts() FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.notify_new_prompts() TO service_role;

--
-- Name: FUNCTION notify_prompts_published(p_prompt_ids uuid[]); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.notify_prompts_published(p_prompt_ids uuid[]) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.notify_prompts_published(p_prompt_ids uuid[]) TO service_role;

--
-- Name: FUNCTION on_messages_inserted(); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.on_messages_inserted() FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.on_messages_inserted() TO service_role;

--
-- Name: FUNCTION params_screen(p_spec jsonb, p_params jsonb[]); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.params_screen(p_spec jsonb, p_params jsonb[]) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.params_screen(p_spec jsonb, p_params jsonb[]) TO service_role;

--
-- Name: FUNCTION params_screen_exact(p_spec jsonb, p_params jsonb[]); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.params_screen_exact(p_spec jsonb, p_params jsonb[]) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.params_screen_exact(p_spec jsonb, p_params jsonb[]) TO service_role;

--
-- Name: FUNCTION publish_due_prompts(p_hour integer, p_at timestamp with time zone); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.publish_due_prompts(p_hour integer, p_at timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.publish_due_prompts(p_hour integer, p_at timestamp with time zone) TO service_role;

--
-- Name: FUNCTION queue_rows_inserted(); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.queue_rows_inserted() FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.queue_rows_inserted() TO service_role;

--
-- Name: FUNCTION raise_with_column(p_message text, p_detail text, p_hint text, p_column text); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.raise_with_column(p_message text, p_detail text, p_hint text, p_column text) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.raise_with_column(p_message text, p_detail text, p_hint text, p_column text) TO service_role;

--
-- Name: FUNCTION refuse_idempotency_key(p_key text, p_column text); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.refuse_idempotency_key(p_key text, p_column text) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.refuse_idempotency_key(p_key text, p_column text) TO service_role;

--
-- Name: FUNCTION release_jobs(p_worker_id bigint, job_ids bigint[]); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.release_jobs(p_worker_id bigint, job_ids bigint[]) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.release_jobs(p_worker_id bigint, job_ids bigint[]) TO service_role;

--
-- Name: FUNCTION rescue_lost_jobs(lost_after_seconds double precision); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.rescue_lost_jobs(lost_after_seconds double precision) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.rescue_lost_jobs(lost_after_seconds double precision) TO service_role;

--
-- Name: FUNCTION retry_job(job_id bigint, retry_at timestamp with time zone, new_priority integer, new_queue_name character varying, new_lock character varying, record_id uuid, error text, result jsonb, progress integer, message text); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.retry_job(job_id bigint, retry_at timestamp with time zone, new_priority integer, new_queue_name character varying, new_lock character varying, record_id uuid, error text, result jsonb, progress integer, message text) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.retry_job(job_id bigint, retry_at timestamp with time zone, new_priority integer, new_queue_name character varying, new_lock character varying, record_id uuid, error text, result jsonb, progress integer, message text) TO service_role;

--
-- Name: FUNCTION security_findings(); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.security_findings() FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.security_findings() TO service_role;

--
-- Name: FUNCTION server_timestamps(); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.server_timestamps() FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.server_timestamps() TO service_role;

--
-- Name: FUNCTION snooze_job(job_id bigint, until timestamp with time zone, reason text); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.snooze_job(job_id bigint, until timestamp with time zone, reason text) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.snooze_job(job_id bigint, until timestamp with time zone, reason text) TO service_role;

--
-- Name: FUNCTION sync_job_record(); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.sync_job_record() FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.sync_job_record() TO service_role;

--
-- Name: FUNCTION take_budget(names text[], amounts double precision[], now_at timestamp with time zone, per_minute double precision[]); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.take_budget(names text[], amounts double precision[], now_at timestamp with time zone, per_minute double precision[]) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.take_budget(names text[], amounts double precision[], now_at timestamp with time zone, per_minute double precision[]) TO service_role;

--
-- Name: FUNCTION tighten_budget(bucket text, until timestamp with time zone); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.tighten_budget(bucket text, until timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.tighten_budget(bucket text, until timestamp with time zone) TO service_role;

--
-- Name: FUNCTION usable_time_zone(tz text); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.usable_time_zone(tz text) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.usable_time_zone(tz text) TO service_role;

--
-- Name: FUNCTION with_defaults(p_spec jsonb, p_params jsonb[]); Type: ACL; Schema: broseph; Owner: -
--

REVOKE ALL ON FUNCTION broseph.with_defaults(p_spec jsonb, p_params jsonb[]) FROM PUBLIC;
GRANT ALL ON FUNCTION broseph.with_defaults(p_spec jsonb, p_params jsonb[]) TO service_role;

--
-- Name: FUNCTION broseph_enqueue(job_type text, params jsonb, idempotency_key text, run_at timestamp with time zone, priority integer, source text, retry jsonb, traceparent text, tracestate text); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.broseph_enqueue(job_type text, params jsonb, idempotency_key text, run_at timestamp with time zone, priority integer, source text, retry jsonb, traceparent text, tracestate text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.broseph_enqueue(job_type text, params jsonb, idempotency_key text, run_at timestamp with time zone, priority integer, source text, retry jsonb, traceparent text, tracestate text) TO service_role;

--
-- Name: FUNCTION broseph_enqueue_many(job_type text, params jsonb, idempotency_keys text[], run_at timestamp with time zone, priority integer, source text, retry jsonb, traceparent text, tracestate text); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.broseph_enqueue_many(job_type text, params jsonb, idempotency_keys text[], run_at timestamp with time zone, priority integer, source text, retry jsonb, traceparent text, tracestate text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.broseph_enqueue_many(job_type text, params jsonb, idempotency_keys text[], run_at timestamp with time zone, priority integer, source text, retry jsonb, traceparent text, tracestate text) TO service_role;

--
-- Name: FUNCTION procrastinate_cancel_job_v1(job_id bigint, abort boolean, delete_job boolean); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.procrastinate_cancel_job_v1(job_id bigint, abort boolean, delete_job boolean) FROM PUBLIC;
GRANT ALL ON FUNCTION public.procrastinate_cancel_job_v1(job_id bigint, abort boolean, delete_job boolean) TO service_role;

--
-- Name: FUNCTION procrastinate_defer_jobs_v1(jobs public.procrastinate_job_to_defer_v1[]); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.procrastinate_defer_jobs_v1(jobs public.procrastinate_job_to_defer_v1[]) FROM PUBLIC;
GRANT ALL ON FUNCTION public.procrastinate_defer_jobs_v1(jobs public.procrastinate_job_to_defer_v1[]) TO service_role;

--
-- Name: FUNCTION procrastinate_defer_periodic_job_v2(_queue_name character varying, _lock character varying, _queueing_lock character varying, _task_name character varying, _priority integer, _periodic_id character varying, _defer_timestamp bigint, _args jsonb); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.procrastinate_defer_periodic_job_v2(_queue_name character varying, _lock character varying, _queueing_lock character varying, _task_name character varying, _priority integer, _periodic_id character varying, _defer_timestamp bigint, _args jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.procrastinate_defer_periodic_job_v2(_queue_name character varying, _lock character varying, _queueing_lock character varying, _task_name character varying, _priority integer, _periodic_id character varying, _defer_timestamp bigint, _args jsonb) TO service_role;

--
-- Name: FUNCTION procrastinate_fetch_job_v2(target_queue_names character varying[], p_worker_id bigint); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.procrastinate_fetch_job_v2(target_queue_names character varying[], p_worker_id bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION public.procrastinate_fetch_job_v2(target_queue_names character varying[], p_worker_id bigint) TO service_role;

--
-- Name: FUNCTION procrastinate_finish_job_v1(job_id bigint, end_status public.procrastinate_job_status, delete_job boolean); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.procrastinate_finish_job_v1(job_id bigint, end_status public.procrastinate_job_status, delete_job boolean) FROM PUBLIC;
GRANT ALL ON FUNCTION public.procrastinate_finish_job_v1(job_id bigint, end_status public.procrastinate_job_status, delete_job boolean) TO service_role;

--
-- Name: FUNCTION procrastinate_notify_queue_abort_job_v1(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.procrastinate_notify_queue_abort_job_v1() FROM PUBLIC;
GRANT ALL ON FUNCTION public.procrastinate_notify_queue_abort_job_v1() TO service_role;

--
-- Name: FUNCTION procrastinate_notify_queue_job_inserted_v1(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.procrastinate_notify_queue_job_inserted_v1() FROM PUBLIC;
GRANT ALL ON FUNCTION public.procrastinate_notify_queue_job_inserted_v1() TO service_role;

--
-- Name: FUNCTION procrastinate_prune_stalled_workers_v1(seconds_since_heartbeat double precision); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.procrastinate_prune_stalled_workers_v1(seconds_since_heartbeat double precision) FROM PUBLIC;
GRANT ALL ON FUNCTION public.procrastinate_prune_stalled_workers_v1(seconds_since_heartbeat double precision) TO service_role;

--
-- Name: FUNCTION procrastinate_register_worker_v1(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.procrastinate_register_worker_v1() FROM PUBLIC;
GRANT ALL ON FUNCTION public.procrastinate_register_worker_v1() TO service_role;

--
-- Name: FUNCTION procrastinate_retry_job_v1(job_id bigint, retry_at timestamp with time zone, new_priority integer, new_queue_name character varying, new_lock character varying); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.procrastinate_retry_job_v1(job_id bigint, retry_at timestamp with time zone, new_priority integer, new_queue_name character varying, new_lock character varying) FROM PUBLIC;
GRANT ALL ON FUNCTION public.procrastinate_retry_job_v1(job_id bigint, retry_at timestamp with time zone, new_priority integer, new_queue_name character varying, new_lock character varying) TO service_role;

--
-- Name: FUNCTION procrastinate_retry_job_v2(job_id bigint, retry_at timestamp with time zone, new_priority integer, new_queue_name character varying, new_lock character varying); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.procrastinate_retry_job_v2(job_id bigint, retry_at timestamp with time zone, new_priority integer, new_queue_name character varying, new_lock character varying) FROM PUBLIC;
GRANT ALL ON FUNCTION public.procrastinate_retry_job_v2(job_id bigint, retry_at timestamp with time zone, new_priority integer, new_queue_name character varying, new_lock character varying) TO service_role;

--
-- Name: FUNCTION procrastinate_trigger_abort_requested_events_procedure_v1(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.procrastinate_trigger_abort_requested_events_procedure_v1() FROM PUBLIC;
GRANT ALL ON FUNCTION public.procrastinate_trigger_abort_requested_events_procedure_v1() TO service_role;

--
-- Name: FUNCTION procrastinate_trigger_function_scheduled_events_v1(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.procrastinate_trigger_function_scheduled_events_v1() FROM PUBLIC;
GRANT ALL ON FUNCTION public.procrastinate_trigger_function_scheduled_events_v1() TO service_role;

--
-- Name: FUNCTION procrastinate_trigger_function_status_events_insert_v1(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.procrastinate_trigger_function_status_events_insert_v1() FROM PUBLIC;
GRANT ALL ON FUNCTION public.procrastinate_trigger_function_status_events_insert_v1() TO service_role;

--
-- Name: FUNCTION procrastinate_trigger_function_status_events_update_v1(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.procrastinate_trigger_function_status_events_update_v1() FROM PUBLIC;
GRANT ALL ON FUNCTION public.procrastinate_trigger_function_status_events_update_v1() TO service_role;

--
-- Name: FUNCTION procrastinate_unlink_periodic_defers_v1(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.procrastinate_unlink_periodic_defers_v1() FROM PUBLIC;
GRANT ALL ON FUNCTION public.procrastinate_unlink_periodic_defers_v1() TO service_role;

--
-- Name: FUNCTION procrastinate_unregister_worker_v1(worker_id bigint); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.procrastinate_unregister_worker_v1(worker_id bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION public.procrastinate_unregister_worker_v1(worker_id bigint) TO service_role;

--
-- Name: FUNCTION procrastinate_update_heartbeat_v1(worker_id bigint); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.procrastinate_update_heartbeat_v1(worker_id bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION public.procrastinate_update_heartbeat_v1(worker_id bigint) TO service_role;

--
-- Name: TABLE ingress_quarantine; Type: ACL; Schema: broseph; Owner: -
--

GRANT ALL ON TABLE broseph.ingress_quarantine TO service_role;

--
-- Name: TABLE ingress_receipts; Type: ACL; Schema: broseph; Owner: -
--

GRANT ALL ON TABLE broseph.ingress_receipts TO service_role;

--
-- Name: TABLE notification_deliveries; Type: ACL; Schema: broseph; Owner: -
--

GRANT ALL ON TABLE broseph.notification_deliveries TO service_role;

--
-- Name: TABLE push_outbox; Type: ACL; Schema: broseph; Owner: -
--

GRANT ALL ON TABLE broseph.push_outbox TO service_role;

--
-- Name: SEQUENCE push_outbox_id_seq; Type: ACL; Schema: broseph; Owner: -
--

GRANT USAGE ON SEQUENCE broseph.push_outbox_id_seq TO service_role;

--
-- Name: TABLE rate_budgets; Type: ACL; Schema: broseph; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE broseph.rate_budgets TO service_role;

--
-- Name: TABLE schema_migrations; Type: ACL; Schema: broseph; Owner: -
--

GRANT SELECT ON TABLE broseph.schema_migrations TO service_role;

--
-- Name: TABLE time_zone_names; Type: ACL; Schema: broseph; Owner: -
--

GRANT SELECT ON TABLE broseph.time_zone_names TO anon;
GRANT SELECT ON TABLE broseph.time_zone_names TO authenticated;
GRANT SELECT ON TABLE broseph.time_zone_names TO service_role;

--
-- Name: TABLE broseph_job_status; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT ON TABLE public.broseph_job_status TO authenticated;
GRANT SELECT ON TABLE public.broseph_job_status TO service_role;

--
-- Name: TABLE device_tokens; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.device_tokens TO authenticated;
GRANT ALL ON TABLE public.device_tokens TO service_role;

--
-- Name: TABLE group_engagement_daily; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT ON TABLE public.group_engagement_daily TO authenticated;
GRANT ALL ON TABLE public.group_engagement_daily TO service_role;

--
-- Name: TABLE group_members; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT ON TABLE public.group_members TO authenticated;
GRANT ALL ON TABLE public.group_members TO service_role;

--
-- Name: TABLE groups; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT ON TABLE public.groups TO authenticated;
GRANT ALL ON TABLE public.groups TO service_role;

--
-- Name: TABLE messages; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT ON TABLE public.messages TO authenticated;
GRANT ALL ON TABLE public.messages TO service_role;

--
-- Name: TABLE notification_preferences; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.notification_preferences TO authenticated;
GRANT ALL ON TABLE public.notification_preferences TO service_role;

--
-- Name: TABLE notifications; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT ON TABLE public.notifications TO authenticated;
GRANT ALL ON TABLE public.notifications TO service_role;

--
-- Name: TABLE procrastinate_events; Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON TABLE public.procrastinate_events TO service_role;

--
-- Name: SEQUENCE procrastinate_events_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON SEQUENCE public.procrastinate_events_id_seq TO service_role;

--
-- Name: SEQUENCE procrastinate_jobs_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON SEQUENCE public.procrastinate_jobs_id_seq TO service_role;

--
-- Name: TABLE procrastinate_periodic_defers; Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON TABLE public.procrastinate_periodic_defers TO service_role;

--
-- Name: SEQUENCE procrastinate_periodic_defers_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON SEQUENCE public.procrastinate_periodic_defers_id_seq TO service_role;

--
-- Name: TABLE procrastinate_workers; Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON TABLE public.procrastinate_workers TO service_role;

--
-- Name: SEQUENCE procrastinate_workers_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON SEQUENCE public.procrastinate_workers_id_seq TO service_role;

--
-- Name: TABLE profiles; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,UPDATE ON TABLE public.profiles TO authenticated;
GRANT ALL ON TABLE public.profiles TO service_role;

--
-- Name: TABLE prompts; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT ON TABLE public.prompts TO authenticated;
GRANT ALL ON TABLE public.prompts TO service_role;

--
-- PostgreSQL database dump complete
--
