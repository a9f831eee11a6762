"""
Shared rate budgets (OPENAI_RPM, OPENAI_TPM, FCM_MESSAGES_PER_MINUTE) and the snooze: the SQL
bucket (migrations/0034) on real Postgres, directly and through PgBouncer in transaction mode;
GeneratePrompt through real workers and the real `openai` SDK against the stand-in.
"""
# ruff: noqa: F811  (pytest fixtures imported from tests.notify_support are test arguments)

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import random
import time
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import procrastinate
import psycopg
import pydantic
import pytest
import structlog
from psycopg.conninfo import conninfo_to_dict

from broseph import budgets, problems, services, worker
from broseph.settings import Settings
from tests import factories, notify_support, pg, pgcluster
from tests.notify_support import fcm, fcm_sender  # noqa: F401  (fixtures)
from tests.prompt_support import GOOD, ai_settings, enqueue_prompt, prompts, record, stored
from tests.standins.openai_server import OpenAIStandIn, Reply

T = TypeVar("T")
T0 = datetime.datetime(2026, 3, 6, 8, 0, tzinfo=datetime.UTC)


async def take(
    conn: psycopg.AsyncConnection[Any],
    at: datetime.datetime,
    per_minute: float,
    amount: float = 1,
    name: str = "test",
) -> float:
    cur = await conn.execute(
        "SELECT broseph.take_budget(%s, %s, %s, %s) AS wait",
        ([name], [float(amount)], at, [float(per_minute)]),
    )
    row = await cur.fetchone()
    assert row is not None
    return float(row["wait"])


async def until(
    fetch: Callable[[], Awaitable[T]], check: Callable[[T], bool], within: float = 20.0
) -> T:
    """
    Fetch until `check` holds; the value it held for (the test fails after `within` seconds).
    """
    deadline = asyncio.get_running_loop().time() + within
    while not check(value := await fetch()):
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"not reached within {within} s; last seen: {value!r}")
        await asyncio.sleep(0.05)
    return value


def most_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


# --- the bucket ---------------------------------------------------------------------------------


async def test_no_60_second_window_gets_more_than_the_limit(conn):
    # Takers hammering one bucket at random moments over five minutes of (given) time.
    limit = 120
    rng = random.Random(7)
    taken: list[float] = []
    at = 0.0
    while at < 300:
        at += rng.expovariate(8)  # about 8 tries a second, four times the 2 a second allowed
        if await take(conn, T0 + datetime.timedelta(seconds=at), limit) == 0:
            taken.append(at)
    assert most_in_any_window(taken, 60.0) <= limit
    # ...and the budget is used, not starved: at least 90 % of the limit per minute.
    assert len(taken) >= 0.88 * limit * 5


async def test_a_refused_take_names_its_wait_and_books_its_place(conn):
    # 60 a minute: 1 at once, then one every 63/59 s; each refusal waits behind the previous one.
    assert await take(conn, T0, 60) == 0
    waits = [await take(conn, T0, 60) for _ in range(3)]
    step = 63 / 59
    assert waits == pytest.approx([step, 2 * step, 3 * step])
    # The first refused one, coming back when told, gets its share.
    assert await take(conn, T0 + datetime.timedelta(seconds=step), 60) == 0


async def test_takes_are_all_or_nothing(conn):
    names, limits = ["rpm", "tpm"], [60.0, 6000.0]
    cur = await conn.execute(
        "SELECT broseph.take_budget(%s, %s, %s, %s) AS wait", (names, [1.0, 1000.0], T0, limits)
    )
    # tpm's 100 token capacity is short of 1000 but a full bucket lets one big take through.
    assert (await cur.fetchone())["wait"] == 0
    cur = await conn.execute(
        "SELECT broseph.take_budget(%s, %s, %s, %s) AS wait", (names, [1.0, 1000.0], T0, limits)
    )
    assert (await cur.fetchone())["wait"] > 0
    cur = await conn.execute("SELECT name, tokens FROM broseph.rate_budgets ORDER BY name")
    # The refused take charged neither bucket.
    assert {r["name"]: r["tokens"] for r in await cur.fetchall()} == {"rpm": 0.0, "tpm": -900.0}


