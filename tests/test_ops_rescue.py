"""
Automatic rescue: a lost worker's jobs are retried (or failed, or cancelled), the record says why,
jobs behind the same lock are released — and `kill -9` of a worker in the middle of 100 slow jobs
loses nothing.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from psycopg_pool import AsyncConnectionPool

from broseph.ops import rescue
from tests import records
from tests.ops_support import db_now, enqueue_naps, outcome, report, wait_for

pytest_plugins = ("tests.ops_fixtures",)  # cluster, ops_url, ops_conn, workers


async def _lost_worker(conn) -> int:
    """
    A worker row whose heartbeat stopped a minute ago (its process is gone).
    """
    cur = await conn.execute(
        "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '1 minute')"
        " RETURNING id"
    )
    return (await cur.fetchone())["id"]


async def _fetch_as(conn, worker_id: int) -> int:
    cur = await conn.execute("SELECT id FROM procrastinate_fetch_job_v2(NULL, %s)", (worker_id,))
    job_id = (await cur.fetchone())["id"]
    assert job_id is not None
    return job_id


async def test_rescue_retries_fails_or_cancels_by_budget_and_releases_the_lock(ops_url, ops_conn):
    conn = ops_conn
    lost = await _lost_worker(conn)
    cur = await conn.execute("INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id")
    alive = (await cur.fetchone())["id"]
    # Four jobs the lost worker had taken, one a live worker has, and one queued behind a lock.
    [retried] = await enqueue_naps(conn, 1, millis=0, job_type="TestNapLocked", tag="group-1")
    [behind] = await enqueue_naps(conn, 1, millis=0, job_type="TestNapLocked", tag="group-1")
    cur = await conn.execute(
        "SELECT broseph.enqueue('TestNap', '{\"millis\": 0}', retry => '{\"max_attempts\": 1}')"
    )
    exhausted = (await cur.fetchone())["enqueue"]
    [aborting] = await enqueue_naps(conn, 1, millis=0)
    [running] = await enqueue_naps(conn, 1, millis=0)
    for _ in range(3):  # retried, exhausted, aborting
        await _fetch_as(conn, lost)
    running_job = await _fetch_as(conn, alive)
    cur = await conn.execute("SELECT id FROM procrastinate_fetch_job_v2(NULL, %s)", (alive,))
    assert (await cur.fetchone())["id"] is None  # `behind` waits for its lock
    await conn.execute(
        "UPDATE procrastinate_jobs SET abort_requested = true WHERE id ="
        " (SELECT procrastinate_job_id FROM broseph.job_records WHERE id = %s)",
        (aborting,),
    )

    async with AsyncConnectionPool(ops_url, min_size=1, max_size=2, open=False) as pool:
        done = await rescue.rescue_lost_jobs(pool, lost_after_seconds=30)

    assert sorted(r.action for r in done) == ["cancelled", "failed", "retried"]
    assert {r.worker_id for r in done} == {lost}
    row = await records.record(conn, retried)
    assert (row["status"], row["queue_status"], row["attempts"]) == ("retrying", "todo", 1)
    assert row["last_error"].startswith(f"worker lost (worker {lost}, last heartbeat 00:01:")
    row = await records.record(conn, exhausted)
    assert (row["status"], row["queue_status"]) == ("failed", "failed")
    assert row["last_error"].startswith("worker lost")
    assert (await records.record(conn, aborting))["status"] == "cancelled"
    row = await records.record(conn, running)
    assert (row["status"], row["worker_id"]) == ("processing", alive)  # live worker: untouched
    cur = await conn.execute("SELECT id FROM procrastinate_workers ORDER BY id")
    assert [r["id"] for r in await cur.fetchall()] == [alive]  # the lost worker is gone

    # The lock is free again: the retried job runs first, then the one behind it.
    first = await _fetch_as(conn, alive)
    assert (await records.record(conn, retried))["queue_status"] == "doing"
    await conn.execute("SELECT procrastinate_finish_job_v1(%s, 'succeeded', false)", (first,))
    await _fetch_as(conn, alive)
    assert (await records.record(conn, behind))["status"] == "processing"
    assert running_job != first


async def test_rescue_leaves_fresh_heartbeats_alone(ops_url, ops_conn):
    cur = await ops_conn.execute("INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id")
    alive = (await cur.fetchone())["id"]
    [rid] = await enqueue_naps(ops_conn, 1, millis=0)
    await _fetch_as(ops_conn, alive)
    async with AsyncConnectionPool(ops_url, min_size=1, max_size=2, open=False) as pool:
        assert await rescue.rescue_lost_jobs(pool, lost_after_seconds=30) == []
    assert (await records.record(ops_conn, rid))["status"] == "processing"


@pytest.mark.slow
async def test_kill_9_mid_100_slow_jobs_all_complete_with_a_second_worker(ops_conn, workers):
    rescue_after, run_seconds = 3.0, 1.0
    victim = await workers("victim", RESCUE_AFTER_SECONDS=str(rescue_after))
    survivor = await workers("survivor", RESCUE_AFTER_SECONDS=str(rescue_after))
    ids = await enqueue_naps(ops_conn, 100, millis=int(run_seconds * 1000))

    async def victim_running() -> list:
        cur = await ops_conn.execute(
            "SELECT r.id FROM broseph.job_records r"
            " JOIN procrastinate_jobs j ON j.id = r.procrastinate_job_id"
            " WHERE j.status = 'doing' AND j.worker_id = %s",
            (victim.worker_id,),
        )
        return [row["id"] for row in await cur.fetchall()]

    # Let the victim finish a round, then kill it in the middle of its second.
    deadline = time.monotonic() + 30
    while (await outcome(ops_conn, ids)).completed < 10 or len(await victim_running()) < 5:
        assert time.monotonic() < deadline, victim.log()[-2000:]
        await asyncio.sleep(0.05)
    victim.kill()
    killed_at = await db_now(ops_conn)
    in_flight = await victim_running()  # what the dead worker left in `doing`
    assert in_flight

    # Bound: detection (rescue window + heartbeat + one rescue tick) plus the survivor working
    # through whatever is left at 10 at a time.
    remaining = 100 - (await outcome(ops_conn, ids)).completed
    bound = rescue_after + 0.5 + 1.0 + run_seconds * (remaining / 10 + 1) + 10
    result = await wait_for(ops_conn, ids, within=bound)
    cur = await ops_conn.execute(
        "SELECT max(finished_at) AS last, min(finished_at) AS first FROM broseph.job_records"
        " WHERE id = ANY(%s)",
        (in_flight,),
    )
    recovery = ((await cur.fetchone())["last"] - killed_at).total_seconds()

    report(
        "kill -9 of one of two workers mid 100 slow jobs",
        result,
        recovery,
        in_flight_at_kill=len(in_flight),
        rescue_after=rescue_after,
    )
    assert result.completed == 100 and result.lost == 0 and result.stuck == 0
    # At-least-once: a job killed after its effect but before its outcome was recorded runs
    # again (handlers are idempotent). Only jobs in flight at the kill can be such.
    cur = await ops_conn.execute(
        "SELECT record_id FROM ops_test.effects WHERE record_id = ANY(%s)"
        " GROUP BY record_id HAVING count(*) > 1",
        (ids,),
    )
    assert {row["record_id"] for row in await cur.fetchall()} <= set(in_flight)
    # Each was rescued, and its timeline shows it; the survivor logged why.
    cur = await ops_conn.execute(
        "SELECT r.attempts, r.procrastinate_job_id AS job_id,"
        " array_agg(e.type::text ORDER BY e.id) FILTER (WHERE e.type <> 'scheduled') AS events"
        " FROM broseph.job_records r JOIN procrastinate_events e"
        " ON e.job_id = r.procrastinate_job_id WHERE r.id = ANY(%s) GROUP BY r.id",
        (in_flight,),
    )
    rows = await cur.fetchall()
    timeline = ["deferred", "started", "deferred_for_retry", "started", "succeeded"]
    assert [r["events"] for r in rows] == [timeline] * len(in_flight)
    rescues = [line for line in survivor.log().splitlines() if "job_rescued" in line]
    released = set()
    for row in rows:
        said = [line for line in rescues if f"job_id={row['job_id']} " in line]
        assert said and "worker lost" in said[0], rescues
        assert f"worker_id={victim.worker_id}" in said[0]
        # Started on the victim: retried, a second attempt. Fetched in its batch but never
        # started (migrations/0031): released, so the attempt that ran is its first.
        if "action=released" in said[0]:
            released.add(row["job_id"])
        else:
            assert "action=retried" in said[0], said[0]
        assert row["attempts"] == (1 if row["job_id"] in released else 2)
    # A released job's handler never ran on the victim: its effect is there once.
    cur = await ops_conn.execute(
        "SELECT count(*) AS n FROM ops_test.effects e JOIN broseph.job_records r"
        " ON r.id = e.record_id WHERE r.procrastinate_job_id = ANY(%s)",
        (list(released),),
    )
    assert (await cur.fetchone())["n"] == len(released)
    # Rescued no sooner than the rescue window allows, and not much later.
    assert rescue_after <= recovery <= bound
