"""
Graceful shutdown: SIGTERM → the worker stops fetching, lets in-flight jobs finish within
SHUTDOWN_TIMEOUT, then aborts and requeues the rest at once. Nothing is lost.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from tests import records
from tests.ops_support import db_now, enqueue_naps, outcome, report, wait_for

pytest_plugins = ("tests.ops_fixtures",)  # cluster, ops_url, ops_conn, workers


async def _running(conn, worker_id: int) -> int:
    cur = await conn.execute(
        "SELECT count(*) AS n FROM procrastinate_jobs"
        " WHERE status = 'doing' AND task_name = 'TestNap' AND worker_id = %s",
        (worker_id,),
    )
    return (await cur.fetchone())["n"]


async def _until_running(conn, worker, count: int) -> None:
    deadline = time.monotonic() + 20
    while await _running(conn, worker.worker_id) < count:
        assert time.monotonic() < deadline, worker.log()[-2000:]
        await asyncio.sleep(0.02)


@pytest.mark.slow
async def test_sigterm_lets_10_in_flight_jobs_finish_and_fetches_no_more(ops_conn, workers):
    worker = await workers("draining", SHUTDOWN_TIMEOUT="20")
    in_flight = await enqueue_naps(ops_conn, 10, millis=3000)
    await _until_running(ops_conn, worker, 10)
    queued = await enqueue_naps(ops_conn, 5, millis=10)  # behind them: must not start now
    signalled = await db_now(ops_conn)
    worker.signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait, 30) == 0

    drained = await outcome(ops_conn, in_flight)
    assert drained.completed == 10 and drained.duplicated == 0
    cur = await ops_conn.execute(
        "SELECT max(finished_at) AS last, max(attempts) AS attempts FROM broseph.job_records"
        " WHERE id = ANY(%s)",
        (in_flight,),
    )
    row = await cur.fetchone()
    assert row["attempts"] == 1  # finished in the first run, not aborted
    assert (await outcome(ops_conn, queued)).statuses == {"pending": 5}
    cur = await ops_conn.execute("SELECT count(*) AS n FROM procrastinate_workers")
    assert (await cur.fetchone())["n"] == 0  # unregistered on the way out

    await workers("next")
    result = await wait_for(ops_conn, in_flight + queued, within=20)
    report(
        "SIGTERM, 10 in flight, timeout 20 s: drained",
        result,
        (row["last"] - signalled).total_seconds(),
    )
    assert result.completed == 15 and result.lost == 0 and result.duplicated == 0


@pytest.mark.slow
async def test_sigterm_past_timeout_requeues_10_in_flight_jobs_at_once(ops_conn, workers):
    worker = await workers("impatient", SHUTDOWN_TIMEOUT="1")
    # 30 s on the first attempt, 0.1 s when run again.
    ids = await enqueue_naps(ops_conn, 10, millis=30000, retry_millis=100)
    await _until_running(ops_conn, worker, 10)
    signalled = await db_now(ops_conn)
    worker.signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait, 20) == 0

    rows = [await records.record(ops_conn, rid) for rid in ids]
    assert {(r["status"], r["queue_status"]) for r in rows} == {("retrying", "todo")}
    assert {r["last_error"] for r in rows} == {
        "JobAborted: worker shut down before the job finished"
    }
    now = await db_now(ops_conn)
    assert all(r["next_attempt_at"] <= now for r in rows)  # requeued to run at once

    await workers("next")
    result = await wait_for(ops_conn, ids, within=20)
    cur = await ops_conn.execute(
        "SELECT max(finished_at) AS last FROM broseph.job_records WHERE id = ANY(%s)", (ids,)
    )
    last = (await cur.fetchone())["last"]
    report(
        "SIGTERM, 10 in flight, timeout 1 s: requeued", result, (last - signalled).total_seconds()
    )
    assert result.completed == 10 and result.lost == 0 and result.duplicated == 0
