"""
Retention: 100,000 old finished jobs (queue rows, events, records) are pruned in bounded batches
while a worker keeps completing jobs; nothing unfinished or recent is touched.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import time

import pytest
from psycopg_pool import AsyncConnectionPool

from broseph.ops import retention
from tests.ops_support import Producer, db_now, report, wait_for

pytest_plugins = ("tests.ops_fixtures",)  # cluster, ops_url, ops_conn, workers

# n finished TestNap jobs whose events (deferred, started, <final>) are `age` old, each with a
# record — as a worker would have left them.
SEED = """
WITH j AS (
    INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, attempts)
    SELECT 'test', 'TestNap', '{"millis": 0}', %(status)s::procrastinate_job_status, 1
      FROM generate_series(1, %(n)s)
    RETURNING id
), e AS (
    INSERT INTO procrastinate_events (job_id, type, at)
    SELECT j.id, t.type::procrastinate_job_event_type, now() - %(age)s::interval + t.after
      FROM j, (VALUES ('deferred', interval '0'), ('started', interval '1 second'),
                      (%(event)s, interval '2 seconds')) AS t(type, after)
)
INSERT INTO broseph.job_records
    (job_type, params, status, attempts, procrastinate_job_id, created_at, started_at,
     finished_at)
SELECT 'TestNap', '{"millis": 0}', %(record_status)s, 1, j.id, now() - %(age)s::interval,
       now() - %(age)s::interval, now() - %(age)s::interval + interval '2 seconds'
  FROM j
"""


async def _seed(conn, n: int, age: str, status: str = "succeeded") -> None:
    record_status = {"succeeded": "completed", "failed": "failed"}[status]
    await conn.execute(
        SEED,
        {"n": n, "age": age, "status": status, "event": status, "record_status": record_status},
    )


async def _counts(conn) -> dict:
    # TestNap only: the worker's own periodic ticks come and go meanwhile.
    cur = await conn.execute(
        "SELECT (SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'TestNap') AS jobs,"
        " (SELECT count(*) FROM procrastinate_events e JOIN procrastinate_jobs j"
        "   ON j.id = e.job_id WHERE j.task_name = 'TestNap') AS events,"
        " (SELECT count(*) FROM broseph.job_records) AS records"
    )
    return dict(await cur.fetchone())


@pytest.mark.slow
async def test_prune_100000_old_rows_while_a_worker_keeps_completing_jobs(
    ops_url, ops_conn, workers
):

    await _seed(ops_conn, 100_000, "30 days")
    await _seed(ops_conn, 10, "30 days", status="failed")
    await _seed(ops_conn, 50, "1 hour")  # recent: kept
    # Old but unfinished (deferred long ago, still waiting for its run_at): kept.
    await ops_conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, scheduled_at)"
        " SELECT 'test', 'TestNap', '{\"millis\": 0}', now() + interval '1 day'"
        " FROM generate_series(1, 20)"
    )
    await ops_conn.execute(
        "UPDATE procrastinate_events SET at = now() - interval '30 days' WHERE job_id IN"
        " (SELECT id FROM procrastinate_jobs WHERE status = 'todo')"
    )
    # A record whose queue row was deleted long ago (created before it finished, like every
    # record): pruned too.
    await ops_conn.execute(
        "INSERT INTO broseph.job_records (job_type, params, status, created_at, finished_at)"
        " SELECT 'TestNap', '{\"millis\": 0}', 'cancelled', now() - interval '30 days 1 minute',"
        " now() - interval '30 days'"
        " FROM generate_series(1, 5)"
    )
    await ops_conn.execute("ANALYZE")
    before = await _counts(ops_conn)

    await workers("busy")
    producer = Producer(ops_url, prefix="during")
    await producer.batch(20, millis=10)  # warm: the worker is busy before the prune starts
    stream = asyncio.create_task(producer.stream(10_000, per_batch=2, every=0.02, millis=10))
    async with AsyncConnectionPool(ops_url, min_size=1, max_size=2, open=False) as pool:
        started_at = await db_now(ops_conn)
        clock = time.perf_counter()
        pruned = await retention.prune(
            pool, older_than=datetime.timedelta(days=14), batch_size=5000
        )
        elapsed = time.perf_counter() - clock
        ended_at = await db_now(ops_conn)
    producer.stop()
    await stream
    await producer.close()

    cur = await ops_conn.execute(
        "SELECT finished_at FROM broseph.job_records WHERE finished_at BETWEEN %s AND %s"
        " AND status = 'completed' ORDER BY finished_at",
        (started_at, ended_at),
    )
    during = [row["finished_at"] for row in await cur.fetchall()]
    edges = [started_at, *during, ended_at]
    longest_gap = max((b - a).total_seconds() for a, b in itertools.pairwise(edges))
    print(
        f"\nRETENTION | pruned jobs={pruned.jobs} records={pruned.records}"
        f" batches={pruned.batches} in {elapsed:.2f}s,"
        f" longest batch {pruned.longest_batch_seconds:.3f}s;"
        f" worker completed {len(during)} jobs meanwhile, longest gap {longest_gap:.3f}s"
    )

    assert pruned.jobs == 100_010
    assert pruned.records == 100_010 + 5
    assert pruned.batches >= 100_010 // 5000
    after = await _counts(ops_conn)
    assert before["jobs"] - after["jobs"] + len(producer.ids) == 100_010
    assert after["events"] < before["events"] - 300_000 + 3 * len(producer.ids) + 1
    cur = await ops_conn.execute(
        "SELECT count(*) FILTER (WHERE status = 'todo' AND scheduled_at > now()) AS waiting,"
        " count(*) FILTER (WHERE status = 'succeeded') AS succeeded FROM procrastinate_jobs"
    )
    row = await cur.fetchone()
    assert row["waiting"] == 20  # old but unfinished: never pruned
    assert row["succeeded"] >= 50  # the recent ones are still there
    # The worker was never blocked: it kept finishing jobs all through the prune.
    assert len(during) >= 10
    result = await wait_for(ops_conn, producer.ids, within=30)
    report(
        "prune of 100,000 old jobs while jobs stream through",
        result,
        longest_gap,
        completed_during_prune=len(during),
    )
    assert result.completed == len(producer.ids) and result.lost == 0
    assert result.duplicated == 0


async def test_retention_runs_as_a_periodic_task_in_the_worker(ops_conn, workers):
    await _seed(ops_conn, 200, "30 days")
    await _seed(ops_conn, 3, "1 hour")
    await workers("w", RETENTION_CRON="* * * * * *", RETENTION_DAYS="14", PRUNE_BATCH_SIZE="50")
    deadline = time.monotonic() + 20
    while (counts := await _counts(ops_conn))["records"] > 3:
        assert time.monotonic() < deadline, counts
        await asyncio.sleep(0.1)
    cur = await ops_conn.execute(
        "SELECT count(*) AS n FROM procrastinate_jobs WHERE task_name = 'TestNap'"
    )
    assert (await cur.fetchone())["n"] == 3
