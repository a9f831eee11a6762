-- 0008 — Ingress: receipts (exactly-once) and quarantine (bad input kept, never lost).
--
-- broseph.ingress_receipts   one row per job taken from an outside queue (BullMQ), written in the
--                            SAME transaction as the job record it became. The ingress acknowledges
--                            the outside job only after that commit, so a redelivery (crash before
--                            the ack, stalled job, Redis restart) finds its receipt and adds nothing.
--                            The job record's idempotency key alone is not enough: a coalesced job
--                            type (ProcessEngagement) stores no key for the second job it absorbs.
-- broseph.ingress_quarantine one row per outside job that could not become a job (unknown name,
--                            invalid or missing field, non-object data, oversized payload), with
--                            its raw form and the reason; `broseph ingress quarantine replay <id>`
--                            enqueues it after a fix (e.g. in INGRESS_JOB_MAP).
--
-- delivery_key: 'bullmq:<queue>:<job id>' for producer-chosen job ids, plus ':<timestamp ms>' for
-- BullMQ's auto-generated numeric ids, which restart at 1 when Redis loses its data.

CREATE TABLE broseph.ingress_receipts (
    delivery_key text PRIMARY KEY,
    source text NOT NULL,
    queue text NOT NULL,
    job_id text NOT NULL,
    job_name text NOT NULL,
    -- The record it became. NULL only inside broseph.ingress_enqueue's own statement (the
    -- receipt is claimed first, then filled in). No foreign key: record pruning (retention)
    -- must not be blocked by receipts.
    record_id uuid,
    -- Producer options as received (attempts, backoff, delay, priority, jobId, …).
    options jsonb NOT NULL DEFAULT '{}',
    produced_at timestamptz,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ingress_receipts_received_idx ON broseph.ingress_receipts (received_at);

CREATE TABLE broseph.ingress_quarantine (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_key text NOT NULL UNIQUE,
    source text NOT NULL,
    queue text NOT NULL,
    job_id text NOT NULL,
    job_name text NOT NULL,
    -- The job exactly as received, as JSON text ({"name", "data", "options", "timestamp"}):
    -- text, not jsonb, because jsonb refuses some valid JSON (\u0000 in strings) and bad input
    -- must still be kept whole.
    raw text NOT NULL,
    reason text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    replayed_at timestamptz,
    record_id uuid
);
CREATE INDEX ingress_quarantine_open_idx ON broseph.ingress_quarantine (received_at)
    WHERE replayed_at IS NULL;

-- broseph.ingress_enqueue(delivery_key, source, queue, job_id, job_name, options, produced_at,
--                         job_type, params, run_at, priority, retry)
--     → (record_id uuid, duplicate boolean)
-- One outside job into the Postgres queue in ONE statement (one round trip; in autocommit mode
-- it is committed when it returns): claim the receipt; if it was already claimed, return the
-- record it became (duplicate = true) and add nothing; else enqueue through the transactional
-- contract (broseph.enqueue, idempotency key = delivery key) and fill the receipt in. Claiming
-- first matters for coalescing job types, where enqueue could otherwise add a NEW job for a
-- redelivery whose first record has already started. A concurrent delivery of the same job
-- waits on the receipt's primary key, then sees it claimed.
-- Errors: those of broseph.enqueue (22023 naming the field), 22P05 for \u0000 in jsonb.
-- Grants: service_role (and the owner).
CREATE FUNCTION broseph.ingress_enqueue(
    delivery_key text,
    source text,
    queue text,
    job_id text,
    job_name text,
    options jsonb,
    produced_at timestamptz,
    job_type text,
    params jsonb,
    run_at timestamptz,
    priority integer,
    retry jsonb,
    OUT record_id uuid,
    OUT duplicate boolean
)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public
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
                                 ingress_enqueue.retry);
    UPDATE broseph.ingress_receipts r
       SET record_id = ingress_enqueue.record_id
     WHERE r.delivery_key = ingress_enqueue.delivery_key;
    duplicate := false;
END;
$$;

-- Operators only: payloads may hold private data.
REVOKE ALL ON broseph.ingress_receipts, broseph.ingress_quarantine FROM PUBLIC;
GRANT ALL ON broseph.ingress_receipts, broseph.ingress_quarantine TO service_role;
REVOKE EXECUTE ON FUNCTION broseph.ingress_enqueue(text, text, text, text, text, jsonb,
    timestamptz, text, jsonb, timestamptz, integer, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION broseph.ingress_enqueue(text, text, text, text, text, jsonb,
    timestamptz, text, jsonb, timestamptz, integer, jsonb) TO service_role;
