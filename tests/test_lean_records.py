"""
Lean job records (migrations/0026): the record's updates through a job's lifecycle are heap-only
(HOT) — no new index entries — and what the indexes no longer read still behaves the same.
"""

from __future__ import annotations

from typing import Any

import psycopg

from broseph import enqueue
from tests import factories, testing_jobs
from tests.conftest import wait_until

# Few enough that every version of their records fits on the page they were inserted in: whether
# an update finds room there otherwise depends on when the page is pruned (a cleanup lock no
# other backend's pin may hold), which is no property of the schema.
JOBS = 5

_STATS = """
SELECT n_tup_upd AS updates, n_tup_hot_upd AS hot
  FROM pg_stat_user_tables
 WHERE relid = 'broseph.job_records'::regclass
"""


# Columns of broseph.job_records that a job's lifecycle writes (the sync trigger, progress,
# outcome). An index reading any of them — key, INCLUDE, expression or predicate — makes every
# update that changes it write a new entry into every index of the table.
LIFECYCLE_COLUMNS = {
    "status", "attempts", "started_at", "finished_at", "next_attempt_at", "progress",
    "progress_message", "last_error", "result", "updated_at",
}  # fmt: skip


async def test_no_index_of_job_records_reads_a_column_the_lifecycle_writes(conn):
    cur = await conn.execute(
        "SELECT i.indexrelid::regclass::text AS index, a.attname AS column"
        "  FROM pg_index i"
        "  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum > 0"
        " WHERE i.indrelid = 'broseph.job_records'::regclass"
        "   AND (a.attnum = ANY (i.indkey)"
        "        OR pg_get_expr(i.indexprs, i.indrelid) ~ ('\\m' || a.attname || '\\M')"
        "        OR pg_get_expr(i.indpred, i.indrelid) ~ ('\\m' || a.attname || '\\M'))"
    )
    read = {(row["index"], row["column"]) for row in await cur.fetchall()}
    assert read, "no index read back"
    assert {(i, c) for i, c in read if c in LIFECYCLE_COLUMNS} == set()


async def _stats(conn: psycopg.AsyncConnection[Any]) -> dict[str, int]:
    cur = await conn.execute(_STATS)
    row = await cur.fetchone()
    assert row is not None
    return {"updates": int(row["updates"]), "hot": int(row["hot"])}


async def test_a_job_s_record_updates_through_its_lifecycle_are_heap_only(app, conn, start_worker):
    """
    Fetch (processing), a progress report and finish (completed): on the schema before 0026 the
    trigger's two updates changed `status`, which an index read, so they were never HOT.
    """
    await testing_jobs.install(app, conn, testing_jobs.REPORTING)
    gid = await factories.group(conn)
    before = await _stats(conn)
    await conn.execute(
        "SELECT broseph.enqueue('TestReports', jsonb_build_object('group_id', %s::text))"
        " FROM generate_series(1, %s)",
        (gid, JOBS),
    )

    async def all_completed() -> bool:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM broseph.job_records"
            " WHERE job_type = 'TestReports' AND status = 'completed'"
        )
        row = await cur.fetchone()
        return row is not None and row["n"] == JOBS

    worker = await start_worker(fetch_job_polling_interval=0.1)
    await wait_until(all_completed, within=60)
    await worker.stop()

    # Each backend sends its table counts to the statistics at most once a second (and within
    # ~10 s of going idle): wait until every update of every job has been counted — two since
    # migrations/0043 (the fetch's processing; the finish's note and end in one write).
    async def counted() -> bool:
        now = await _stats(conn)
        return now["updates"] - before["updates"] >= 2 * JOBS

    await wait_until(counted, within=40, interval=0.5)
    after = await _stats(conn)
    updates = after["updates"] - before["updates"]
    hot = after["hot"] - before["hot"]
    assert hot == updates, f"{updates - hot} of {updates} record updates were not heap-only"


# Test-only: at the end of every transaction that wrote a queue row, the commit mode that
# transaction commits with (a deferred constraint trigger runs just before COMMIT).
_COMMIT_PROBE = """
CREATE SCHEMA commit_probe;
CREATE TABLE commit_probe.seen (job_id bigint, status text, synchronous_commit text);
CREATE FUNCTION commit_probe.note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO commit_probe.seen VALUES (NEW.id, NEW.status::text,
                                          current_setting('synchronous_commit'));
    RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER commit_probe AFTER INSERT OR UPDATE ON public.procrastinate_jobs
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION commit_probe.note();
"""


async def test_the_worker_s_fetch_commits_asynchronously_its_outcomes_and_enqueue_do_not(
    app, conn, db_url, start_worker
):
    """
    docs/reliability.md ("Commit modes"): the worker's fetch commits with synchronous_commit
    off; its finish and retry, and every enqueue (Python, SQL), commit synchronously.
    """
    await testing_jobs.install(app, conn, testing_jobs.REPORTING)
    await testing_jobs.install(app, conn, testing_jobs.FAILING)
    await conn.execute(_COMMIT_PROBE)
    gid = await factories.group(conn)
    async with await psycopg.AsyncConnection.connect(db_url) as api, api.transaction():
        ok = await enqueue.enqueue(api, testing_jobs.Reports(group_id=gid))
    cur = await conn.execute(
        "SELECT broseph.enqueue('TestAlwaysFails', jsonb_build_object('group_id', %s::text)) AS id",
        (gid,),
    )
    failing = (await cur.fetchone())["id"]

    async def finished() -> bool:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM broseph.job_records WHERE id = ANY (%s)"
            " AND status IN ('completed', 'failed')",
            ([ok, failing],),
        )
        return (await cur.fetchone())["n"] == 2

    await start_worker(fetch_job_polling_interval=0.1)
    await wait_until(finished, within=30)
    cur = await conn.execute(
        "SELECT r.job_type, s.status, s.synchronous_commit FROM commit_probe.seen s"
        " JOIN broseph.job_records r ON r.procrastinate_job_id = s.job_id"
        " ORDER BY r.job_type, s.status, s.synchronous_commit"
    )
    seen = {(row["job_type"], row["status"], row["synchronous_commit"])
            for row in await cur.fetchall()}  # fmt: skip
    assert seen == {
        # enqueue: the queue row's INSERT (status todo)
        ("TestReports", "todo", "on"),
        ("TestAlwaysFails", "todo", "on"),
        # fetch
        ("TestReports", "doing", "off"),
        ("TestAlwaysFails", "doing", "off"),
        # finish, retry (doing → todo) and the final failure
        ("TestReports", "succeeded", "on"),
        ("TestAlwaysFails", "todo", "on"),
        ("TestAlwaysFails", "failed", "on"),
    }
