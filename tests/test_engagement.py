"""
ProcessEngagement: the numbers, idempotency, the coalescing trigger, and the nightly fan-out.
"""

from __future__ import annotations

import asyncio
import datetime
from decimal import Decimal

import psycopg

from broseph import services
from broseph.jobs import process_engagement
from tests import factories, pg, records

UTC = datetime.UTC


def _utc(*args: int) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=UTC)


SELECT_DAY = "SELECT * FROM public.group_engagement_daily WHERE group_id = %s AND local_date = %s"


async def _drop_trigger_jobs(conn) -> None:
    """
    The fixture's inserts queued (delayed, coalesced) trigger jobs; drop them so the explicit
    enqueue below creates its own job instead of joining a pending one.
    """
    await conn.execute("DELETE FROM procrastinate_jobs WHERE status = 'todo'")


async def _run_engagement(conn, gid, day: str, key: str) -> dict:
    """
    Enqueue the day's roll-up under idempotency key `key`, wait for it: the day's stats row.
    """
    row = await pg.one(
        conn,
        "SELECT broseph.enqueue('ProcessEngagement', jsonb_build_object('group_id', %s::text,"
        " 'local_date', %s::text), %s) AS id",
        (gid, day, key),
    )
    await records.wait_status(conn, row["id"], "completed", within=15)
    return await pg.one(conn, SELECT_DAY, (gid, day))


async def test_stats_match_hand_computed_fixture_on_a_dst_day_and_rerun_changes_nothing(
    conn, start_worker
):
    # 2026-03-08 is the spring-forward day in New York: the local day is 23 hours long,
    # 05:00Z (EST) to 04:00Z next day (EDT).
    gid = await factories.group(conn, time_zone="America/New_York")
    other = await factories.group(conn, name="Other")
    a, b, c, d = [await factories.user(conn, name=n) for n in "ABCD"]
    for uid in (a, b, c, d):
        await factories.member(conn, gid, uid)
    await factories.member(conn, other, a)
    pid = await factories.prompt(conn, gid, datetime.date(2026, 3, 8))
    await factories.message(conn, gid, a, at=_utc(2026, 3, 8, 4, 59))  # 23:59 on the 7th
    await factories.message(conn, gid, a, at=_utc(2026, 3, 8, 5, 0))  # 00:00 on the 8th
    await factories.message(conn, gid, b, at=_utc(2026, 3, 8, 12, 0), prompt_id=pid)
    await factories.message(conn, gid, b, at=_utc(2026, 3, 8, 13, 0))
    await factories.message(conn, gid, c, at=_utc(2026, 3, 9, 3, 59), prompt_id=pid)  # 23:59 EDT
    await factories.message(conn, gid, d, at=_utc(2026, 3, 9, 4, 0))  # 00:00 on the 9th
    await factories.message(conn, other, a, at=_utc(2026, 3, 8, 12, 0))  # another group
    # Hand-computed: messages A, B, B, C = 4; active A, B, C = 3; members 4; 4/4 = 1.00 per
    # member; B and C answered the prompt: 2/4 = 0.5.
    await _drop_trigger_jobs(conn)
    await start_worker()
    first = await _run_engagement(conn, gid, "2026-03-08", "first")
    assert (
        first["message_count"],
        first["active_members"],
        first["member_count"],
        first["messages_per_member"],
        first["prompt_response_rate"],
    ) == (4, 3, 4, Decimal("1.00"), Decimal("0.5000"))

    await _run_engagement(conn, gid, "2026-03-08", "second")
    cur = await conn.execute(SELECT_DAY, (gid, "2026-03-08"))
    rows = await cur.fetchall()
    assert rows == [first]  # same numbers AND same computed_at: the re-run wrote nothing
    cur = await conn.execute(
        "SELECT result FROM broseph.job_records WHERE idempotency_key IN ('first', 'second')"
        " ORDER BY created_at"
    )
    assert [r["result"]["changed"] for r in await cur.fetchall()] == [True, False]


async def test_fall_back_day_has_25_hours(conn, start_worker):
    gid = await factories.group(conn, time_zone="Europe/Berlin")
    uid = await factories.user(conn)
    await factories.member(conn, gid, uid)
    # 2026-10-25 in Berlin: 22:00Z on the 24th (CEST) to 23:00Z on the 25th (CET).
    await factories.message(conn, gid, uid, at=_utc(2026, 10, 24, 21, 59))  # previous day
    await factories.message(conn, gid, uid, at=_utc(2026, 10, 24, 22, 0))
    await factories.message(conn, gid, uid, at=_utc(2026, 10, 25, 22, 59))
    await factories.message(conn, gid, uid, at=_utc(2026, 10, 25, 23, 0))  # next day
    await _drop_trigger_jobs(conn)
    await start_worker()
    row = await _run_engagement(conn, gid, "2026-10-25", "k")
    assert row["message_count"] == 2 and row["prompt_response_rate"] is None


async def test_burst_of_100_messages_leaves_exactly_one_pending_job(db_url, conn):
    gid = await factories.group(conn)
    users = [await factories.user(conn, name=f"u{i}") for i in range(10)]
    for uid in users:
        await factories.member(conn, gid, uid)

    async def chatter(uid) -> None:
        # Ten concurrent clients, ten single-message transactions each.
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as client:
            for _ in range(10):
                await factories.message(client, gid, uid)

    await asyncio.gather(*(chatter(uid) for uid in users))
    cur = await conn.execute(
        "SELECT count(*) AS n FROM public.messages WHERE group_id = %s", (gid,)
    )
    assert (await cur.fetchone())["n"] == 100
    rows = await pg.every(
        conn,
        "SELECT r.status, j.status AS queue_status, j.scheduled_at > now() AS delayed"
        " FROM broseph.job_records r JOIN procrastinate_jobs j ON j.id = r.procrastinate_job_id"
        " WHERE r.job_type = 'ProcessEngagement' AND r.group_id = %s",
        (gid,),
    )
    assert rows == [{"status": "pending", "queue_status": "todo", "delayed": True}]


async def test_nightly_tick_enqueues_each_active_groups_local_yesterday_once(app, conn, settings):
    tokyo = await factories.group(conn, time_zone="Asia/Tokyo")
    la = await factories.group(conn, time_zone="America/Los_Angeles")
    await factories.group(conn, time_zone="Europe/Paris", active=False)
    svc = services.for_app(app)
    tick = int(_utc(2026, 3, 8, 6, 0).timestamp())  # Tokyo 15:00 on the 8th, LA 22:00 on the 7th
    results = await asyncio.gather(
        process_engagement.nightly(svc, tick), process_engagement.nightly(svc, tick)
    )
    assert results == [2, 2]
    await process_engagement.nightly(svc, tick + 60)  # a re-run of the tick
    cur = await conn.execute(
        "SELECT group_id, params->>'local_date' AS day, source FROM broseph.job_records"
        " WHERE job_type = 'ProcessEngagement' ORDER BY day"
    )
    rows = await cur.fetchall()
    assert {(r["group_id"], r["day"]) for r in rows} == {
        (la, "2026-03-06"),
        (tokyo, "2026-03-07"),
    }
    assert len(rows) == 2 and {r["source"] for r in rows} == {"schedule"}
