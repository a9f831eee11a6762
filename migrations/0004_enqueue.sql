-- 0004 — Transactional enqueue: the one contract behind every producer.
--
--   broseph.enqueue(job_type, params, idempotency_key, run_at, priority [, source, retry])
--       → uuid (the job record id)
--   broseph.enqueue_many(job_type, params[], idempotency_keys[], run_at, priority [, source, retry])
--       → uuid[] (record ids, in input order)
--
-- Both write the job record and the procrastinate job in the CALLER's transaction: commit and
-- both exist (the worker is woken by NOTIFY at commit); roll back and neither does.
-- Errors (SQLSTATE 22023 invalid_parameter_value) name the job type and the field:
--   unknown job type, params not an object, missing field, unknown field, wrong type.
-- A repeated idempotency key returns the existing record id and adds no job. A job type with
-- coalesce_fields returns the pending job with the same values instead of adding one.
-- Grants: service_role (and the owner). Triggers call them through SECURITY DEFINER functions.

-- The key shared by coalesce and lock: "<job type>:<value of field 1>:<value of field 2>…".
CREATE FUNCTION broseph.field_key(p_job_type text, p_fields text[], p_params jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p_fields IS NULL OR cardinality(p_fields) = 0 THEN NULL
           ELSE p_job_type || ':' || array_to_string(
               ARRAY(SELECT coalesce(p_params ->> f, '') FROM unnest(p_fields) AS f), ':')
           END
$$;

-- broseph.is_date(text): a real calendar date in YYYY-MM-DD form. Checked arithmetically
-- rather than by casting in an EXCEPTION block, which would cost a subtransaction per row.
CREATE FUNCTION broseph.is_date(s text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN s !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN false
        WHEN substr(s, 1, 4)::int < 1 OR substr(s, 6, 2)::int NOT BETWEEN 1 AND 12 THEN false
        ELSE substr(s, 9, 2)::int BETWEEN 1 AND extract(day FROM
            make_date(substr(s, 1, 4)::int, substr(s, 6, 2)::int, 1)
            + interval '1 month' - interval '1 day')::int
    END
$$;

-- broseph.check_params(job_type, spec, value, path): raises 22023 naming the problem, or
-- returns silently. Recursive for "object" fields.
CREATE FUNCTION broseph.check_params(p_job_type text, p_spec jsonb, p_value jsonb, p_path text)
    RETURNS void
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    k text;
    spec jsonb;
    v jsonb;
    kind text;
    s text;
BEGIN
    IF p_value IS NULL OR jsonb_typeof(p_value) <> 'object' THEN
        RAISE EXCEPTION '%: % must be a JSON object, got %', p_job_type,
            coalesce(nullif(p_path, ''), 'params'), coalesce(jsonb_typeof(p_value), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR k IN SELECT jsonb_object_keys(p_value) LOOP
        IF NOT p_spec ? k THEN
            RAISE EXCEPTION '%: unknown field "%" (allowed: %)', p_job_type, p_path || k,
                (SELECT string_agg(key, ', ' ORDER BY key) FROM jsonb_object_keys(p_spec) AS key)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    FOR k, spec IN SELECT key, value FROM jsonb_each(p_spec) LOOP
        v := p_value -> k;
        IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
            IF coalesce((spec ->> 'required')::boolean, true) THEN
                RAISE EXCEPTION '%: missing field "%"', p_job_type, p_path || k
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            CONTINUE;
        END IF;
        kind := spec ->> 'type';
        IF kind = 'object' THEN
            PERFORM broseph.check_params(p_job_type, spec -> 'fields', v, p_path || k || '.');
            CONTINUE;
        END IF;
        IF kind = 'integer' THEN
            IF jsonb_typeof(v) <> 'number' OR (v #>> '{}') !~ '^-?[0-9]+$' THEN
                RAISE EXCEPTION '%: field "%" must be an integer, got %', p_job_type, p_path || k, v
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            CONTINUE;
        END IF;
        IF jsonb_typeof(v) <> 'string' THEN
            RAISE EXCEPTION '%: field "%" must be a % string, got %', p_job_type, p_path || k, kind, v
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        s := v #>> '{}';
        IF kind = 'uuid' AND s !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
            RAISE EXCEPTION '%: field "%" must be a UUID, got %', p_job_type, p_path || k, v
                USING ERRCODE = 'invalid_parameter_value';
        ELSIF kind = 'date' AND NOT broseph.is_date(s) THEN
            RAISE EXCEPTION '%: field "%" must be a date (YYYY-MM-DD), got %', p_job_type,
                p_path || k, v USING ERRCODE = 'invalid_parameter_value';
        ELSIF kind = 'enum' AND NOT (spec -> 'values') ? s THEN
            RAISE EXCEPTION '%: field "%" must be one of %, got %', p_job_type, p_path || k,
                spec -> 'values', v USING ERRCODE = 'invalid_parameter_value';
        ELSIF kind = 'text' AND length(s) > coalesce((spec ->> 'max_length')::int, 10000) THEN
            RAISE EXCEPTION '%: field "%" is longer than % characters', p_job_type, p_path || k,
                coalesce((spec ->> 'max_length')::int, 10000)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
END;
$$;

-- broseph.job_type(name) → the registry row, or 22023 listing the known types.
CREATE FUNCTION broseph.job_type(p_name text) RETURNS broseph.job_types
    LANGUAGE plpgsql STABLE
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

CREATE FUNCTION broseph.enqueue_many(
    job_type text,
    params jsonb[],
    idempotency_keys text[] DEFAULT NULL,
    run_at timestamptz DEFAULT NULL,
    priority integer DEFAULT 0,
    source text DEFAULT 'sql',
    retry jsonb DEFAULT NULL
) RETURNS uuid[]
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public
AS $$
DECLARE
    jt broseph.job_types;
    n integer := coalesce(cardinality(params), 0);
    keys text[];
    rids uuid[];
    result uuid[];
    job_seq regclass := pg_get_serial_sequence('public.procrastinate_jobs', 'id')::regclass;
BEGIN
    jt := broseph.job_type(job_type);
    IF idempotency_keys IS NOT NULL AND cardinality(idempotency_keys) <> n THEN
        RAISE EXCEPTION '%: % idempotency keys for % params', job_type,
            cardinality(idempotency_keys), n USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF n = 0 THEN
        RETURN ARRAY[]::uuid[];
    END IF;
    FOR i IN 1..n LOOP
        PERFORM broseph.check_params(job_type, jt.fields, params[i],
            CASE WHEN n > 1 THEN format('params[%s].', i) ELSE '' END);
    END LOOP;
    keys := coalesce(idempotency_keys, array_fill(NULL::text, ARRAY[n]));

    -- A coalesced job can leave 'pending' between our INSERT … ON CONFLICT and the look-up
    -- of the winner; a second pass then inserts a fresh job. Three passes is ample.
    FOR pass IN 1..3 LOOP
        rids := ARRAY(SELECT CASE WHEN result[i] IS NULL THEN gen_random_uuid() END
                      FROM generate_series(1, n) AS i);
        WITH input AS (
            SELECT u.p, u.k, u.rid
              FROM unnest(params, keys, rids) WITH ORDINALITY AS u(p, k, rid, ord)
             WHERE u.rid IS NOT NULL
             -- Key order: concurrent batches with overlapping keys wait on each other in one
             -- direction instead of deadlocking.
             ORDER BY u.k, u.ord
        ), inserted AS (
            INSERT INTO broseph.job_records AS r
                (id, job_type, params, idempotency_key, coalesce_key, source, max_attempts,
                 procrastinate_job_id)
            SELECT input.rid, jt.name, input.p, input.k,
                   broseph.field_key(jt.name, jt.coalesce_fields, input.p), source,
                   coalesce((retry ->> 'max_attempts')::int, jt.max_attempts),
                   nextval(job_seq)
              FROM input
            ON CONFLICT DO NOTHING
            RETURNING r.id, r.params, r.procrastinate_job_id
        )
        INSERT INTO public.procrastinate_jobs
            (id, queue_name, task_name, priority, lock, args, scheduled_at)
        SELECT inserted.procrastinate_job_id, jt.queue, jt.task_name, enqueue_many.priority,
               broseph.field_key(jt.name, jt.lock_fields, inserted.params),
               inserted.params || jsonb_build_object('record_id', inserted.id)
                   || CASE WHEN retry IS NULL THEN '{}'::jsonb
                           ELSE jsonb_build_object('_retry', retry) END,
               run_at
          FROM inserted;

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
        RAISE EXCEPTION '%: could not settle a coalesced job; try again', job_type
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN result;
END;
$$;

CREATE FUNCTION broseph.enqueue(
    job_type text,
    params jsonb,
    idempotency_key text DEFAULT NULL,
    run_at timestamptz DEFAULT NULL,
    priority integer DEFAULT 0,
    source text DEFAULT 'sql',
    retry jsonb DEFAULT NULL
) RETURNS uuid
    LANGUAGE sql
AS $$
    SELECT (broseph.enqueue_many(job_type, ARRAY[params],
            CASE WHEN idempotency_key IS NULL THEN NULL ELSE ARRAY[idempotency_key] END,
            run_at, priority, source, retry))[1]
$$;

REVOKE EXECUTE ON FUNCTION broseph.enqueue_many(text, jsonb[], text[], timestamptz, integer, text, jsonb)
    FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION broseph.enqueue(text, jsonb, text, timestamptz, integer, text, jsonb)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION broseph.enqueue_many(text, jsonb[], text[], timestamptz, integer, text, jsonb)
    TO service_role;
GRANT EXECUTE ON FUNCTION broseph.enqueue(text, jsonb, text, timestamptz, integer, text, jsonb)
    TO service_role;
