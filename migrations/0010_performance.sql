-- 0010 — Performance of the enqueue contract (same behaviour, less work per job).
--
-- Measured by `python -m bench` (benchmarks 1 and 2; docs/benchmarks.md has the before/after):
--   broseph.field_key     plpgsql instead of SQL: a SQL function with a sub-select is never
--                         inlined, and PostgreSQL 15 re-plans it in every statement that calls
--                         it; plpgsql keeps its plan for the session.
--   broseph.params_valid  one set-based pass over a whole batch answering "is every row valid?".
--                         enqueue_many runs the per-row check_params loop only when the answer is
--                         no (or the batch is small), so errors keep their exact messages.
--   broseph.enqueue_many  computes coalesce / lock keys only for job types that have them, and
--                         skips the look-up of record ids when every row was inserted (their ids
--                         are the ones it chose).
--   broseph.enqueue       a single-row path: two INSERTs, no arrays, no look-up; anything unusual
--                         (an idempotency key or coalesce key already taken) is handed to
--                         enqueue_many, which settles it exactly as before.
-- Signatures, errors, grants and results are unchanged (CREATE OR REPLACE keeps the grants).

CREATE OR REPLACE FUNCTION broseph.field_key(p_job_type text, p_fields text[], p_params jsonb)
    RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
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

