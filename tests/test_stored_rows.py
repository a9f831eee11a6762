"""
Every reader copes with any row already stored: queue rows and records written before enqueue
checked its arguments (or by hand) — non-finite and out-of-range times, a nonsense retry policy —
neither stop the worker nor crash `broseph health` / `broseph jobs …`.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import uuid
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tests import factories
from tests.conftest import wait_until
from tests.ops_support import broseph

DAY = datetime.date(2026, 3, 1)


async def _stored(
    conn: psycopg.AsyncConnection[Any],
    group_id: uuid.UUID,
    day: datetime.date,
    *,
    scheduled_at: str | None,
    created_at: str = "now",
    retry: dict[str, Any] | None = None,
) -> uuid.UUID:
    """
    A ProcessEngagement record and queue row inserted by hand, as they could have been stored
    before enqueue checked its arguments.
    """
    params = {"group_id": str(group_id), "local_date": day.isoformat()}
    args = {**params, "record_id": None, **({"_retry": retry} if retry else {})}
    cur = await conn.execute(
        "WITH job AS (SELECT nextval(pg_get_serial_sequence('procrastinate_jobs', 'id')) AS id),"
        " rec AS (INSERT INTO broseph.job_records"
        "   (job_type, params, procrastinate_job_id, created_at, next_attempt_at)"
        "   SELECT 'ProcessEngagement', %(params)s, job.id, %(created)s::timestamptz,"
        "          %(scheduled)s::timestamptz FROM job RETURNING id, procrastinate_job_id)"
        " INSERT INTO procrastinate_jobs (id, queue_name, task_name, lock, args, scheduled_at)"
        " SELECT rec.procrastinate_job_id, 'engagement', 'ProcessEngagement', %(lock)s,"
        "        %(args)s || jsonb_build_object('record_id', rec.id), %(scheduled)s::timestamptz"
        "   FROM rec RETURNING (args ->> 'record_id')::uuid AS id",
        {
            "params": Jsonb(params),
            "args": Jsonb({k: v for k, v in args.items() if v is not None}),
            "created": created_at,
            "scheduled": scheduled_at,
            "lock": f"ProcessEngagement:{group_id}:{day.isoformat()}",
        },
    )
    row = await cur.fetchone()
    assert row is not None
    return row["id"]


async def _status(conn: psycopg.AsyncConnection[Any], record_id: uuid.UUID) -> str:
    cur = await conn.execute("SELECT status FROM broseph.job_records WHERE id = %s", (record_id,))
    row = await cur.fetchone()
    assert row is not None
    return str(row["status"])


async def test_worker_survives_stored_non_finite_times_and_commands_report_them(
    db_url, conn, start_worker
):
    gid = await factories.group(conn)
    day = lambda n: DAY + datetime.timedelta(days=n)  # noqa: E731
    due_forever = await _stored(conn, gid, day(0), scheduled_at="-infinity", created_at="-infinity")
    due_bc = await _stored(conn, gid, day(1), scheduled_at="2000-01-01 00:00:00+00 BC")
    never = await _stored(conn, gid, day(2), scheduled_at="infinity", created_at="infinity")
    far = await _stored(conn, gid, day(3), scheduled_at="200000-01-01 00:00:00+00")
    nonsense_retry = await _stored(
        conn, gid, day(4), scheduled_at=None,
        retry={"max_attempts": "lots", "backoff_seconds": [], "backoff_type": 7},
    )  # fmt: skip

    worker = await start_worker()

    async def ran() -> bool:
        statuses = [await _status(conn, r) for r in (due_forever, due_bc, nonsense_retry)]
        return statuses == ["completed"] * 3

    await wait_until(ran, within=20)
    assert not worker.task.done(), "the worker stopped"
    assert [await _status(conn, r) for r in (never, far)] == ["pending", "pending"]

    # A job enqueued afterwards still runs: the worker is alive and fetching.
    cur = await conn.execute(
        "SELECT broseph.enqueue('ProcessEngagement', %s) AS id",
        (Jsonb({"group_id": str(gid), "local_date": day(5).isoformat()}),),
    )
    canary = (await cur.fetchone())["id"]

    async def canary_done() -> bool:
        return await _status(conn, canary) == "completed"

    await wait_until(canary_done, within=15)
    assert not worker.task.done()

    # The operator's commands read the same rows.
    for args in (
        ("health", "--min-workers", "0"),
        ("health", "--min-workers", "0", "--json"),
        ("jobs", "stats"),
        ("jobs", "stats", "--json"),
        ("jobs", "list"),
        ("jobs", "list", "--json"),
        ("jobs", "show", str(never)),
        ("jobs", "show", str(due_forever), "--json"),
    ):
        result = await asyncio.to_thread(broseph, db_url, *args)
        assert result.returncode == 0, (args, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, (args, result.stderr[-2000:])
        if "--json" in args:
            json.loads(result.stdout)
    shown = await asyncio.to_thread(broseph, db_url, "jobs", "show", str(never), "--json")
    queue_row = json.loads(shown.stdout)["queue_row"]
    assert queue_row["scheduled_at"] == "infinity"
    listed = await asyncio.to_thread(broseph, db_url, "jobs", "list", "--json")
    created = {row["id"]: row["created_at"] for row in json.loads(listed.stdout)}
    assert created[str(never)] == "infinity" and created[str(due_forever)] == "-infinity"

    cancelled = await asyncio.to_thread(broseph, db_url, "jobs", "cancel", str(never))
    assert cancelled.returncode == 0, cancelled.stderr[-2000:]
    assert "Traceback" not in cancelled.stderr
    assert await _status(conn, never) == "cancelled"
