"""
The daily prompt fan-out: time zones and DST with a controlled clock, concurrency, crashes, scale.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import zoneinfo
from typing import Any

import procrastinate
import psycopg
import pytest
from psycopg.types.json import Jsonb

from broseph import idempotency, services, worker
from broseph.jobs import generate_prompt
from broseph.jobs.generate_prompt import fan_out, prompt_cron
from broseph.providers.ai import normalize_prompt
from broseph.settings import Settings
from tests import factories
from tests.conftest import wait_until
from tests.notify_support import use_clock

UTC = datetime.UTC
TICK = datetime.timedelta(minutes=15)  # the default PROMPT_CRON, */15 * * * *

RECORDS = """
SELECT r.group_id, r.params->>'local_date' AS local_date, r.idempotency_key, r.source, j.status
  FROM broseph.job_records r
  JOIN procrastinate_jobs j ON j.id = r.procrastinate_job_id
 WHERE r.job_type = 'GeneratePrompt'
"""


def _utc(*args: int) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=UTC)


def _install(app: procrastinate.App, settings: Settings, **overrides: Any) -> services.Services:
    svc = services.build(settings.model_copy(update=overrides), services.pool_of(app))
    services.install(app, svc)
    return svc


async def _records(conn: psycopg.AsyncConnection[Any]) -> list[dict[str, Any]]:
    cur = await conn.execute(RECORDS)
    return list(await cur.fetchall())


# --- the cron ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cron", ["*/15 * * * *", "0 * * * *", "7,37 0-23 * * *", "0 * * * * 30"])
def test_prompt_cron_accepts_at_least_hourly(cron: str) -> None:
    assert prompt_cron(Settings(_env_file=None, prompt_cron=cron)) == cron  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("cron", "problem"),
    [
        ("0 */2 * * *", "every hour"),
        ("0 8 * * *", "every hour"),
        ("*/15 * * * 1-5", "every hour"),
        ("every hour", "not a valid cron"),
    ],
)
def test_prompt_cron_rejects_sparser_or_invalid(cron: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        prompt_cron(Settings(_env_file=None, prompt_cron=cron))  # type: ignore[call-arg]


# --- which groups are due ---------------------------------------------------------------------


async def test_only_active_due_groups_without_a_prompt_are_enqueued_once(app, conn, settings):
    svc = _install(app, settings, prompt_hour=8)
    tick = _utc(2026, 6, 1, 7, 0)  # Berlin 09:00, London 08:00, New York 03:00, Tokyo 16:00
    berlin = await factories.group(conn, time_zone="Europe/Berlin")
    london = await factories.group(conn, time_zone="Europe/London")
    await factories.group(conn, time_zone="America/New_York")  # 03:00: not yet
    await factories.group(conn, time_zone="Europe/Berlin", active=False)
    tokyo_done = await factories.group(conn, time_zone="Asia/Tokyo")
    await factories.prompt(conn, tokyo_done, datetime.date(2026, 6, 1))  # already has today's

    counts = await asyncio.gather(
        fan_out(svc, int(tick.timestamp())), fan_out(svc, int(tick.timestamp()))
    )
    rerun = await fan_out(svc, int((tick + TICK).timestamp()))

    rows = await _records(conn)
    assert sorted((r["group_id"], r["local_date"]) for r in rows) == sorted(
        [(berlin, "2026-06-01"), (london, "2026-06-01")]
    )
    assert {r["idempotency_key"] for r in rows} == {
        idempotency.prompt(berlin, datetime.date(2026, 6, 1)),
        idempotency.prompt(london, datetime.date(2026, 6, 1)),
    }
    assert {(r["source"], r["status"]) for r in rows} == {("schedule", "todo")}
    assert sum(counts) >= 2 and rerun == 0  # the re-run finds the keys and sends nothing


# --- several days, several time zones, both DST transitions ------------------------------------

ZONES = (
    "America/New_York",  # DST: 2026-03-08 02:00 → 03:00, 2026-11-01 02:00 → 01:00
    "America/Los_Angeles",  # the same dates, three hours later
    "Europe/Berlin",  # DST ends 2026-10-25 03:00 → 02:00: 02:00–02:59 happens twice
    "Asia/Kolkata",  # +05:30, no DST
    "Pacific/Chatham",  # +13:45 / +12:45
    "Asia/Tokyo",  # no DST
)
# Continuous stretches of 15-minute ticks, several local days each, around each transition.
WINDOWS = (
    (_utc(2026, 3, 7), _utc(2026, 3, 9, 18)),  # New York and Los Angeles spring forward (8th)
    (_utc(2026, 10, 24, 12), _utc(2026, 10, 26)),  # Berlin falls back (25th)
    (_utc(2026, 10, 31, 6), _utc(2026, 11, 2, 12)),  # New York and Los Angeles fall back (1st)
)
PROMPT_HOUR = 2  # inside New York's skipped hour and Berlin's repeated one


def _ticks() -> list[datetime.datetime]:
    ticks: list[datetime.datetime] = []
    for start, end in WINDOWS:
        tick = start
        while tick < end:
            ticks.append(tick)
            tick += TICK
    return ticks


def _expected(
    zone: str, ticks: list[datetime.datetime], lead: datetime.timedelta = datetime.timedelta(0)
) -> dict[datetime.date, datetime.datetime]:
    """
    Independently of the SQL (Python's zoneinfo): each local date whose prompt hour was reached
    at a tick or, with a lead, within `lead` after it — with the first such tick.
    """
    first: dict[datetime.date, datetime.datetime] = {}
    for tick in ticks:
        for moment in (tick, tick + lead):
            local = moment.astimezone(zoneinfo.ZoneInfo(zone))
            if local.hour >= PROMPT_HOUR:
                first.setdefault(local.date(), tick)
    return first


class _TickClock:
    def __init__(self) -> None:
        self.now = datetime.datetime.now(UTC)

    def __call__(self) -> datetime.datetime:
        return self.now


@pytest.mark.parametrize("lead_minutes", [0, 60])
async def test_every_group_gets_exactly_one_prompt_per_local_day_across_dst(
    app, conn, settings, start_worker, lead_minutes
):
    svc = _install(app, settings, prompt_hour=PROMPT_HOUR, prompt_lead_minutes=lead_minutes)
    lead = datetime.timedelta(minutes=lead_minutes)
    clock = _TickClock()
    use_clock(app, clock)  # the jobs store (published or waiting) as of the latest tick
    groups = {zone: await factories.group(conn, name=zone, time_zone=zone) for zone in ZONES}
    await start_worker(queues=["prompts"])
    ticks = _ticks()
    enqueued_at: dict[str, datetime.datetime] = {}

    # The worker runs the jobs meanwhile, so later ticks meet stored prompts as well as keys.
    for tick in ticks:
        clock.now = tick
        await generate_prompt.publish(svc, int(tick.timestamp()))
        if await fan_out(svc, int(tick.timestamp())) == 0:
            continue
        for row in await _records(conn):
            enqueued_at.setdefault(row["idempotency_key"], tick)
    await wait_until(lambda: _all_finished(conn), within=30)

    cur = await conn.execute(
        "SELECT group_id, local_date, source, text, published_at FROM public.prompts"
        " ORDER BY group_id, local_date"
    )
    stored = await cur.fetchall()
    per_day = collections.Counter((p["group_id"], p["local_date"]) for p in stored)
    records = collections.Counter((r["group_id"], r["local_date"]) for r in await _records(conn))
    for zone, gid in groups.items():
        expected = _expected(zone, ticks, lead)
        days = sorted(day for g, day in per_day if g == gid)
        assert days == sorted(expected), zone
        assert all(per_day[(gid, day)] == 1 for day in days), zone
        assert all(records[(gid, day.isoformat())] == 1 for day in days), zone
        # Each day was asked for at the first tick its prompt hour was (about to be) reached.
        for day, tick in expected.items():
            assert enqueued_at[idempotency.prompt(gid, day)] == tick, (zone, day)
        # Never published before the group's local prompt hour: at the first tick reaching it
        # (the publish tick) or when stored after it.
        at_hour = _expected(zone, ticks)
        for p in stored:
            if p["group_id"] != gid:
                continue
            if p["published_at"] is None:
                assert p["local_date"] not in at_hour, (zone, p["local_date"])
            else:
                assert p["published_at"] >= at_hour[p["local_date"]], (zone, p["local_date"])
    assert {p["source"] for p in stored} == {"offline"}
    # Through the job path too, no group's prompt repeats one of its earlier (< 30) prompts.
    texts = collections.defaultdict(list)
    for p in stored:
        texts[p["group_id"]].append(normalize_prompt(p["text"]))
    assert all(len(set(keys)) == len(keys) for keys in texts.values())

    new_york, berlin = groups["America/New_York"], groups["Europe/Berlin"]
    ny_first = _expected("America/New_York", ticks)
    # Spring forward: 02:00 never happens on 2026-03-08; the group is due at 03:00 EDT (07:00Z).
    assert ny_first[datetime.date(2026, 3, 8)] == _utc(2026, 3, 8, 7)
    key = idempotency.prompt(new_york, datetime.date(2026, 3, 8))
    assert enqueued_at[key] == _utc(2026, 3, 8, 7) - lead
    # Fall back in New York: 01:00 happens twice, then 02:00 EST (07:00Z).
    assert (
        enqueued_at[idempotency.prompt(new_york, datetime.date(2026, 11, 1))]
        == _utc(2026, 11, 1, 7) - lead
    )
    # Fall back in Berlin: 02:00 CEST (00:00Z) and again 02:00 CET (01:00Z) — one prompt.
    key = idempotency.prompt(berlin, datetime.date(2026, 10, 25))
    assert enqueued_at[key] == _utc(2026, 10, 25) - lead
    assert per_day[(berlin, datetime.date(2026, 10, 25))] == 1


async def _all_finished(conn: psycopg.AsyncConnection[Any]) -> bool:
    cur = await conn.execute(
        "SELECT count(*) AS n FROM broseph.job_records"
        " WHERE job_type = 'GeneratePrompt' AND status NOT IN ('completed', 'failed')"
    )
    row = await cur.fetchone()
    assert row is not None
    return bool(row["n"] == 0)


# --- a crash halfway --------------------------------------------------------------------------


async def test_a_fan_out_that_dies_halfway_is_completed_by_the_next_tick(
    app, conn, db_url, settings
):
    svc = _install(app, settings, prompt_hour=0, fanout_chunk_size=2)
    gids = sorted([await factories.group(conn, name=f"g{i}") for i in range(5)])
    day = datetime.date(2026, 6, 1)
    tick = int(_utc(2026, 6, 1, 12).timestamp())
    # Another transaction holds the key of the third group (in the second chunk), so the fan-out
    # commits its first chunk and then waits — where we kill it.
    async with await psycopg.AsyncConnection.connect(db_url) as other:
        await other.execute(
            "SELECT broseph.enqueue('GeneratePrompt', %s, %s)",
            (
                Jsonb({"group_id": str(gids[2]), "local_date": day.isoformat()}),
                idempotency.prompt(gids[2], day),
            ),
        )
        running = asyncio.create_task(fan_out(svc, tick))

        async def first_chunk_committed() -> bool:
            return len(await _records(conn)) == 2

        async def blocked_on_the_held_key() -> bool:
            cur = await conn.execute(
                "SELECT count(*) AS n FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return bool((await cur.fetchone())["n"])

        await wait_until(first_chunk_committed)
        await wait_until(blocked_on_the_held_key)
        assert not running.done()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await other.rollback()

    assert sorted(r["group_id"] for r in await _records(conn)) == gids[:2]
    assert await fan_out(svc, tick) == 3
    assert await fan_out(svc, tick) == 0
    rows = await _records(conn)
    assert sorted(r["group_id"] for r in rows) == gids
    assert {r["local_date"] for r in rows} == {day.isoformat()}


# --- scale: two concurrent fan-outs over 10,000 groups ----------------------------------------


async def test_two_concurrent_fan_outs_over_10000_groups_enqueue_each_once(app, conn, settings):
    svc = _install(app, settings, prompt_hour=8, fanout_chunk_size=1000)
    await conn.execute(
        "INSERT INTO public.groups (name, time_zone)"
        " SELECT 'group ' || i,"
        "        (ARRAY['America/New_York', 'Europe/Berlin', 'Asia/Kolkata',"
        "               'America/Sao_Paulo'])[1 + i % 4]"
        "   FROM generate_series(1, 10000) AS i"
    )
    # New York 08:00 EDT, Sao Paulo 09:00, Berlin 13:00, Kolkata 17:30: all due.
    tick = int(_utc(2026, 3, 10, 12).timestamp())

    counts = await asyncio.gather(fan_out(svc, tick), fan_out(svc, tick))

    cur = await conn.execute(
        "SELECT (SELECT count(*) FROM broseph.job_records WHERE job_type = 'GeneratePrompt')"
        "         AS records,"
        "       (SELECT count(DISTINCT idempotency_key) FROM broseph.job_records"
        "         WHERE job_type = 'GeneratePrompt') AS keys,"
        "       (SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'GeneratePrompt')"
        "         AS jobs,"
        "       (SELECT count(*) FROM public.groups g WHERE NOT EXISTS ("
        "            SELECT 1 FROM broseph.job_records r"
        "             WHERE r.idempotency_key = 'prompt:' || g.id || ':'"
        "                   || to_char((to_timestamp(%s) AT TIME ZONE g.time_zone)::date,"
        "                              'YYYY-MM-DD'))) AS missed",
        (tick,),
    )
    assert await cur.fetchone() == {"records": 10000, "keys": 10000, "jobs": 10000, "missed": 0}
    assert 10000 <= sum(counts) <= 20000
    assert await fan_out(svc, tick) == 0


def test_fan_out_is_a_periodic_task_on_the_prompt_cron() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url="postgresql://127.0.0.1:1/unused",  # building the app connects to nothing
        prompt_cron="*/5 * * * *",
    )
    app = worker.create_app(settings)

    [entry] = [
        p for p in app.periodic_registry.periodic_tasks.values() if p.task.name == "prompt_fanout"
    ]
    assert entry.cron == "*/5 * * * *"
    assert entry.task.queue == "periodic"
    assert generate_prompt.PERIODIC[0].run is fan_out