async def test_a_tightened_bucket_gives_nothing_until_the_servers_time(conn):
    assert await take(conn, T0, 6000) == 0
    await conn.execute(
        "SELECT broseph.tighten_budget('test', %s)", (T0 + datetime.timedelta(seconds=30),)
    )
    wait = await take(conn, T0 + datetime.timedelta(seconds=10), 6000)
    assert 20 <= wait < 21
    # Nothing is taken during the shut time, and refills start from empty at its end.
    assert await take(conn, T0 + datetime.timedelta(seconds=29), 6000) > 0
    assert await take(conn, T0 + datetime.timedelta(seconds=31), 6000) == 0


@pytest.mark.parametrize(
    ("amount", "per_minute"),
    [(0, 60), (1, 0), (-1, 60), (1, -5), (float("inf"), 60), (1, float("nan"))],
)
async def test_the_function_refuses_what_is_not_a_positive_finite_number(conn, amount, per_minute):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="positive, finite"):
        await take(conn, T0, per_minute, amount)


async def test_take_budget_works_through_pgbouncer_in_transaction_mode(db_url, conn):
    # The main test server behind PgBouncer (transaction pooling, as Supavisor's :6543): two
    # clients whose statements land on whichever server connection is free, no prepared
    # statements (PREPARED_STATEMENTS=false), through the same query the workers run.
    server = types.SimpleNamespace(port=int(conninfo_to_dict(db_url).get("port") or 5432))
    with pgcluster.pgbouncer(server) as bouncer:  # type: ignore[arg-type]
        url = pg.with_dbname(bouncer, str(conninfo_to_dict(db_url)["dbname"]))
        async with (
            await psycopg.AsyncConnection.connect(
                url, autocommit=True, prepare_threshold=None
            ) as a,
            await psycopg.AsyncConnection.connect(
                url, autocommit=True, prepare_threshold=None
            ) as b,
        ):
            refusals = []
            started = time.monotonic()
            for _ in range(20):
                for client in (a, b):
                    refused = await budgets.take(
                        client, [budgets.Take("pooled", 1, 600)]
                    )  # capacity 10: 10 of these 40 immediate takes pass
                    refusals.append(refused)
            elapsed = time.monotonic() - started
    passed = [r for r in refusals if r is None]
    # The capacity, plus what refilled (590/63 a second) while the loop ran.
    assert 10 <= len(passed) <= 10 + 590 / 63 * elapsed + 1
    snooze = next(r for r in refusals if r is not None)
    assert snooze.seconds > 0 and "rate budget (pooled) used up" in snooze.reason
    cur = await conn.execute("SELECT tokens FROM broseph.rate_budgets WHERE name = 'pooled'")
    assert (await cur.fetchone())["tokens"] < 1


# --- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["OPENAI_RPM", "OPENAI_TPM", "FCM_MESSAGES_PER_MINUTE"])
@pytest.mark.parametrize("value", ["0", "-3", "1e12", "inf", "nan", "2.5", "lots"])
def test_hostile_budget_settings_are_refused_in_one_line(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(pydantic.ValidationError) as info:
        Settings(_env_file=None)  # type: ignore[call-arg]
    line = str(problems.explain(info.value))
    assert "\n" not in line and line.startswith(f"invalid setting {name}:"), line


def test_unset_budgets_mean_no_limit(monkeypatch):
    for name in ("OPENAI_RPM", "OPENAI_TPM", "FCM_MESSAGES_PER_MINUTE"):
        monkeypatch.setenv(name, "")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.openai_rpm, settings.openai_tpm, settings.fcm_messages_per_minute) == (
        None,
        None,
        None,
    )


# --- GeneratePrompt: snoozed, not failed --------------------------------------------------------


@pytest.fixture
def standin() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn() as server:
        yield server


async def groups(conn: psycopg.AsyncConnection[Any], count: int) -> list[Any]:
    ids = []
    for i in range(count):
        gid = await factories.group(conn, name=f"Crew {i}")
        await factories.member(conn, gid, await factories.user(conn, name=f"Member {i}"))
        ids.append(gid)
    return ids


