"""
migrations/0028: procrastinate's per-row INSERT triggers on procrastinate_jobs replaced by one
statement-level trigger — workers still wake at once, procrastinate's events are still written,
and a procrastinate upgrade that re-creates the originals is reported and undone.
"""

from __future__ import annotations

import asyncio
import datetime
import re
from pathlib import Path

import procrastinate
import psycopg

from broseph import enqueue
from broseph.jobs.process_engagement import ProcessEngagement
from tests import factories
from tests.conftest import wait_until
from tests.profiles import broseph_cli

DAY = datetime.date(2026, 3, 1)
STOCK = (
    "procrastinate_jobs_notify_queue_job_inserted_v1",
    "procrastinate_trigger_status_events_insert_v1",
)


def _stock_triggers() -> str:
    """
    procrastinate's own CREATE TRIGGER statements for its per-row insert triggers, as the
    installed package's schema (and an upgrade file re-creating them) has them.
    """
    schema = (Path(procrastinate.__file__).parent / "sql" / "schema.sql").read_text()
    statements = [re.search(rf"CREATE TRIGGER {name}\b.*?;", schema, re.DOTALL) for name in STOCK]
    assert all(statements), "procrastinate's schema no longer creates these triggers"
    return "\n".join(m.group(0) for m in statements if m)


async def _insert_triggers(conn) -> list[str]:
    cur = await conn.execute(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'procrastinate_jobs'::regclass"
        " AND NOT tgisinternal AND tgtype & 4 = 4 ORDER BY tgname"  # 4: fires on INSERT
    )
    return [row["tgname"] for row in await cur.fetchall()]


async def test_a_fan_out_in_one_statement_wakes_the_idle_worker_with_one_notification(
    db_url, conn, start_worker
):
    assert await _insert_triggers(conn) == [
        "broseph_queue_rows_inserted",
        "procrastinate_trigger_scheduled_events_v1",
    ]
    groups = [await factories.group(conn) for _ in range(20)]
    # Polling every 60 s: only a notification can start the jobs within the test's seconds.
    await start_worker(fetch_job_polling_interval=60, listen_notify=True)
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as listener:
        await listener.execute("LISTEN procrastinate_any_queue_v1")
        async with await psycopg.AsyncConnection.connect(db_url) as api:
            ids = await enqueue.enqueue_many(
                api, [ProcessEngagement(group_id=g, local_date=DAY) for g in groups]
            )
            await api.commit()
        received = []
        async for note in listener.notifies(timeout=2.0):
            received.append(note.payload)

    async def completed() -> bool:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM broseph.job_records"
            " WHERE id = ANY(%s) AND status = 'completed'",
            (ids,),
        )
        row = await cur.fetchone()
        return row["n"] == len(ids)

    await wait_until(completed, within=20)
    # One statement, one queue: one notification, in procrastinate's format, for 20 jobs.
    cur = await conn.execute("SELECT min(id) AS first FROM procrastinate_jobs")
    first = (await cur.fetchone())["first"]
    assert received == [f'{{"type" : "job_inserted", "job_id" : {first}}}']
    # procrastinate's 'deferred' event, once per job, as its per-row trigger wrote it.
    cur = await conn.execute(
        "SELECT count(*) AS n, count(DISTINCT job_id) AS jobs FROM procrastinate_events"
        " WHERE type = 'deferred'"
    )
    assert await cur.fetchone() == {"n": 20, "jobs": 20}


async def test_a_procrastinate_upgrade_re_creating_the_originals_is_reported_and_undone(
    db_url, conn
):
    # What an upgrade file re-creating procrastinate's triggers does.
    await conn.execute(_stock_triggers())
    assert await _insert_triggers(conn) == sorted(
        ["broseph_queue_rows_inserted", "procrastinate_trigger_scheduled_events_v1", *STOCK]
    )
    health = await asyncio.to_thread(broseph_cli, db_url, "health", "--min-workers", "0")
    assert health.returncode == 1, health.stdout + health.stderr
    said = " ".join(health.stdout.split())
    for name in STOCK:
        assert f"per-row insert trigger {name} is back on procrastinate_jobs" in said

    migrated = await asyncio.to_thread(broseph_cli, db_url, "migrate")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    for name in STOCK:
        assert (
            f"restored: procrastinate's per-row insert trigger {name} dropped again (a"
            " procrastinate upgrade had re-created it; migrations/0028 replaces it)"
        ) in migrated.stdout.splitlines()
    assert await _insert_triggers(conn) == [
        "broseph_queue_rows_inserted",
        "procrastinate_trigger_scheduled_events_v1",
    ]
    health = await asyncio.to_thread(broseph_cli, db_url, "health", "--min-workers", "0")
    assert health.returncode == 0, health.stdout + health.stderr

    # An upgrade that rebuilt the table would take ours along: reported, then put back.
    await conn.execute("DROP TRIGGER broseph_queue_rows_inserted ON procrastinate_jobs")
    health = await asyncio.to_thread(broseph_cli, db_url, "health", "--min-workers", "0")
    assert health.returncode == 1
    assert "trigger broseph_queue_rows_inserted on procrastinate_jobs (migrations/0028) is" in (
        " ".join(health.stdout.split())
    )
    migrated = await asyncio.to_thread(broseph_cli, db_url, "migrate")
    assert "restored: trigger broseph_queue_rows_inserted of migrations/0028" in (
        migrated.stdout.splitlines()
    )
    assert await _insert_triggers(conn) == [
        "broseph_queue_rows_inserted",
        "procrastinate_trigger_scheduled_events_v1",
    ]
