"""
The worker's fetch (`broseph.fetch_job`, migrations/0016): a job waiting for a later time never
blocks a due job with the same lock; otherwise procrastinate's rule (one running job per lock,
earlier jobs first), order (priority, id) and SKIP LOCKED are unchanged, and the fetch walks
indexes, never the whole queue.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tests import factories
from tests.conftest import wait_until

DAY = datetime.date(2026, 3, 1)


async def _enqueue(conn: psycopg.AsyncConnection[Any], job_type: str, params: dict[str, Any],
                   key: str | None = None, run_at: Any = None) -> Any:  # fmt: skip
    cur = await conn.execute(
        "SELECT broseph.enqueue(%s, %s, %s, %s) AS id", (job_type, Jsonb(params), key, run_at)
    )
    row = await cur.fetchone()
    assert row is not None
    return row["id"]


async def _status(conn: psycopg.AsyncConnection[Any], record_id: Any) -> str:
    cur = await conn.execute("SELECT status FROM broseph.job_records WHERE id = %s", (record_id,))
    row = await cur.fetchone()
    assert row is not None
    return str(row["status"])


async def test_a_prompt_scheduled_for_later_does_not_block_the_daily_one(conn, start_worker):
    gid = await factories.group(conn)
    month = datetime.timedelta(days=30)
    later = await _enqueue(
        conn, "GeneratePrompt",
        {"group_id": str(gid), "local_date": (DAY + month).isoformat()},
        key="manual:later", run_at=datetime.datetime.now(datetime.UTC) + month,
    )  # fmt: skip
    daily = await _enqueue(
        conn, "GeneratePrompt", {"group_id": str(gid), "local_date": DAY.isoformat()},
        key=f"prompt:{gid}:{DAY}",
    )  # fmt: skip
    await start_worker()

    async def daily_done() -> bool:
        return await _status(conn, daily) == "completed"

    await wait_until(daily_done, within=15)
    assert await _status(conn, later) == "pending"


async def _worker_id(conn: psycopg.AsyncConnection[Any]) -> int:
    cur = await conn.execute("INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id")
    row = await cur.fetchone()
    assert row is not None
    return int(row["id"])


async def _fetch(conn: psycopg.AsyncConnection[Any], worker_id: int) -> int | None:
    cur = await conn.execute("SELECT id FROM broseph.fetch_job(NULL, %s)", (worker_id,))
    row = await cur.fetchone()
    assert row is not None
    return row["id"]


async def _queue_row(conn: psycopg.AsyncConnection[Any], lock: str, *, priority: int = 0,
                     scheduled_at: Any = None, status: str = "todo") -> int:  # fmt: skip
    cur = await conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, lock, priority, scheduled_at,"
        " status) VALUES ('q', 'T', %s, %s, %s, %s) RETURNING id",
        (lock, priority, scheduled_at, status),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["id"])


async def test_fetch_keeps_the_lock_rule_for_due_and_running_jobs(conn):
    wid = await _worker_id(conn)
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    future = await _queue_row(conn, "L", scheduled_at=soon)
    first = await _queue_row(conn, "L")
    second = await _queue_row(conn, "L")
    other = await _queue_row(conn, "M", priority=-1)
    # The due jobs of lock L go one at a time, in id order; the future one is not in the way.
    assert await _fetch(conn, wid) == first
    # L is running: the next L waits, a job of another lock (lower priority) goes.
    assert await _fetch(conn, wid) == other
    assert await _fetch(conn, wid) is None
    await conn.execute("SELECT procrastinate_finish_job_v1(%s, 'succeeded', false)", (first,))
    assert await _fetch(conn, wid) == second
    await conn.execute("SELECT procrastinate_finish_job_v1(%s, 'succeeded', false)", (second,))
    # Once due, the earlier-scheduled job runs (and a higher priority one would go first).
    await conn.execute(
        "UPDATE procrastinate_jobs SET scheduled_at = now() WHERE id = %s", (future,)
    )
    high = await _queue_row(conn, "L", priority=5)
    assert await _fetch(conn, wid) == high
    assert await _fetch(conn, wid) is None  # L is running again
    await conn.execute("SELECT procrastinate_finish_job_v1(%s, 'succeeded', false)", (high,))
    assert await _fetch(conn, wid) == future


async def test_a_job_becoming_due_during_a_concurrent_fetch_costs_no_error(db_url, conn):
    """
    Fetch B starts before job X (lock L) is due and picks Y (same lock, due); fetch A, later,
    takes X. Both would hold lock L: the second to write meets the unique index of running locks.
    That fetch must come back empty, not raise (an error in a fetch stops procrastinate's worker).
    """
    wid = await _worker_id(conn)
    cur = await conn.execute("SELECT now() + interval '400 milliseconds' AS due")
    due = (await cur.fetchone())["due"]
    x = await _queue_row(conn, "L", scheduled_at=due)
    y = await _queue_row(conn, "L")
    async with (
        await psycopg.AsyncConnection.connect(db_url) as a,
        await psycopg.AsyncConnection.connect(db_url) as b,
    ):
        await b.execute("SELECT now()")  # B's transaction (and its now()) starts before X is due

        async def x_due() -> bool:
            cur = await conn.execute("SELECT clock_timestamp() > %s AS due", (due,))
            return bool((await cur.fetchone())["due"])

        await wait_until(x_due)
        cur_a = await a.execute("SELECT id FROM broseph.fetch_job(NULL, %s)", (wid,))
        assert (await cur_a.fetchone())[0] == x

        async def fetch_b() -> Any:
            cur_b = await b.execute("SELECT id FROM broseph.fetch_job(NULL, %s)", (wid,))
            return (await cur_b.fetchone())[0]

        pending = asyncio.create_task(fetch_b())

        async def b_waits_on_a() -> bool:  # on A's uncommitted claim of lock L
            cur = await conn.execute(
                "SELECT wait_event_type = 'Lock' AS waits FROM pg_stat_activity WHERE pid = %s",
                (b.info.backend_pid,),
            )
            return bool((await cur.fetchone())["waits"])

        await wait_until(b_waits_on_a)
        await a.commit()
        assert await pending is None
        await b.commit()
    cur = await conn.execute("SELECT id, status::text FROM procrastinate_jobs ORDER BY id")
    assert [(r["id"], r["status"]) for r in await cur.fetchall()] == [(x, "doing"), (y, "todo")]


async def test_fetch_walks_indexes_not_the_queue(conn):
    # A burst planned for as if the queue were empty (the 08:00 wave, see migrations/0012):
    # statistics taken on an empty table, then thousands of waiting jobs, most of them behind
    # a running job's lock or scheduled for later.
    await conn.execute("ANALYZE procrastinate_jobs")
    wid = await _worker_id(conn)
    await conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, lock, scheduled_at)"
        " SELECT 'q', 'T', 'L' || (i % 500),"
        "        CASE WHEN i % 3 = 0 THEN now() + interval '1 day' END"
        "   FROM generate_series(1, 6000) AS i"
    )
    async with conn.transaction():
        for _ in range(20):
            assert await _fetch(conn, wid) is not None
        cur = await conn.execute(
            "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables"
            " WHERE relid = 'procrastinate_jobs'::regclass"
        )
        stats = await cur.fetchone()
    assert stats["seq_scan"] == 0, stats
    assert stats["idx_scan"] > 0, stats