-- broseph.params_valid(spec, params[]) → true when every element satisfies the field spec by the
-- rules of broseph.check_params, false when any may not. One pass over the batch × the spec's
-- rules (nested "object" fields flattened to paths once), no per-row function calls. It never
-- raises for bad params; the caller runs check_params to name the problem.
CREATE FUNCTION broseph.params_valid(p_spec jsonb, p_params jsonb[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    WITH RECURSIVE objects (path, spec) AS (
        SELECT ARRAY[]::text[], p_spec
        UNION ALL
        SELECT o.path || s.k, s.f -> 'fields'
          FROM objects o, jsonb_each(o.spec) AS s (k, f)
         WHERE s.f ->> 'type' = 'object'
    ), rules AS MATERIALIZED (
        SELECT o.path, ARRAY(SELECT jsonb_object_keys(o.spec)) AS keys, NULL::text AS name,
               NULL::jsonb AS f, NULL::text AS kind
          FROM objects o
        UNION ALL
        SELECT o.path, NULL, s.k, s.f, s.f ->> 'type'
          FROM objects o, jsonb_each(o.spec) AS s (k, f)
    )
    SELECT coalesce(bool_and(coalesce(
               CASE
                   WHEN r.name IS NULL THEN
                       CASE WHEN cardinality(r.path) = 0
                                THEN jsonb_typeof(p) = 'object' AND p - r.keys = '{}'::jsonb
                            WHEN jsonb_typeof(x.obj) = 'object' THEN x.obj - r.keys = '{}'::jsonb
                            ELSE true END
                   WHEN jsonb_typeof(x.obj) IS DISTINCT FROM 'object' THEN true
                   WHEN y.v IS NULL OR jsonb_typeof(y.v) = 'null'
                       THEN NOT coalesce((r.f ->> 'required')::boolean, true)
                   WHEN r.kind = 'object' THEN jsonb_typeof(y.v) = 'object'
                   WHEN r.kind = 'integer'
                       THEN jsonb_typeof(y.v) = 'number' AND (y.v #>> '{}') ~ '^-?[0-9]+$'
                   WHEN jsonb_typeof(y.v) <> 'string' THEN false
                   WHEN r.kind = 'uuid' THEN (y.v #>> '{}')
                       ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                   WHEN r.kind = 'date' THEN broseph.is_date(y.v #>> '{}')
                   WHEN r.kind = 'enum' THEN (r.f -> 'values') ? (y.v #>> '{}')
                   WHEN r.kind = 'text'
                       THEN length(y.v #>> '{}') <= coalesce((r.f ->> 'max_length')::int, 10000)
                   ELSE true
               END, false)), true)
      FROM unnest(p_params) AS p
     CROSS JOIN rules r
     CROSS JOIN LATERAL (SELECT p #> r.path AS obj) x
     CROSS JOIN LATERAL (SELECT x.obj -> r.name AS v) y
$$;

-- Batches below this size are checked row by row (the set-based pass costs a plan of its own).
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
    SET search_path = pg_catalog, public
AS $$
DECLARE
    jt broseph.job_types;
    n integer := coalesce(cardinality(params), 0);
    keys text[];
    rids uuid[];
    result uuid[];
    inserted_count integer;
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
    IF n < 16 OR NOT broseph.params_valid(jt.fields, params) THEN
        FOR i IN 1..n LOOP
            PERFORM broseph.check_params(job_type, jt.fields, params[i],
                CASE WHEN n > 1 THEN format('params[%s].', i) ELSE '' END);
        END LOOP;
    END IF;
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
                   CASE WHEN jt.coalesce_fields IS NOT NULL
                        THEN broseph.field_key(jt.name, jt.coalesce_fields, input.p) END,
                   source,
                   coalesce((retry ->> 'max_attempts')::int, jt.max_attempts),
                   nextval(job_seq)
              FROM input
            ON CONFLICT DO NOTHING
            RETURNING r.id, r.params, r.procrastinate_job_id
        ), queued AS (
            INSERT INTO public.procrastinate_jobs
                (id, queue_name, task_name, priority, lock, args, scheduled_at)
            SELECT inserted.procrastinate_job_id, jt.queue, jt.task_name, enqueue_many.priority,
                   CASE WHEN jt.lock_fields IS NOT NULL
                        THEN broseph.field_key(jt.name, jt.lock_fields, inserted.params) END,
                   inserted.params || jsonb_build_object('record_id', inserted.id)
                       || CASE WHEN retry IS NULL THEN '{}'::jsonb
                               ELSE jsonb_build_object('_retry', retry) END,
                   run_at
              FROM inserted
            RETURNING 1
        )
        SELECT count(*) INTO inserted_count FROM queued;

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
        RAISE EXCEPTION '%: could not settle a coalesced job; try again', job_type
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN result;
END;
$$;

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
    SET search_path = pg_catalog, public
AS $$
DECLARE
    jt broseph.job_types := broseph.job_type(job_type);
    rid uuid := gen_random_uuid();
    job_id bigint;
BEGIN
    PERFORM broseph.check_params(job_type, jt.fields, params, '');
    INSERT INTO broseph.job_records AS r
        (id, job_type, params, idempotency_key, coalesce_key, source, max_attempts,
         procrastinate_job_id)
    VALUES (rid, jt.name, params, enqueue.idempotency_key,
            CASE WHEN jt.coalesce_fields IS NOT NULL
                 THEN broseph.field_key(jt.name, jt.coalesce_fields, params) END,
            enqueue.source, coalesce((retry ->> 'max_attempts')::int, jt.max_attempts),
            nextval(pg_get_serial_sequence('public.procrastinate_jobs', 'id')::regclass))
    ON CONFLICT DO NOTHING
    RETURNING r.procrastinate_job_id INTO job_id;
    IF job_id IS NULL THEN
        -- The key (idempotency or coalesce) is taken: enqueue_many finds the holder, or retries
        -- when a coalesced holder started meanwhile.
        RETURN (broseph.enqueue_many(job_type, ARRAY[params],
                CASE WHEN enqueue.idempotency_key IS NULL THEN NULL
                     ELSE ARRAY[enqueue.idempotency_key] END,
                run_at, priority, source, retry))[1];
    END IF;
    INSERT INTO public.procrastinate_jobs
        (id, queue_name, task_name, priority, lock, args, scheduled_at)
    VALUES (job_id, jt.queue, jt.task_name, enqueue.priority,
            CASE WHEN jt.lock_fields IS NOT NULL
                 THEN broseph.field_key(jt.name, jt.lock_fields, params) END,
            params || jsonb_build_object('record_id', rid)
                || CASE WHEN retry IS NULL THEN '{}'::jsonb
                        ELSE jsonb_build_object('_retry', retry) END,
            run_at);
    RETURN rid;
END;
$$;