@contextlib.asynccontextmanager
async def running_workers(
    settings: Settings, count: int, **options: Any
) -> AsyncIterator[list[procrastinate.App]]:
    """
    `count` workers, each its own app, pool and services (as separate processes would have).
    """
    apps: list[procrastinate.App] = []
    tasks: list[asyncio.Task[None]] = []
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(count):
            app = worker.create_app(settings, periodic=False)
            await stack.enter_async_context(app.open_async())
            built = services.build(settings, services.pool_of(app), uses=("ai",))
            stack.push_async_callback(built.aclose)
            services.install(app, built)
            opts = {"install_signal_handlers": False, "wait": True, "queues": ["prompts"]}
            tasks.append(asyncio.create_task(app.run_worker_async(**{**opts, **options})))
            apps.append(app)
        try:
            yield apps
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def statuses(conn: psycopg.AsyncConnection[Any], ids: list[Any]) -> dict[str, int]:
    cur = await conn.execute(
        "SELECT status, count(*) AS n FROM broseph.job_records WHERE id = ANY(%s) GROUP BY 1",
        (ids,),
    )
    return {row["status"]: row["n"] for row in await cur.fetchall()}


async def test_two_workers_share_one_budget(conn, settings, standin):
    # OPENAI_RPM=60: 1 at once, then one every 63/59 s, for both workers together.
    gids = await groups(conn, 8)
    rids = [await enqueue_prompt(conn, gid) for gid in gids]
    shared = ai_settings(settings, standin, openai_rpm=60, poll_interval=0.1)
    with structlog.testing.capture_logs() as logs:
        async with running_workers(shared, 2, fetch_job_polling_interval=0.1):
            await until(lambda: statuses(conn, rids), lambda s: s.get("completed") == 8, within=30)
    times = [r.received_at for r in standin.requests]
    assert len(times) == 8
    # In any window of w seconds at the stand-in: at most the capacity (1) plus the refill
    # (59/63 a second) over w and the 3 s the bucket leaves for a take's way to the provider.
    for window in (1.0, 3.0, 6.0):
        assert most_in_any_window(times, window) <= 1 + 59 / 63 * (window + 3) + 1e-9
    assert max(times) - min(times) >= 4  # seven waited their turn, ~7.5 s by the database's clock
    cur = await conn.execute(
        "SELECT array_agg(attempts) AS a FROM broseph.job_records WHERE id = ANY(%s)", (rids,)
    )
    assert (await cur.fetchone())["a"] == [1] * 8  # no attempt was spent on waiting
    assert [e for e in logs if e["event"] in ("job_failed", "prompt_fallback")] == []
    assert any(e["event"] == "job_snoozed" for e in logs)
    for gid in gids:
        assert (await stored(conn, gid))["source"] == "openai"


async def test_a_job_without_budget_is_snoozed_with_its_attempts_and_a_reason(
    conn, settings, standin
):
    first, second = await groups(conn, 2)
    # One a minute: the first takes it, the second has to wait about a minute.
    one = ai_settings(settings, standin, openai_rpm=1)
    with structlog.testing.capture_logs() as logs:
        async with running_workers(one, 1, fetch_job_polling_interval=0.1):
            done = await enqueue_prompt(conn, first)
            await until(lambda: record(conn, done), lambda r: r["status"] == "completed")
            waiting = await enqueue_prompt(conn, second)
            rec = await until(
                lambda: record(conn, waiting), lambda r: r["next_attempt_at"] is not None
            )
    assert rec["status"] == "pending" and rec["attempts"] == 0 and rec["last_error"] is None
    assert rec["progress_message"].startswith("snoozed: rate budget (OPENAI_RPM) used up; next")
    in_seconds = (rec["next_attempt_at"] - datetime.datetime.now(datetime.UTC)).total_seconds()
    assert 50 < in_seconds < 70
    cur = await conn.execute(
        "SELECT status, attempts, scheduled_at FROM procrastinate_jobs WHERE id = %s",
        (rec["procrastinate_job_id"],),
    )
    job = await cur.fetchone()
    assert (job["status"], job["attempts"]) == ("todo", 0)
    assert job["scheduled_at"] == rec["next_attempt_at"]
    assert len(standin.requests) == 1  # the snoozed job asked nothing of OpenAI
    assert [e for e in logs if e["event"] in ("job_failed", "prompt_fallback")] == []
    [snoozed] = [e for e in logs if e["event"] == "job_snoozed"]
    assert snoozed["log_level"] == "info"


