-- 0029 — The fan-out's per-row work inside Postgres made set-based (issue 13, part 4).
--
-- Measured by `python -m bench --only 2` (docs/benchmarks.md): enqueue_many cost ~75 µs per job
-- inside Postgres. Per row it called, besides the INSERTs themselves:
--   broseph.is_date        a SQL function with a pinned search_path, so never inlined: the SQL
--                          function executor set up and torn down once per date field per row;
--   a regex per UUID field  the lowercase canonical form, one regex match per row;
--   broseph.field_key      a plpgsql call per row for each lock / coalesce key.
-- Now:
--   broseph.params_screen  (same signature, same answers) first tries the whole batch with casts:
--                          a UUID is canonical when its text is its own uuid::text, a date when
--                          it is 10 characters long and its own to_char(date, 'YYYY-MM-DD') (the
--                          same strings broseph.is_date accepts; to_char, unlike ::text, does not
--                          depend on DateStyle). A value that does not cast raises, once for the
--                          whole set: the screen then answers with 0015's rule-by-rule query,
--                          kept as broseph.params_screen_exact, so an invalid batch still goes
--                          the per-row way of checked_params with the same errors as before.
--   broseph.insert_jobs    builds lock and coalesce keys inline for keys of 1 to 3 fields (every
--                          job type has those; more falls back to field_key): the same strings.
--   jit = off              on enqueue_many, insert_jobs and enqueue: the planner costs a
--                          5,000-row INSERT … SELECT past jit_above_cost, and compiling it costs
--                          more than it saves at these sizes (params_screen had it already).
-- Signatures, errors, grants and results are unchanged (CREATE OR REPLACE keeps the grants).

ALTER FUNCTION broseph.params_screen(jsonb, jsonb[]) RENAME TO params_screen_exact;
COMMENT ON FUNCTION broseph.params_screen_exact(jsonb, jsonb[]) IS
    'migrations/0015''s params_screen, rule by rule: broseph.params_screen''s answer when a value'
    ' of the batch does not cast';

-- 0: every element is valid and canonical as it is; 1: every element is valid, some need their
-- canonical form; 2: some element may be invalid (see 0015). Not PARALLEL SAFE: the exception
-- block is a subtransaction.
CREATE FUNCTION broseph.params_screen(p_spec jsonb, p_params jsonb[]) RETURNS integer
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    SET jit = off
AS $$
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
$$;
REVOKE ALL ON FUNCTION broseph.params_screen(jsonb, jsonb[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION broseph.params_screen_exact(jsonb, jsonb[]) FROM PUBLIC;

-- The keys broseph.field_key builds — job type, then each field's text ('' when absent), joined
-- by ':' — written out for 1 to 3 fields, so a batch builds them without a call per row.
CREATE OR REPLACE FUNCTION broseph.insert_jobs(
    jt broseph.job_types, p_params jsonb[], p_keys text[], p_rids uuid[], p_run_at timestamptz,
    p_priority integer, p_source text, p_retry jsonb,
    p_traceparent text DEFAULT NULL, p_tracestate text DEFAULT NULL
) RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    SET jit = off
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

ALTER FUNCTION broseph.enqueue_many(text, jsonb[], text[], timestamptz, integer, text, jsonb,
                                    text, text)
    SET jit = off;
ALTER FUNCTION broseph.enqueue(text, jsonb, text, timestamptz, integer, text, jsonb, text, text)
    SET jit = off;
