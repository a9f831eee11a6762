-- name: ingress_enqueue_many
-- Outside jobs into the Postgres queue with their receipts, in ONE statement (one round trip and
-- one commit for the lot; see broseph.ingress_enqueue in migrations/0008): per job, in input
-- order, the record id and whether it had been received before. Arrays of equal length; the
-- trace context (0024) is that of each job's ingress span, NULL without tracing.
SELECT r.record_id, r.duplicate
  FROM unnest(%(delivery_key)s::text[], %(source)s::text[], %(queue)s::text[],
              %(job_id)s::text[], %(job_name)s::text[], %(options)s::jsonb[],
              %(produced_at)s::timestamptz[], %(job_type)s::text[], %(params)s::jsonb[],
              %(run_at)s::timestamptz[], %(priority)s::integer[], %(retry)s::jsonb[],
              %(traceparent)s::text[], %(tracestate)s::text[])
       WITH ORDINALITY AS u(delivery_key, source, queue, job_id, job_name, options, produced_at,
                            job_type, params, run_at, priority, retry, traceparent, tracestate,
                            ord)
 CROSS JOIN LATERAL broseph.ingress_enqueue(u.delivery_key, u.source, u.queue, u.job_id,
                                            u.job_name, u.options, u.produced_at, u.job_type,
                                            u.params, u.run_at, u.priority, u.retry,
                                            u.traceparent, u.tracestate) AS r
 ORDER BY u.ord;

-- name: ingress_quarantine_add
-- Keep an outside job that cannot become a job, with its raw form and the reason. A redelivery
-- of the same job adds nothing (no row returned).
INSERT INTO broseph.ingress_quarantine (delivery_key, source, queue, job_id, job_name, raw, reason)
VALUES (%(delivery_key)s, %(source)s, %(queue)s, %(job_id)s, %(job_name)s, %(raw)s, %(reason)s)
ON CONFLICT (delivery_key) DO NOTHING
RETURNING id;

-- name: ingress_quarantine_list
-- Quarantined jobs, newest first; replayed ones only when asked.
SELECT id, delivery_key, source, queue, job_id, job_name, reason, received_at, replayed_at,
       record_id
  FROM broseph.ingress_quarantine
 WHERE %(include_replayed)s OR replayed_at IS NULL
 ORDER BY received_at DESC, id DESC
 LIMIT %(limit)s;

-- name: ingress_quarantine_get
-- One quarantined job, locked so two replays of it cannot race.
SELECT id, delivery_key, source, queue, job_id, job_name, raw, reason, replayed_at, record_id
  FROM broseph.ingress_quarantine
 WHERE id = %(id)s
   FOR UPDATE;

-- name: ingress_quarantine_replayed
-- Mark a quarantined job as replayed into the record it became.
UPDATE broseph.ingress_quarantine
   SET replayed_at = now(), record_id = %(record_id)s
 WHERE id = %(id)s;
