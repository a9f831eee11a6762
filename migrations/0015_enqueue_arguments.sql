-- 0015 — One bad value never stops a worker: enqueue checks every argument by name.
--
-- Before this, broseph.enqueue accepted run_at => 'infinity' (the worker then exited when it
-- fetched the job), NULL priorities and sources (raw not-null errors), retry policies that broke
-- at run time ({"max_attempts": 0}, arrays), megabyte idempotency keys (a raw btree error),
-- upper-case UUIDs (which bypassed coalescing and locks) and SendNotification payloads the Python
-- model refuses; and it echoed a refused megabyte value whole in its error.
--
-- Now every argument is checked before anything is written. A refusal is SQLSTATE 22023
-- (invalid_parameter_value) with the argument's name in the error's COLUMN field (libpq
-- PG_DIAG_COLUMN_NAME, psycopg `diag.column_name`, node-postgres `error.column`), so a client maps
-- it to a field without parsing text:
--   job_type, params, idempotency_key, run_at, priority, source, retry
--   params.<field path>           a payload field (params.data.prompt_id)
--   retry.<key>                   a key of the retry policy (retry.max_attempts)
--   params[i], params[i].<path>, idempotency_keys, idempotency_keys[i]   enqueue_many (1-based)
-- Messages keep their style (`ProcessEngagement: field "group_id" must be a UUID, got "abc"`)
-- and echo at most a short prefix of a refused value.
--
-- The limits live in ONE place, broseph.enqueue_limits() below; the Python face
-- (broseph/enqueue.py) relies on these errors rather than repeating them.
--
-- Accepted params are stored in canonical form — UUIDs lower-case, JSON nulls of optional fields
-- dropped — before the coalesce and lock keys are built, so one id in two spellings is one job.
--
-- Per-type rules ("a new_prompt notification needs data.prompt_id") come from the field spec:
-- an enum field may carry "requires": {value: [paths that must be present]}, derived from the
-- payload model's `requires` (broseph/jobs/base.py), like the rest of the spec.
--
-- The two enqueue functions keep their signatures and become SECURITY DEFINER with a pinned
-- search_path (every name below is schema-qualified); EXECUTE for service_role only. Helper
-- functions are not SECURITY DEFINER and are likewise pinned and qualified — but the two that
-- insert queue rows (broseph.insert_job / insert_jobs) run with `pg_catalog, public, pg_temp`:
-- procrastinate's own triggers on procrastinate_jobs name procrastinate_events without a schema
-- and resolve it through the search_path in force. pg_temp stays last, so no temporary table can
-- stand in for a real one.

-- broseph.enqueue_limits() → the limits of enqueue's arguments (the one definition).
--   idempotency_key_max_length  characters; keys share a btree index, whose entries must stay
--                               under ~2.7 kB (4 bytes per character at worst)
--   source_max_length           characters (no control characters: sources reach logs)
--   text_max_length             default max_length of a text payload field
--   run_at_earliest             finite, representable by every client (Python's datetime stops at
--   run_at_max_ahead            year 1 and 9999), not absurdly far ahead: a year and a day
--   priority_min / priority_max procrastinate orders by priority; BullMQ's 1..2,097,152 maps to
--                               -1..-2,097,152 (broseph/ingress/mapping.py)
--   retry_max_attempts_max      retry.max_attempts is 1..this
--   retry_backoff_seconds_max   retry.backoff_seconds is 0..this
--   echo_max_length             characters of a refused value repeated in an error message
CREATE FUNCTION broseph.enqueue_limits() RETURNS jsonb
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
        "echo_max_length": 40
    }'::jsonb
$$;

-- broseph.echo(value) → a refused value as an error message shows it: JSON-quoted (control
-- characters escaped, so a value cannot forge a log line) and cut to echo_max_length characters.
CREATE FUNCTION broseph.echo(p_value jsonb) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
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

