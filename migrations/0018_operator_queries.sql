-- 0018 — Finding job records by filter, fast on millions of rows (the dashboard and `broseph
-- jobs list`), and the indexes that make every such look-up an index range scan.
--
-- Indexes. Records are listed newest first with a keyset cursor (created_at, id), filtered by
-- status, job type, creation time, group, user or idempotency key. Three indexes of 0003 are
-- replaced by wider ones with the same leading columns, so every query that used the old ones
-- still can, and a record write maintains as many indexes as before:
--   (status, job_type)  → (status, job_type, created_at, id)   one range per status and type
--   (group_id)          → (group_id, created_at, id)           a group's records, newest first
--   (user_id)           → (user_id, created_at, id)            a user's records, newest first
-- On an existing database with many rows, build the new ones first by hand without blocking
-- writers (the statements below with CONCURRENTLY after CREATE INDEX); this migration then
-- only drops the old ones.
--
--   broseph.find_records(statuses, job_type, created_from, created_to, group_id, user_id,
--                        idempotency_key, before_at, before_id, max_rows) → SETOF job_records
--       See its header below.

CREATE INDEX IF NOT EXISTS job_records_status_type_created_idx
    ON broseph.job_records (status, job_type, created_at, id);
CREATE INDEX IF NOT EXISTS job_records_group_created_idx
    ON broseph.job_records (group_id, created_at, id) WHERE group_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS job_records_user_created_idx
    ON broseph.job_records (user_id, created_at, id) WHERE user_id IS NOT NULL;
DROP INDEX IF EXISTS broseph.job_records_status_idx;
DROP INDEX IF EXISTS broseph.job_records_group_idx;
DROP INDEX IF EXISTS broseph.job_records_user_idx;
-- broseph.job_types is a handful of rows written by migrations: autovacuum never analyzes a table
-- that small (fewer changes than its threshold of 50), and an unanalyzed table is costed as ~300
-- rows — which makes "one range per status × job type" look a hundred times dearer than it is.
ANALYZE broseph.job_types;

-- broseph.find_records(...) — job records matching every given filter (NULL: no filter), newest
-- first by (created_at, id), strictly older than (before_at, before_id) when given (the keyset
-- cursor of the previous page), at most max_rows (NULL: all).
--   statuses         record statuses (pending, processing, retrying, completed, failed, cancelled)
--   job_type         one job type
--   created_from/_to created_at >= created_from and < created_to
--   group_id, user_id, idempotency_key   the record's subject ids / its key
-- Every path is an index range scan that stops after max_rows, whatever the table's size:
--   a key         the unique idempotency-key index (one row at most);
--   a group/user  that subject's (…, created_at, id) index, walked backwards;
--   otherwise     one backward range of (status, job_type, created_at, id) per status × job
--                 type (job types from broseph.job_types: a handful), merged; each range is
--                 cut at max_rows, so a page costs at most statuses × types × max_rows index
--                 entries even when a filter matches nothing.
-- Callable from psql: SELECT id, status FROM broseph.find_records(statuses => '{failed}',
-- job_type => 'GeneratePrompt', created_from => '2026-11-20 07:55+00', max_rows => 50);
-- Grants: service_role (and the owner).
CREATE FUNCTION broseph.find_records(
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
    ELSE
        RETURN QUERY
            SELECT found.* FROM (
                SELECT s.status, t.name AS job_type
                  FROM unnest(wanted) AS s (status)
                 CROSS JOIN broseph.job_types t
                 WHERE t.name = coalesce(find_records.job_type, t.name)
            ) AS k
            CROSS JOIN LATERAL (
                SELECT r.* FROM broseph.job_records r
                 WHERE r.status = k.status AND r.job_type = k.job_type
                   AND r.created_at >= lo AND r.created_at <= hi
                   AND (r.created_at, r.id) < (cur_at, cur_id)
                 ORDER BY r.created_at DESC, r.id DESC
                 LIMIT max_rows
            ) AS found
            ORDER BY found.created_at DESC, found.id DESC
            LIMIT max_rows;
    END IF;
END;
$$;

REVOKE EXECUTE ON FUNCTION broseph.find_records(text[], text, timestamptz, timestamptz, uuid, uuid,
    text, timestamptz, uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION broseph.find_records(text[], text, timestamptz, timestamptz, uuid, uuid,
    text, timestamptz, uuid, integer) TO service_role;
