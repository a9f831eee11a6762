-- 0021 — Legacy payloads keep working: a ProcessEngagement that names only its group.
--
-- The NestJS publisher of the original brief sends ids only — `ProcessEngagement { groupId }` —
-- and enqueue refused it (`missing field "local_date"`), so the ingress quarantined every one.
-- Now a field spec entry may carry "default": "<rule>" (on an optional top-level field): when an
-- accepted payload leaves that field out (or sends JSON null), enqueue fills it in by the rule,
-- set-based, before the coalesce key and lock are built — so the stored params, the record's
-- coalesce_key and the queue row's lock all carry the value, and a job that named only its group
-- coalesces with the trigger's job for the same group and day. The spec is derived from the
-- payload model (`JobPayload.defaults`, broseph/jobs/base.py: field_spec; tests/test_catalogue.py
-- checks the two are equal); the rule itself exists only here, in broseph.with_defaults.
--
-- One rule exists:
--   group_local_date   the current local date of the group the params' group_id names: now()
--                      (the transaction's start, as for the record's created_at) in the group's
--                      time zone read through broseph.usable_time_zone(), so a stored zone
--                      PostgreSQL does not know reads as UTC.
-- A group that does not exist (deleted, or never there) reads as UTC too: the job is accepted
-- and fails when it runs, permanently, with "group <id> not found" — exactly what a
-- ProcessEngagement naming its date does for a missing group. Refusing it at enqueue instead
-- would make the answer depend on database state that the Python face (the model) cannot see,
-- and the two faces accept the same set of payloads (tests/test_contract_agreement.py).
--
-- ProcessEngagement.local_date becomes optional with that rule. Explicit dates are kept as
-- given (the trigger and the nightly task always give one).
--
-- enqueue / enqueue_many are 0015's, with the one step added (after params are checked, before
-- any key is built); signatures, errors, SECURITY DEFINER, search paths and grants unchanged.

UPDATE broseph.job_types
   SET fields = jsonb_set(fields, '{local_date}',
                          '{"type": "date", "required": false, "default": "group_local_date"}')
 WHERE name = 'ProcessEngagement';

-- broseph.with_defaults(spec, params[]) → params[] with every absent field that has a "default"
-- in the spec filled in by its rule (header above), in input order. params must have been
-- checked against the spec (broseph.checked_params or params_screen): group_id is a UUID.
-- Elements that give the field are returned as they are; a batch that lacks it nowhere is
-- returned untouched without a look-up. Set-based: one join with public.groups per rule.
-- Errors: an unknown rule in the spec is a broken registry (raised as such, not as 22023).
-- Not SECURITY DEFINER: it runs as enqueue's owner, inside enqueue. search_path: names qualified.
CREATE FUNCTION broseph.with_defaults(p_spec jsonb, p_params jsonb[]) RETURNS jsonb[]
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
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

-- broseph.enqueue_many: 0015's, plus broseph.with_defaults once params are checked.
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

-- broseph.enqueue: 0015's, plus broseph.with_defaults once params are checked (the same rule as
-- enqueue_many's, on a one-element batch).
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
    IF jt.fields @? '$.*.default' THEN
        params := (broseph.with_defaults(jt.fields, ARRAY[params]))[1];
    END IF;
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

-- CREATE OR REPLACE keeps enqueue's and enqueue_many's grants. The helper is part of no
-- client's contract (migrations/always/lockdown.sql keeps it so on every run).
REVOKE EXECUTE ON FUNCTION broseph.with_defaults(jsonb, jsonb[]) FROM PUBLIC;
