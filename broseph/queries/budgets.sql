-- name: take_budget
-- Take amounts from shared rate buckets, all or nothing (migrations/0034): seconds to wait, 0 =
-- taken. The server's clock, so every worker measures time alike.
SELECT broseph.take_budget(%(names)s::text[], %(amounts)s::float8[], now(),
                           %(per_minute)s::float8[]);

-- name: tighten_budget
-- A real 429: the bucket stays empty until the server's wait is over (migrations/0034).
SELECT broseph.tighten_budget(%(name)s, now() + make_interval(secs => %(seconds)s));

-- name: snooze_job
-- Back to waiting for `seconds`, no attempt spent, the record saying why (migrations/0034).
SELECT broseph.snooze_job(%(job_id)s, now() + make_interval(secs => %(seconds)s), %(reason)s);