CREATE FUNCTION broseph.echo(p_value text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT broseph.echo(to_jsonb(left(p_value,
        (broseph.enqueue_limits() ->> 'echo_max_length')::integer + 1)))
$$;

-- broseph.field_name(key) → a JSON key as an error names it (in the message and in COLUMN):
-- control characters replaced, cut to echo_max_length characters.
CREATE FUNCTION broseph.field_name(p_key text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT regexp_replace(left(p_key, (broseph.enqueue_limits() ->> 'echo_max_length')::integer),
                          '[[:cntrl:]]', '?', 'g')
$$;

-- broseph.refuse_idempotency_key(key, column) — the refusal of a key that is not 1 to
-- idempotency_key_max_length characters (NULL means no key); callers test the length.
CREATE FUNCTION broseph.refuse_idempotency_key(p_key text, p_column text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION '% must be 1 to % characters (NULL for no key), got % characters: %',
        p_column, broseph.enqueue_limits() ->> 'idempotency_key_max_length', length(p_key),
        broseph.echo(p_key)
        USING ERRCODE = 'invalid_parameter_value', COLUMN = p_column;
END;
$$;

-- broseph.checked_arguments(job_type, idempotency_key, run_at, priority, source, retry)
--     → the job type's registry row
-- Every argument but params (and enqueue_many's arrays), checked in that order; raises 22023
-- naming the first bad one. now() is the transaction's start, as for the job itself. One call on
-- the hot path of enqueue: what costs anything (times, the retry policy) is looked at only when
-- given.
CREATE FUNCTION broseph.checked_arguments(
    p_job_type text, p_key text, p_run_at timestamptz, p_priority integer, p_source text,
    p_retry jsonb
) RETURNS broseph.job_types
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
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

-- broseph.check_retry(retry, limits) — the producer's retry policy ({} or NULL: the job type's
-- own). Keys (broseph/retry.py reads them): max_attempts (integer 1..retry_max_attempts_max),
-- backoff_seconds (number 0..retry_backoff_seconds_max), backoff_type ("fixed" | "exponential").
CREATE FUNCTION broseph.check_retry(p_retry jsonb, p_limits jsonb) RETURNS void
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
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
$$;

-- broseph.checked_params(job_type, spec, value, path, column) → the value in canonical form
-- (UUIDs lower-case, JSON nulls of optional fields dropped), or 22023 naming the first problem:
-- not an object, unknown field, missing field, wrong type, a per-type rule ("requires").
-- path prefixes field names in messages ('' / 'params[3].' / 'data.'), column is the COLUMN of
-- the object itself ('params', 'params[3]', 'params.data'). Recursive for "object" fields.
CREATE FUNCTION broseph.checked_params(
    p_job_type text, p_spec jsonb, p_value jsonb, p_path text, p_column text
) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
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
$$;

-- broseph.params_screen(spec, params[]) → 0: every element is valid and canonical as it is;
-- 1: every element is valid, some need their canonical form (broseph.checked_params gives it);
-- 2: some element may be invalid (broseph.checked_params names the problem). One set-based pass
-- over a batch × the spec's rules (nested "object" fields flattened to paths once), by the rules
-- of broseph.checked_params; it never raises for bad params. (It replaces 0010's params_valid.)
-- jit off: the planner's estimates for this query (a batch × the spec's rules) pass
-- jit_above_cost, and compiling it cost ~0.4 s per call here — more than checking 5,000 rows.
CREATE FUNCTION broseph.params_screen(p_spec jsonb, p_params jsonb[]) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    SET jit = off
AS $$
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
$$;

-- The per-type rules, from the models (broseph/jobs/send_notification.py, notify_members.py);
-- tests/test_catalogue.py checks these specs equal broseph.jobs.base.field_spec(model).
UPDATE broseph.job_types SET fields = jsonb_set(fields, '{type,requires}', '{
        "new_message": ["data.group_id"],
        "prompt_reminder": ["data.group_id", "data.prompt_id"],
        "friend_joined": ["data.group_id", "data.friend_id"],
        "new_prompt": ["data.group_id", "data.prompt_id"]}')
 WHERE name = 'SendNotification';
UPDATE broseph.job_types SET fields = jsonb_set(fields, '{type,requires}', '{
        "friend_joined": ["friend_id"],
        "new_prompt": ["prompt_id"]}')
 WHERE name = 'NotifyMembers';

-- broseph.insert_jobs(job type, params[], keys[], record ids[], run_at, priority, source, retry)
--     → how many jobs were inserted
-- The job records and their queue rows for a checked batch, in one statement; rows whose record id
-- is NULL (settled in an earlier pass) are skipped, rows whose idempotency or coalesce key is
-- taken are left out (ON CONFLICT DO NOTHING) for enqueue_many to look up. search_path: header.
CREATE FUNCTION broseph.insert_jobs(
    jt broseph.job_types, p_params jsonb[], p_keys text[], p_rids uuid[],
    p_run_at timestamptz, p_priority integer, p_source text, p_retry jsonb
) RETURNS integer
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
             procrastinate_job_id)
        SELECT input.rid, jt.name, input.p, input.k,
               CASE WHEN jt.coalesce_fields IS NOT NULL
                    THEN broseph.field_key(jt.name, jt.coalesce_fields, input.p) END,
               p_source,
               coalesce((p_retry ->> 'max_attempts')::integer, jt.max_attempts),
               nextval(job_seq)
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

-- broseph.insert_job(job type, params, key, record id, run_at, priority, source, retry)
--     → the queue row id, or NULL when the idempotency or coalesce key is taken
-- insert_jobs for one checked job, without arrays. search_path: header.
CREATE FUNCTION broseph.insert_job(
    jt broseph.job_types, p_params jsonb, p_key text, p_rid uuid,
    p_run_at timestamptz, p_priority integer, p_source text, p_retry jsonb
) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    job_id bigint;
BEGIN
    WITH inserted AS (
        INSERT INTO broseph.job_records AS r
            (id, job_type, params, idempotency_key, coalesce_key, source, max_attempts,
             procrastinate_job_id)
        VALUES (p_rid, jt.name, p_params, p_key,
                CASE WHEN jt.coalesce_fields IS NOT NULL
                     THEN broseph.field_key(jt.name, jt.coalesce_fields, p_params) END,
                p_source, coalesce((p_retry ->> 'max_attempts')::integer, jt.max_attempts),
                nextval(pg_get_serial_sequence('public.procrastinate_jobs', 'id')::regclass))
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

-- broseph.enqueue_many(job_type, params[], idempotency_keys[], run_at, priority, source, retry)
--     → uuid[] (record ids, in input order)
-- As in 0010 (set-based: one screen of the batch, two INSERTs for the lot), with every argument
-- checked first and params stored canonical. Errors: 22023 with COLUMN (header of this file);
-- 40001 when a coalesced job could not be settled (try again).
CREATE OR REPLACE FUNCTION broseph.enqueue_many(
    job_type text,
    params jsonb[],
    idempotency_keys text[] DEFAULT NULL,
    run_at timestamptz DEFAULT NULL,
    priority integer DEFAULT 0,
    source text DEFAULT 'sql',
    retry jsonb DEFAULT NULL
) RETURNS uuid[]
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
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
    keys := coalesce(idempotency_keys, array_fill(NULL::text, ARRAY[n]));

    -- A coalesced job can leave 'pending' between our INSERT … ON CONFLICT and the look-up
    -- of the winner; a second pass then inserts a fresh job. Three passes is ample.
    FOR pass IN 1..3 LOOP
        rids := ARRAY(SELECT CASE WHEN result[i] IS NULL THEN gen_random_uuid() END
                      FROM generate_series(1, n) AS i);
        inserted_count := broseph.insert_jobs(jt, params, keys, rids, run_at, priority,
                                              source, retry);

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
$$;

-- broseph.enqueue(job_type, params, idempotency_key, run_at, priority, source, retry) → uuid
-- As in 0010 (a single-row path, now one statement; a taken idempotency or coalesce key is
-- settled by enqueue_many), with every argument checked first and params stored canonical.
CREATE OR REPLACE FUNCTION broseph.enqueue(
    job_type text,
    params jsonb,
    idempotency_key text DEFAULT NULL,
    run_at timestamptz DEFAULT NULL,
    priority integer DEFAULT 0,
    source text DEFAULT 'sql',
    retry jsonb DEFAULT NULL
) RETURNS uuid
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    jt broseph.job_types := broseph.checked_arguments(job_type, idempotency_key, run_at, priority,
                                                      source, retry);
    rid uuid := gen_random_uuid();
    job_id bigint;
BEGIN
    params := broseph.checked_params(jt.name, jt.fields, params, '', 'params');
    job_id := broseph.insert_job(jt, params, idempotency_key, rid, run_at, priority, source, retry);
    IF job_id IS NULL THEN
        -- The key (idempotency or coalesce) is taken: enqueue_many finds the holder, or retries
        -- when a coalesced holder started meanwhile.
        RETURN (broseph.enqueue_many(jt.name, ARRAY[params],
                CASE WHEN idempotency_key IS NULL THEN NULL ELSE ARRAY[idempotency_key] END,
                run_at, priority, source, retry))[1];
    END IF;
    RETURN rid;
END;
$$;

-- 0010's screen and 0004's per-row check are replaced by params_screen / checked_params above.
DROP FUNCTION broseph.params_valid(jsonb, jsonb[]);
DROP FUNCTION broseph.check_params(text, jsonb, jsonb, text);

REVOKE EXECUTE ON FUNCTION broseph.enqueue_many(text, jsonb[], text[], timestamptz, integer, text, jsonb)
    FROM PUBLIC, anon, authenticated;
REVOKE EXECUTE ON FUNCTION broseph.enqueue(text, jsonb, text, timestamptz, integer, text, jsonb)
    FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION broseph.enqueue_many(text, jsonb[], text[], timestamptz, integer, text, jsonb)
    TO service_role;
GRANT EXECUTE ON FUNCTION broseph.enqueue(text, jsonb, text, timestamptz, integer, text, jsonb)
    TO service_role;
-- The helpers are pure checks, but none is part of any client's contract.
REVOKE EXECUTE ON FUNCTION broseph.echo(jsonb), broseph.echo(text), broseph.field_name(text),
    broseph.refuse_idempotency_key(text, text),
    broseph.checked_arguments(text, text, timestamptz, integer, text, jsonb),
    broseph.check_retry(jsonb, jsonb), broseph.checked_params(text, jsonb, jsonb, text, text),
    broseph.params_screen(jsonb, jsonb[]),
    broseph.insert_jobs(broseph.job_types, jsonb[], text[], uuid[], timestamptz, integer, text,
                        jsonb),
    broseph.insert_job(broseph.job_types, jsonb, text, uuid, timestamptz, integer, text, jsonb)
    FROM PUBLIC;
-- The limits are readable by producers (e.g. to check a form before enqueueing).
REVOKE EXECUTE ON FUNCTION broseph.enqueue_limits() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION broseph.enqueue_limits() TO service_role;
