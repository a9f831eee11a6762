"""
Cancellation through `broseph jobs cancel`: a pending job is cancelled and never runs; a running
one is aborted by its worker between steps and its record ends `cancelled`.
"""

from __future__ import annotations

import asyncio
import time

from tests import records
from tests.ops_support import broseph, enqueue_naps, outcome, wait_for

pytest_plugins = ("tests.ops_fixtures",)  # cluster, ops_url, ops_conn, workers


async def _until(conn, rid, status: str, within: float = 15) -> dict:
    deadline = time.monotonic() + within
    while (row := await records.record(conn, rid))["status"] != status:
        assert time.monotonic() < deadline, f"still {row['status']}, wanted {status}"
        await asyncio.sleep(0.02)
    return row


async def test_cancel_pending_job_it_never_runs(ops_url, ops_conn, workers):
    [by_record, by_queue_id] = await enqueue_naps(ops_conn, 2, millis=0)
    queue_id = (await records.record(ops_conn, by_queue_id))["job_id"]

    done = broseph(ops_url, "jobs", "cancel", str(by_record))
    assert done.returncode == 0, done.stderr
    assert "cancelled job" in done.stdout
    done = broseph(ops_url, "jobs", "cancel", str(queue_id))  # the queue row id works too
    assert done.returncode == 0, done.stderr
    for rid in (by_record, by_queue_id):
        row = await records.record(ops_conn, rid)
        assert (row["status"], row["queue_status"]) == ("cancelled", "cancelled")

    # A worker runs what comes after, never the cancelled ones.
    await workers("w")
    later = await enqueue_naps(ops_conn, 1, millis=0)
    assert (await wait_for(ops_conn, later, within=15)).completed == 1
    assert (await outcome(ops_conn, [by_record, by_queue_id])).lost == 2  # no effect, ever

    again = broseph(ops_url, "jobs", "cancel", str(by_record))
    assert again.returncode == 1
    assert "already cancelled" in again.stderr


async def test_cancel_running_job_stops_between_steps_and_ends_cancelled(
    ops_url, ops_conn, workers
):

    worker = await workers("w", POLL_INTERVAL="30")  # the abort arrives by NOTIFY
    # 20 s in 200 steps of 0.1 s, reporting progress after each.
    [rid] = await enqueue_naps(ops_conn, 1, millis=20000, steps=200)
    await _until(ops_conn, rid, "processing")
    deadline = time.monotonic() + 15
    while not (await records.record(ops_conn, rid))["progress"]:  # between steps: one reported
        assert time.monotonic() < deadline, "no step reported"
        await asyncio.sleep(0.02)

    done = broseph(ops_url, "jobs", "cancel", str(rid))
    assert done.returncode == 0, done.stderr
    assert "abort requested" in done.stdout
    row = await _until(ops_conn, rid, "cancelled", within=5)
    assert row["queue_status"] == "aborted"
    assert row["last_error"].startswith("JobAborted: ")
    assert 0 < row["progress"] < 100  # stopped part-way, between steps
    assert (await outcome(ops_conn, [rid])).lost == 1  # the final effect never happened

    # The worker is fine and runs the next job; the cancelled one stays cancelled.
    later = await enqueue_naps(ops_conn, 1, millis=0)
    assert (await wait_for(ops_conn, later, within=15)).completed == 1
    assert (await records.record(ops_conn, rid))["status"] == "cancelled"
    assert worker.process.poll() is None

    completed = broseph(ops_url, "jobs", "cancel", str(later[0]))
    assert completed.returncode == 1
    assert "already completed" in completed.stderr
