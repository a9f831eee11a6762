-- 0026 — Lean job records: the record-sync trigger's updates become HOT (heap-only tuple).
--
-- Every job updates its record at least twice through the trigger of 0003 (fetch: processing;
-- finish: completed). PostgreSQL writes such an update as a heap-only tuple — on the same page,
-- with no new entry in any index — only when no column an index reads (key, INCLUDE, expression
-- or partial-index predicate) changes value, and the page has room. Until now `status` sat in
-- two indexes (the key of (status, job_type, created_at, id), the predicate of the coalesce
-- index) and `finished_at` in two more (one a duplicate of the other), so both updates of every
-- job wrote a new entry into every index of the table: about half of the WAL a job costs
-- (docs/benchmarks.md). Here every index of broseph.job_records reads only columns the lifecycle
-- never changes (or changes only on a rare path, said below), and each page keeps room for the
-- updates of its records.
--
-- Indexes, before → after:
--   (status, job_type, created_at, id)   → (created_at, id): the jobs list and the overview
--       walk creation time, the status is read from the row. Statuses a query must find among
--       millions are the troubled ones — see trouble_status below; waiting and running records
--       are found through procrastinate's own partial index of unfinished queue rows (its
--       updates are not heap-only anyway: procrastinate keeps status in its index predicates).
--   (finished_at, id) and (finished_at)  → gone. The second was a duplicate of the first;
--       pruning of records without a queue row walks (created_at, id) instead (a record is
--       created before it finishes, so "finished before the cutoff" is among "created before").
--   UNIQUE (coalesce_key) WHERE status = 'pending' → UNIQUE (coalesce_key) WHERE coalesce_key
--       IS NOT NULL, and the sync trigger clears coalesce_key when a record leaves pending: the
--       same rule (one pending job per key, what later enqueues coalesce into), and the look-ups
--       `coalesce_key = … AND status = 'pending'` of enqueue_many and the messages trigger use
--       it unchanged. A coalesced job's first update is not heap-only (its key goes); others'
--       (NULL stays NULL) are. coalesce_key now reads: the key while pending.
--   UNIQUE (idempotency_key)             → the same, partial (WHERE idempotency_key IS NOT
--       NULL): a job without a key writes no entry.
--   + (trouble_status, job_type, created_at, id) WHERE trouble_status IS NOT NULL:
--       trouble_status is a stored generated column, the status when it is retrying, failed
--       or cancelled and NULL otherwise. The happy path never changes it (NULL → NULL), so the
--       index costs nothing there; a failing attempt's update is not heap-only (rare).
--   (group_id, created_at, id), (user_id, created_at, id), the primary key and
--   UNIQUE (procrastinate_job_id): unchanged (none of them changes after the insert).
--
-- fillfactor 70: pages are filled to 70 % by inserts, leaving room for the two or three newer
-- versions of their records before the page is pruned (existing pages keep their fill).
--
-- Adding trouble_status rewrites the table (stored generated column) under an ACCESS
-- EXCLUSIVE lock: on a large existing table, run this migration at a quiet time. The clearing
-- of coalesce_key below touches only records that are no longer pending and had a key.

ALTER TABLE broseph.job_records
    ADD COLUMN trouble_status text GENERATED ALWAYS AS (
        CASE WHEN status IN ('retrying', 'failed', 'cancelled') THEN status END) STORED;
COMMENT ON COLUMN broseph.job_records.trouble_status IS
    'status when retrying, failed or cancelled, else NULL (generated; indexed for finding them)';
COMMENT ON COLUMN broseph.job_records.coalesce_key IS
    'while the job is pending: the key later enqueues of the same values coalesce into (NULL once it left pending)';

ALTER TABLE broseph.job_records SET (fillfactor = 70);

UPDATE broseph.job_records SET coalesce_key = NULL
 WHERE coalesce_key IS NOT NULL AND status <> 'pending';

DROP INDEX broseph.job_records_coalesce_pending_idx;
CREATE UNIQUE INDEX job_records_coalesce_key_idx ON broseph.job_records (coalesce_key)
    WHERE coalesce_key IS NOT NULL;

ALTER TABLE broseph.job_records DROP CONSTRAINT job_records_idempotency_key_key;
CREATE UNIQUE INDEX job_records_idempotency_key_idx ON broseph.job_records (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

DROP INDEX broseph.job_records_status_type_created_idx;
DROP INDEX broseph.job_records_finished_idx;
DROP INDEX broseph.job_records_finished_id_idx;
CREATE INDEX job_records_created_idx ON broseph.job_records (created_at, id);
CREATE INDEX job_records_trouble_idx
    ON broseph.job_records (trouble_status, job_type, created_at, id)
    WHERE trouble_status IS NOT NULL;

-- broseph.sync_job_record() — as in 0003, and a record leaving pending gives up its coalesce
-- key (see above). The UPDATE writes every column it always wrote: a column set to the value
-- it holds does not stop a heap-only update (PostgreSQL compares the indexed columns' values).
CREATE OR REPLACE FUNCTION broseph.sync_job_record() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
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

    UPDATE broseph.job_records AS r
       SET status = CASE NEW.status
                        WHEN 'todo' THEN 'retrying'
                        WHEN 'doing' THEN 'processing'
                        WHEN 'succeeded' THEN 'completed'
                        WHEN 'failed' THEN 'failed'
                        ELSE 'cancelled'
                    END,
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
     WHERE r.procrastinate_job_id = NEW.id;
    RETURN NEW;
END;
$$;

-- broseph.find_records(...) — as in 0018 (same signature, filters, order and cursor), through
-- the indexes above. Every path is an index range scan that stops after max_rows:
--   a key         the idempotency-key index (one row at most);
--   a group/user  that subject's (…, created_at, id) index, walked backwards;
--   only troubled statuses (retrying, failed, cancelled)
--                 one backward range of the trouble index per status × job type, merged;
--   no completed among the statuses
--                 the waiting and running ones through procrastinate's partial index of its
--                 unfinished queue rows (as many as are unfinished, never the finished ones),
--                 plus the troubled ones as above, merged;
--   otherwise     (created_at, id) backwards, the status and job type read from the row — the
--                 statuses asked for include completed, what nearly every record is.
CREATE OR REPLACE FUNCTION broseph.find_records(
    statuses text[] DEFAULT NULL,
    job_type text DEFAULT NULL,
    created_from timestamptz DEFAULT NULL,
    created_to timestamptz DEFAULT NULL,
    group_id uuid DEFAULT NULL,
    user_id uuid DEFAULT NULL,
    idempotency_key text DEFAULT NULL,
    before_at timestamptz DEFAULT NULL,
    before_id uuid DEFAULT NULL,
    max_rows integer DEFAULT NULL
) RETURNS SETOF broseph.job_records
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, public, pg_temp
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