async def test_a_429_shuts_the_budget_and_snoozes_without_the_offline_bank(conn, settings, standin):
    [gid] = await groups(conn, 1)
    standin.script(Reply.status(429, headers={"retry-after": "30"}), Reply.json_output(GOOD))
    limited = ai_settings(settings, standin, openai_rpm=6000, openai_tpm=10_000_000)
    with structlog.testing.capture_logs() as logs:
        async with running_workers(limited, 1, fetch_job_polling_interval=0.1):
            rid = await enqueue_prompt(conn, gid)
            rec = await until(
                lambda: record(conn, rid),
                lambda r: (r["progress_message"] or "").startswith("snoozed"),
            )
            assert rec["status"] == "pending"
            assert rec["attempts"] == 0
            assert "OpenAI rate limit (rate limited (429" in rec["progress_message"]
            assert "30.0 s" in rec["progress_message"]
            cur = await conn.execute(
                "SELECT name, updated_at - now() AS shut FROM broseph.rate_budgets ORDER BY 1"
            )
            shut = {r["name"]: r["shut"].total_seconds() for r in await cur.fetchall()}
            # Both limits, since the reply did not say which one ran out.
            assert set(shut) == {budgets.OPENAI_REQUESTS, budgets.OPENAI_TOKENS}
            assert all(25 < s <= 30 for s in shut.values())
            assert await prompts(conn, gid) == []  # no offline prompt in its place
            # Time passes (the server's 30 s): the job runs again and gets the model's prompt.
            await conn.execute("DELETE FROM broseph.rate_budgets")
            await conn.execute(
                "UPDATE procrastinate_jobs SET scheduled_at = now() WHERE id = %s",
                (rec["procrastinate_job_id"],),
            )
            done = await until(lambda: record(conn, rid), lambda r: r["status"] == "completed")
    assert done["attempts"] == 1
    assert (await stored(conn, gid))["source"] == "openai"
    assert len(standin.requests) == 2
    assert [e for e in logs if e["event"] in ("job_failed", "prompt_fallback")] == []


# --- SendNotification: FCM_MESSAGES_PER_MINUTE ----------------------------------------------------


async def test_a_push_without_budget_is_snoozed_and_sent_when_its_turn_comes(
    conn, app, settings, fcm, fcm_sender, start_worker
):
    await notify_support.without_notify_triggers(conn)
    w = await notify_support.world(conn)  # Sam has three devices; Ana, none yet
    ana_device = await notify_support.add_device(conn, w.friend_id)
    # 20 a minute: the bucket holds 1/3; Sam's three take it (a full bucket lets a larger take
    # through, into debt), so Ana's one waits about 9.5 s.
    limited = settings.model_copy(update={"fcm_messages_per_minute": 20})
    services.install(
        app, dataclasses.replace(services.for_app(app), push=fcm_sender, settings=limited)
    )
    today = datetime.datetime.now(datetime.UTC).date()
    prompt_id = await factories.prompt(conn, w.group_id, today, text="Best snack?")
    ids = {"group_id": w.group_id, "prompt_id": prompt_id}
    with structlog.testing.capture_logs() as logs:
        sam = await notify_support.send(
            conn, notify_support.notification(w.user_id, "new_prompt", **ids)
        )
        await start_worker(fetch_job_polling_interval=0.1)
        await notify_support.wait_status(conn, sam, "completed")
        ana = await notify_support.send(
            conn, notify_support.notification(w.friend_id, "new_prompt", **ids)
        )
        rec = await until(
            lambda: notify_support.record(conn, ana),
            lambda r: (r["progress_message"] or "").startswith("snoozed"),
        )
        assert rec["status"] == "pending" and rec["attempts"] == 0 and rec["queue_status"] == "todo"
        assert "rate budget (FCM_MESSAGES_PER_MINUTE) used up" in rec["progress_message"]
        in_seconds = (rec["scheduled_at"] - datetime.datetime.now(datetime.UTC)).total_seconds()
        assert 5 < in_seconds < 11
        assert fcm.requests_for(ana_device.identifier) == []  # nothing sent, nothing marked
        row = await notify_support.notification_row(conn, ana)
        assert row is not None and row["status"] == "pending"
        assert await notify_support.deliveries(conn, row["id"]) == {}
        # Its turn (the ~9.5 s, skipped here): delivered once, on its first attempt.
        await conn.execute("DELETE FROM broseph.rate_budgets")
        await conn.execute(
            "UPDATE procrastinate_jobs SET scheduled_at = now() WHERE id = %s",
            (rec["procrastinate_job_id"],),
        )
        done = await notify_support.wait_status(conn, ana, "completed")
    assert done["attempts"] == 1 and done["result"]["delivered"] == 1
    assert len(fcm.requests_for(ana_device.identifier)) == 1
    assert [e for e in logs if e["event"] == "job_failed"] == []
