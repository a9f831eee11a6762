"""
Inspection: `broseph jobs list / show / retry / stats` (tables and --json), and procrastinate's
own shell working alongside on the same app.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from broseph.ops import inspect
from tests.ops_support import ROOT, broseph, enqueue_naps, run_until_idle

pytest_plugins = ("tests.ops_fixtures",)  # cluster, ops_url, ops_conn, workers


async def _fail_by_hand(conn, rid) -> int:
    """
    Take the job as a worker would and fail it through procrastinate's own functions.
    """
    cur = await conn.execute("INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id")
    worker_id = (await cur.fetchone())["id"]
    cur = await conn.execute("SELECT id FROM procrastinate_fetch_job_v2(NULL, %s)", (worker_id,))
    job_id = (await cur.fetchone())["id"]
    await conn.execute(
        "UPDATE broseph.job_records SET last_error = 'RuntimeError: boom' WHERE id = %s", (rid,)
    )
    await conn.execute("SELECT procrastinate_finish_job_v1(%s, 'failed', false)", (job_id,))
    await conn.execute("DELETE FROM procrastinate_workers WHERE id = %s", (worker_id,))
    return job_id


def test_parse_since():
    now = datetime.datetime(2026, 11, 20, 12, 0, tzinfo=datetime.UTC)
    assert inspect.parse_since("30m", now=now) == now - datetime.timedelta(minutes=30)
    assert inspect.parse_since("2d", now=now) == now - datetime.timedelta(days=2)
    assert inspect.parse_since("2026-11-20T08:00:00") == now.replace(hour=8)
    with pytest.raises(ValueError, match="use 30m, 2h, 7d"):
        inspect.parse_since("yesterday")


async def test_list_show_retry_stats_in_process(ops_url, ops_conn):
    done = await enqueue_naps(ops_conn, 3, millis=0, tag="ok")
    await run_until_idle(ops_url)
    [failing] = await enqueue_naps(ops_conn, 1, millis=0, tag="bad")
    job_id = await _fail_by_hand(ops_conn, failing)

    failed = await inspect.list_records(ops_conn, status="failed", job_type="TestNap")
    assert [r["id"] for r in failed] == [failing]
    assert failed[0]["last_error"] == "RuntimeError: boom"
    assert len(await inspect.list_records(ops_conn, status="completed")) == 3
    future = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    assert await inspect.list_records(ops_conn, since=future) == []
    assert len(await inspect.list_records(ops_conn, limit=2)) == 2

    view = await inspect.show(ops_conn, str(done[0]))
    assert view.record["status"] == "completed" and view.queue_row["status"] == "succeeded"
    assert [e["type"] for e in view.events] == ["deferred", "started", "succeeded"]
    assert (await inspect.show(ops_conn, str(job_id))).record["id"] == failing  # by queue id
    with pytest.raises(inspect.JobNotFound):
        await inspect.show(ops_conn, "999999")
    with pytest.raises(inspect.JobNotFound, match="neither a job record id"):
        await inspect.show(ops_conn, "not-an-id")

    with pytest.raises(inspect.NotPossible, match="only failed jobs can be retried"):
        await inspect.retry(ops_conn, str(done[0]))
    view = await inspect.retry(ops_conn, str(failing))
    assert view.record["status"] == "retrying" and view.queue_row["status"] == "todo"
    assert [e["type"] for e in view.events][-1] == "retried"
    await run_until_idle(ops_url)
    view = await inspect.show(ops_conn, str(failing))
    # procrastinate counts the manual retry itself as an attempt (as its shell's `retry` does).
    assert view.record["status"] == "completed" and view.record["attempts"] == 3
    assert [e["type"] for e in view.events][-2:] == ["started", "succeeded"]

    stats = await inspect.stats(ops_conn)
    assert {"job_type": "TestNap", "status": "completed", "jobs": 4} in stats["records"]
    assert {"queue": "test", "status": "succeeded", "jobs": 4} in stats["queues"]


async def test_jobs_commands_as_an_operator_types_them(ops_url, ops_conn):
    [ok] = await enqueue_naps(ops_conn, 1, millis=0)
    await run_until_idle(ops_url)
    [bad] = await enqueue_naps(ops_conn, 1, millis=0)
    await _fail_by_hand(ops_conn, bad)

    listed = broseph(
        ops_url, "jobs", "list", "--status", "failed", "--type", "TestNap", "--since", "1h"
    )
    assert listed.returncode == 0, listed.stderr
    assert str(bad) in listed.stdout and str(ok) not in listed.stdout
    assert "RuntimeError: boom" in listed.stdout and "1 job(s)" in listed.stdout

    shown = broseph(ops_url, "jobs", "show", str(ok))
    assert shown.returncode == 0, shown.stderr
    assert "timeline (procrastinate_events)" in shown.stdout
    for event in ("deferred", "started", "succeeded"):
        assert event in shown.stdout

    retried = broseph(ops_url, "jobs", "retry", str(bad), "--json")
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["record"]["status"] == "retrying"
    again = broseph(ops_url, "jobs", "retry", str(ok))
    assert again.returncode == 1 and "only failed jobs can be retried" in again.stderr

    stats = broseph(ops_url, "jobs", "stats", "--json")
    assert stats.returncode == 0, stats.stderr
    data = json.loads(stats.stdout)
    assert {"job_type": "TestNap", "status": "retrying", "jobs": 1} in data["records"]
    assert {"queue": "test", "status": "todo", "jobs": 1} in data["queues"]


async def test_procrastinate_shell_works_alongside(ops_url, ops_conn):
    [rid] = await enqueue_naps(ops_conn, 1, millis=0)
    await run_until_idle(ops_url)
    job_id = (await inspect.show(ops_conn, str(rid))).job_id
    env = {**os.environ, "DATABASE_URL": ops_url, "PYTHONPATH": str(ROOT)}
    procrastinate = Path(sys.executable).parent / "procrastinate"
    result = await asyncio.to_thread(
        subprocess.run,
        [str(procrastinate), "--app", "broseph.worker.app", "shell", "list_jobs"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"#{job_id} TestNap on test - [succeeded]" in result.stdout


async def test_jobs_list_and_show_print_times_in_utc_and_say_so(ops_url, ops_conn):
    """
    Times are printed in UTC with a Z, whatever the session's time zone (PGTZ here).
    """
    [rid] = await enqueue_naps(ops_conn, 1, millis=0)
    await run_until_idle(ops_url)
    cur = await ops_conn.execute(
        "SELECT created_at, finished_at FROM broseph.job_records WHERE id = %s", (rid,)
    )
    row = await cur.fetchone()
    assert row is not None
    created, finished = (
        row[k].astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        for k in ("created_at", "finished_at")
    )
    listed = broseph(ops_url, "jobs", "list", PGTZ="Asia/Tokyo")
    shown = broseph(ops_url, "jobs", "show", str(rid), PGTZ="Asia/Tokyo")
    assert listed.returncode == 0 and shown.returncode == 0, listed.stderr + shown.stderr
    assert created in listed.stdout and finished in listed.stdout
    assert created in shown.stdout and finished in shown.stdout
    # No time of day without its zone, anywhere in either output.
    bare = re.findall(r"\d{2}:\d{2}:\d{2}(?![Z\d.])", listed.stdout + shown.stdout)
    assert not bare, bare
