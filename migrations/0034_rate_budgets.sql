-- 0034 — Shared rate budgets (OPENAI_RPM, OPENAI_TPM, FCM_MESSAGES_PER_MINUTE) and the snooze.
--
-- broseph.rate_budgets   one token bucket per name, shared by every worker of the database.
--                        Only its state lives here (tokens at updated_at); the limit comes with
--                        each take, from the taking worker's settings, so a changed setting
--                        applies at the next take without a migration or an update.
--
-- Shape of a bucket with limit L per minute: capacity C = L/60 (one second's worth of burst),
-- refill (L - C)/63 per second. The takes in any 63 s (by the database's clock) are at most
-- C + 63 * (L - C)/63 = L, so the requests reaching the provider in any 60 s window stay within L
-- even when the time from a take to its request reaching the provider varies by up to 3 s
-- (a worker's event loop under load, a new connection). A plain bucket with C = L would allow 2L.
-- The price: a sustained rate of 59/63 of L (94 %). A take larger than C is allowed once the
-- bucket is full and leaves it in debt, so such a take can overshoot a window by (take - C).
--
-- broseph.take_budget(names, amounts, now_at, per_minute) → seconds to wait; 0 = taken.
--     All or nothing over the named buckets (a prompt needs a request AND its tokens): each row
--     is locked in name order (no deadlock between two takers), and either every bucket has its
--     amount and all are charged, or none is and the answer is how long until every one would
--     have it. One statement, no session state (no temporary table, no advisory session lock,
--     no prepared statement): it works the same behind PgBouncer / Supavisor transaction pooling.
--     `now_at` is the caller's now (now() in broseph/queries/budgets.sql: the server's clock, one for
--     every worker).
-- broseph.tighten_budget(name, until) — the server said 429: the bucket is empty until `until`,
--     and refills from there. Only ever moves `until` later; unknown names are created empty.
-- broseph.snooze_job(job_id, until, reason) — puts a running job back to wait for `until`
--     WITHOUT spending an attempt (procrastinate_retry_job_v2 adds one): called by the worker's
--     finish (broseph/engine.py) for a job whose handler had no budget. In the same transaction
--     the record says why: status 'pending' (it waits, nothing failed), next_attempt_at, attempts
--     back to those made, progress_message 'snoozed: <reason>', last_error untouched. If a newer
--     job already holds the record's coalesce key as pending, the record shows 'retrying' instead
--     (one pending job per key, 0003). A job whose cancel was requested meanwhile ends aborted
--     (record: cancelled), as procrastinate's retry does for it.
-- search_path: every name is qualified; procrastinate's triggers on procrastinate_jobs (run by the
-- UPDATE) name their tables without a schema, hence public; pg_temp last.
-- Grants: service_role (the worker connects as it or as the owner); no client role.

CREATE TABLE broseph.rate_budgets (
    name text PRIMARY KEY,
    -- Tokens at updated_at (negative: a debt a large take left).
    tokens double precision NOT NULL,
    -- From here on the bucket refills; later than now() while a 429 holds it shut.
    updated_at timestamptz NOT NULL,
    -- What refused takes (snoozed jobs) will come back for, as of reserved_at; it drains at the
    -- refill rate. A refused take waits behind it, so a thousand jobs refused at once come back
    -- spread over the time the budget needs to serve them, not all at the same instant.
    reserved double precision NOT NULL DEFAULT 0,
    reserved_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION broseph.take_budget(
    names text[], amounts double precision[], now_at timestamptz, per_minute double precision[]
)
    RETURNS double precision
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
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

CREATE FUNCTION broseph.tighten_budget(bucket text, until timestamptz)
    RETURNS void
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO broseph.rate_budgets AS b (name, tokens, updated_at)
    VALUES (bucket, 0, until)
    ON CONFLICT (name) DO UPDATE
       SET tokens = least(b.tokens, 0), updated_at = greatest(b.updated_at, excluded.updated_at);
$$;

CREATE FUNCTION broseph.snooze_job(job_id bigint, until timestamptz, reason text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
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

REVOKE ALL ON TABLE broseph.rate_budgets FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE broseph.rate_budgets TO service_role;
REVOKE EXECUTE ON FUNCTION broseph.take_budget(text[], double precision[], timestamptz,
                                               double precision[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION broseph.take_budget(text[], double precision[], timestamptz,
                                              double precision[]) TO service_role;
REVOKE EXECUTE ON FUNCTION broseph.tighten_budget(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION broseph.tighten_budget(text, timestamptz) TO service_role;
REVOKE EXECUTE ON FUNCTION broseph.snooze_job(bigint, timestamptz, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION broseph.snooze_job(bigint, timestamptz, text) TO service_role;
