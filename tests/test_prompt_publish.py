"""
Prompts ready before the hour (issue 14, part 1): generated ahead of each group's local prompt
hour (PROMPT_LEAD_MINUTES), stored unpublished, published at the hour by one statement that
notifies the members; the hour's own path for prompts not ready; the AI down ahead of and at the
hour. The clock is the services' (tests/notify_support.use_clock) and the ticks' timestamps.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator, Iterator
from typing import Any

import procrastinate
import psycopg
import pytest

from broseph import enqueue, idempotency, services
from broseph.jobs import generate_prompt
from broseph.jobs.generate_prompt import GeneratePrompt
from broseph.settings import Settings
from tests import factories
from tests.conftest import wait_until
from tests.notify_support import use_clock
from tests.prompt_support import QUICK, ai_settings, finish
from tests.standins.openai_server import OpenAIStandIn, Reply
from tests.test_budgets import most_in_any_window

UTC = datetime.UTC
DAY = datetime.date(2026, 6, 1)
# Berlin in June is UTC+2: its 08:00 prompt hour is 06:00Z.
HOUR_AT = datetime.datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
MINUTE = datetime.timedelta(minutes=1)


class Clock:
    def __init__(self, now: datetime.datetime) -> None:
        self.now = now

    def __call__(self) -> datetime.datetime:
        return self.now


@pytest.fixture
def standin() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn() as server:
        yield server


@pytest.fixture
async def svc(
    app: procrastinate.App, settings: Settings, standin: OpenAIStandIn
) -> AsyncIterator[services.Services]:
    built = services.build(
        ai_settings(settings, standin, prompt_hour=8, prompt_lead_minutes=60),
        services.pool_of(app),
    )
    services.install(app, built)
    yield built
    await built.aclose()


@pytest.fixture
def clock(app: procrastinate.App, svc: services.Services) -> Clock:
    tick = Clock(HOUR_AT - 45 * MINUTE)
    use_clock(app, tick)
    return tick


async def _crew(conn: psycopg.AsyncConnection[Any], members: int = 3) -> tuple[Any, list[Any]]:
    gid = await factories.group(conn, name="Crew", time_zone="Europe/Berlin")
    users = [await factories.user(conn, name=f"Member {i}") for i in range(members)]
    for uid in users:
        await factories.member(conn, gid, uid)
    return gid, users


async def _prompt(conn: psycopg.AsyncConnection[Any], gid: Any) -> dict[str, Any] | None:
    cur = await conn.execute(
        "SELECT id, source, published_at FROM public.prompts"
        " WHERE group_id = %s AND local_date = %s",
        (gid, DAY),
    )
    return await cur.fetchone()


async def _announced(conn: psycopg.AsyncConnection[Any]) -> list[str]:
    cur = await conn.execute(
        "SELECT idempotency_key FROM broseph.job_records"
        " WHERE job_type = 'DeliverGroupEvent' AND params ->> 'type' = 'new_prompt'"
        " ORDER BY idempotency_key"
    )
    return [r["idempotency_key"] for r in await cur.fetchall()]


async def _stored(conn: psycopg.AsyncConnection[Any], gid: Any) -> bool:
    return await _prompt(conn, gid) is not None


async def _scheduled(conn: psycopg.AsyncConnection[Any], gid: Any) -> Any:
    """
    The schedule's job for the group's DAY, with quick retries (as the ahead fan-out would enqueue
    it, so its prompt waits for the hour).
    """
    return await enqueue.enqueue(
        conn,
        GeneratePrompt(group_id=gid, local_date=DAY),
        idempotency_key=idempotency.prompt(gid, DAY),
        source="schedule",
        retry=QUICK,
    )


async def _record_of(conn: psycopg.AsyncConnection[Any], gid: Any) -> dict[str, Any]:
    cur = await conn.execute(
        "SELECT r.*, j.scheduled_at FROM broseph.job_records r"
        "  JOIN procrastinate_jobs j ON j.id = r.procrastinate_job_id"
        " WHERE r.idempotency_key = %s",
        (idempotency.prompt(gid, DAY),),
    )
    row = await cur.fetchone()
    assert row is not None
    return dict(row)


async def test_a_prompt_generated_ahead_waits_unpublished_then_is_published_and_announced_once(
    conn, svc, clock, start_worker
):
    gid, _ = await _crew(conn)
    tick = HOUR_AT - 45 * MINUTE  # Berlin 07:15: the hour is within the 60-minute lead

    assert await generate_prompt.fan_out(svc, int(tick.timestamp())) == 1
    job = await _record_of(conn, gid)
    assert tick <= job["scheduled_at"] <= tick + generate_prompt.SPREAD * 45 * MINUTE
    await start_worker(queues=["prompts"])
    await wait_until(lambda: _stored(conn, gid))
    waiting = await _prompt(conn, gid)
    assert waiting is not None and waiting["published_at"] is None
    assert waiting["source"] == "openai"
    assert await _announced(conn) == []  # stored ahead: nobody told yet

    assert await generate_prompt.publish(svc, int((HOUR_AT - 15 * MINUTE).timestamp())) == 0
    assert (await _prompt(conn, gid))["published_at"] is None
    assert await generate_prompt.publish(svc, int(HOUR_AT.timestamp())) == 1
    assert (await _prompt(conn, gid))["published_at"] == HOUR_AT
    expected = [f"new_prompt:{waiting['id']}"]  # one group delivery (0040) tells every member
    assert await _announced(conn) == expected
    # Later ticks, and two at once, publish and announce nothing more.
    later = int((HOUR_AT + 15 * MINUTE).timestamp())
    counts = await asyncio.gather(
        generate_prompt.publish(svc, later), generate_prompt.publish(svc, later)
    )
    assert counts == [0, 0]
    assert await _announced(conn) == expected
    assert (await _record_of(conn, gid))["status"] == "completed"


async def test_two_waiting_prompts_published_by_two_ticks_at_once_are_announced_once(
    conn, svc, clock
):
    crews = [await _crew(conn, members=2) for _ in range(2)]
    clock.now = HOUR_AT - 30 * MINUTE
    for gid, _ in crews:
        await conn.execute(
            "INSERT INTO public.prompts"
            " (group_id, local_date, text, category, source, published_at)"
            " VALUES (%s, %s, 'Ahead?', 'icebreaker', 'openai', NULL)",
            (gid, DAY),
        )
    assert await _announced(conn) == []
    at = int(HOUR_AT.timestamp())
    counts = await asyncio.gather(
        generate_prompt.publish(svc, at), generate_prompt.publish(svc, at)
    )
    assert sorted(counts) == [0, 2]
    assert len(await _announced(conn)) == 2


async def test_a_prompt_not_ready_at_the_hour_is_generated_then_and_published_as_stored(
    conn, svc, clock, start_worker
):
    gid, _ = await _crew(conn)
    early = await _crew(conn)  # asked for ahead, but the AI is late: it runs after the hour
    ahead = HOUR_AT - 45 * MINUTE
    assert await generate_prompt.fan_out(svc, int(ahead.timestamp())) == 2
    await conn.execute(
        "DELETE FROM procrastinate_jobs j USING broseph.job_records r"
        " WHERE r.procrastinate_job_id = j.id AND r.group_id = %s",
        (gid,),
    )
    await conn.execute("DELETE FROM broseph.job_records WHERE group_id = %s", (gid,))
    # The hour's tick: nothing waits to be published, the group without a job gets one now.
    assert await generate_prompt.publish(svc, int(HOUR_AT.timestamp())) == 0
    assert await generate_prompt.fan_out(svc, int(HOUR_AT.timestamp())) == 1
    assert (await _record_of(conn, gid))["scheduled_at"] is None  # at once
    clock.now = HOUR_AT + 2 * MINUTE
    await start_worker(queues=["prompts"])
    await wait_until(lambda: _stored(conn, gid))
    await wait_until(lambda: _stored(conn, early[0]))

    for group in (gid, early[0]):
        stored = await _prompt(conn, group)
        assert stored is not None and stored["published_at"] == clock.now
        assert stored["source"] == "openai"
        keys = await _announced(conn)
        assert f"new_prompt:{stored['id']}" in keys
    assert len(await _announced(conn)) == 2
    assert await generate_prompt.publish(svc, int((HOUR_AT + 15 * MINUTE).timestamp())) == 0


async def test_the_ai_down_ahead_waits_for_the_hour_and_the_bank_answers_only_then(
    conn, svc, clock, standin, start_worker
):
    gid, _ = await _crew(conn)
    clock.now = HOUR_AT - 40 * MINUTE
    standin.script(*[Reply.status(503)] * 10)
    rid = await _scheduled(conn, gid)
    await start_worker(queues=["prompts"])

    async def snoozed() -> bool:
        cur = await conn.execute(
            "SELECT next_attempt_at FROM broseph.job_records WHERE id = %s", (rid,)
        )
        return (await cur.fetchone())["next_attempt_at"] is not None

    await wait_until(snoozed)
    rec = await _record_of(conn, gid)
    assert rec["status"] == "pending" and rec["attempts"] == 0  # no attempt spent ahead
    assert "trying again at the hour" in rec["progress_message"]
    # Until the group's hour (40 minutes on the services' clock), give or take the run time.
    wait = (rec["scheduled_at"] - datetime.datetime.now(UTC)).total_seconds()
    assert 40 * 60 - 30 < wait <= 40 * 60
    assert await _prompt(conn, gid) is None and len(standin.requests) == 1

    # The hour comes and the AI is still down: the retries, then the bank; published as stored.
    clock.now = HOUR_AT + MINUTE
    await conn.execute(
        "UPDATE procrastinate_jobs SET scheduled_at = now() WHERE id = %s",
        (rec["procrastinate_job_id"],),
    )
    done, _ = await finish(conn, rid)
    assert done["status"] == "completed" and done["attempts"] == QUICK["max_attempts"]
    stored = await _prompt(conn, gid)
    assert stored is not None and stored["source"] == "offline"
    assert stored["published_at"] == clock.now
    assert [f"new_prompt:{stored['id']}"] == await _announced(conn)


async def test_the_ai_down_ahead_and_back_at_the_hour_writes_the_prompt(
    conn, svc, clock, standin, start_worker
):
    gid, _ = await _crew(conn)
    clock.now = HOUR_AT - 40 * MINUTE
    standin.script(Reply.status(503))
    rid = await _scheduled(conn, gid)
    await start_worker(queues=["prompts"])
    await wait_until(lambda: _has_requests(standin, 1))
    await wait_until(lambda: _snoozed(conn, rid))
    clock.now = HOUR_AT
    rec = await _record_of(conn, gid)
    await conn.execute(
        "UPDATE procrastinate_jobs SET scheduled_at = now() WHERE id = %s",
        (rec["procrastinate_job_id"],),
    )
    done, _ = await finish(conn, rid)
    assert done["status"] == "completed" and done["attempts"] == 1
    stored = await _prompt(conn, gid)
    assert stored is not None and stored["source"] == "openai"
    assert stored["published_at"] == HOUR_AT


async def _has_requests(standin: OpenAIStandIn, n: int) -> bool:
    return len(standin.requests) >= n


async def _snoozed(conn: psycopg.AsyncConnection[Any], rid: Any) -> bool:
    cur = await conn.execute(
        "SELECT status, next_attempt_at FROM broseph.job_records WHERE id = %s", (rid,)
    )
    row = await cur.fetchone()
    return bool(row["status"] == "pending" and row["next_attempt_at"] is not None)


async def test_pre_generation_and_the_hours_path_racing_store_one_prompt_per_group_and_day(
    conn, svc, clock, start_worker
):
    gids = [(await _crew(conn, members=1))[0] for _ in range(20)]
    ahead = int((HOUR_AT - 30 * MINUTE).timestamp())
    at_hour = int(HOUR_AT.timestamp())
    # The ahead tick and the hour's tick at once (a slow tick meeting the next one).
    counts = await asyncio.gather(
        generate_prompt.fan_out(svc, ahead), generate_prompt.fan_out(svc, at_hour)
    )
    assert 20 <= sum(counts) <= 40  # each found them due; the keys let one job per group in
    cur = await conn.execute(
        "SELECT count(*) AS n, count(DISTINCT group_id) AS groups FROM broseph.job_records"
        " WHERE job_type = 'GeneratePrompt'"
    )
    assert await cur.fetchone() == {"n": 20, "groups": 20}
    # And a job under another key for the same day (a manual "generate now").
    await conn.execute(
        "SELECT broseph.enqueue('GeneratePrompt', jsonb_build_object('group_id', %s::text,"
        " 'local_date', %s::text), 'manual:' || %s::text)",
        (gids[0], DAY.isoformat(), gids[0]),
    )
    clock.now = HOUR_AT - 10 * MINUTE
    await start_worker(queues=["prompts"])

    async def all_stored() -> bool:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM public.prompts WHERE group_id = ANY(%s)", (gids,)
        )
        return bool((await cur.fetchone())["n"] == 20)

    await wait_until(all_stored, within=30)
    cur = await conn.execute(
        "SELECT group_id, count(*) AS n, count(published_at) AS published FROM public.prompts"
        " WHERE group_id = ANY(%s) GROUP BY group_id",
        (gids,),
    )
    rows = {r["group_id"]: (r["n"], r["published"]) for r in await cur.fetchall()}
    # The manual ask is published as stored if it ran first (a "generate now"), else it found the
    # schedule's waiting prompt: one prompt either way.
    manual = rows.pop(gids[0])
    assert manual in ((1, 0), (1, 1))
    assert set(rows.values()) == {(1, 0)}
    assert await generate_prompt.publish(svc, at_hour) == 20 - manual[1]
    assert len(await _announced(conn)) == 20


async def test_the_lead_spreads_run_at_within_the_budget(conn, svc):
    n = 3000
    await conn.execute(
        "INSERT INTO public.groups (name, time_zone)"
        " SELECT 'group ' || i, 'Europe/Berlin' FROM generate_series(1, %s) AS i",
        (n,),
    )
    tick = HOUR_AT - 60 * MINUTE  # Berlin 07:00: the whole lead ahead
    assert await generate_prompt.fan_out(svc, int(tick.timestamp())) == n
    cur = await conn.execute(
        "SELECT extract(epoch FROM j.scheduled_at - %s::timestamptz)::float8 AS at"
        "  FROM procrastinate_jobs j WHERE j.task_name = 'GeneratePrompt'",
        (tick,),
    )
    offsets = [r["at"] for r in await cur.fetchall()]
    assert len(offsets) == n
    spread = generate_prompt.SPREAD * 3600
    assert min(offsets) >= 0 and max(offsets) < spread
    # Even: any minute holds at most 1.2 × the average (n over 45 minutes, 67 a minute) — the
    # budget sees a steady stream well under, say, OPENAI_RPM=100, not one burst of 3,000.
    average = n / (spread / 60)
    assert most_in_any_window(offsets, 60.0) <= 1.2 * average
    # The rest of the lead (a quarter) is left for retries and snoozes before the hour.
    assert max(offsets) < 3600 - 14 * 60
