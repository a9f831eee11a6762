"""
Error reporting (SENTRY_DSN, broseph/error_reports.py): the real sentry_sdk, a real worker on
real Postgres, and a stand-in Sentry endpoint (tests/standins/sentry_server.py) that records what
the SDK sends.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Annotated, Any, ClassVar

import pytest
import sentry_sdk
from pydantic import Field

from broseph import error_reports, jobs, lifecycle
from broseph.jobs.base import JobPayload, JobRun, JobType, Periodic
from broseph.problems import Problem
from broseph.settings import Settings
from tests import factories, settings_support, testing_jobs
from tests.conftest import wait_until
from tests.secrets_support import command, env, error_lines, run
from tests.standins.sentry_server import SentryStandIn

# What the leaking job below puts in its error: none of it may reach Sentry.
DB_PASSWORD = "hunter2-db-password"
DATABASE_URL = f"postgresql://broseph:{DB_PASSWORD}@db.internal:5432/broseph"
OPENAI_KEY = "sk-proj-A1b2C3d4E5f6G7h8I9j0"
FCM_TOKEN = "ya29.a0AfB-secret-fcm-access-token"
NOTE = "dear diary: meet me at the lighthouse at nine"


class Diary(JobPayload):
    job_type: ClassVar[str] = "TestLeaks"
    group_id: uuid.UUID
    note: str


async def _leaks(run: JobRun, payload: Diary) -> None:
    database_url, openai_key = DATABASE_URL, OPENAI_KEY  # locals a frame would show
    try:
        raise ConnectionError(f"FCM refused: Authorization: Bearer {FCM_TOKEN}")
    except ConnectionError as exc:
        raise RuntimeError(
            f"could not reach {database_url} with {openai_key} for note {payload.note!r}"
        ) from exc


class Bounded(JobPayload):
    job_type: ClassVar[str] = "TestBounded"
    group_id: uuid.UUID
    n: Annotated[int, Field(ge=1)]  # the database's field spec knows "integer" only


async def _never_runs(run: JobRun, payload: Bounded) -> None:
    raise AssertionError("params the model refuses reached the handler")


async def _fails_once(run: JobRun, payload: testing_jobs.Probe) -> None:
    if run.attempt == 1:
        raise RuntimeError("flaky on attempt 1")


LEAKS = JobType(name="TestLeaks", payload=Diary, handle=_leaks, queue="test", max_attempts=1)
BOUNDED = JobType(name="TestBounded", payload=Bounded, handle=_never_runs, queue="test")
FLAKY = JobType(
    name="TestFlaky",
    payload=testing_jobs.Probe,
    handle=_fails_once,
    queue="test",
    max_attempts=3,
    backoff_base_seconds=0.1,
)


async def _tick_fails(services: Any, timestamp: int) -> None:
    raise RuntimeError("tick failed")


@pytest.fixture
def sentry():
    with SentryStandIn() as server:
        yield server
    assert not server.errors, server.errors


@pytest.fixture
def settings(db_url: str, sentry: SentryStandIn) -> Settings:
    # The shared fixture's settings, with reporting on and the prompt and reminder ticks every
    # second (PROMPT_CRON allows a seconds field as long as every hour is covered).
    return settings_support.worker_settings(
        db_url,
        sentry_dsn=sentry.dsn,
        sentry_environment="test",
        prompt_cron="* * * * * *",
        reminder_cron="* * * * * *",
    )


async def _enqueue(conn, job_type: str, **params: Any) -> uuid.UUID:
    gid = await factories.group(conn)
    return await factories.enqueued(conn, job_type, {"group_id": str(gid), **params})


async def _status(conn, rid: uuid.UUID) -> str:
    cur = await conn.execute("SELECT status FROM broseph.job_records WHERE id = %s", (rid,))
    return (await cur.fetchone())["status"]


async def _settled(conn, rid: uuid.UUID, status: str) -> None:
    async def done() -> bool:
        return await _status(conn, rid) == status

    await wait_until(done, within=30, interval=0.05)


async def test_a_final_failure_is_reported_once_after_the_last_attempt(
    app, conn, start_worker, sentry
):
    await testing_jobs.install(app, conn, testing_jobs.FAILING)
    rid = await _enqueue(conn, "TestAlwaysFails")
    running = await start_worker(fetch_job_polling_interval=0.1)
    await _settled(conn, rid, "failed")
    await running.stop()  # flushes what the SDK still holds

    assert len(sentry.events) == 1, sentry.events
    event = sentry.events[0]
    assert event["tags"] == {
        "job_type": "TestAlwaysFails",
        "record_id": str(rid),
        "job_id": event["tags"]["job_id"],
        "attempt": "3",  # the last of FAILING's 3: attempts 1 and 2 were retried, not reported
    }
    assert event["environment"] == "test"
    assert event["release"].startswith("broseph@")
    (exception,) = event["exception"]["values"]
    assert (exception["type"], exception["value"]) == ("RuntimeError", "boom on attempt 3")
    # From the handler's frame, where it was raised.
    assert exception["stacktrace"]["frames"][-1]["function"] == "_always_fails"


async def test_a_job_that_succeeds_on_retry_is_not_reported(app, conn, start_worker, sentry):
    await testing_jobs.install(app, conn, FLAKY)
    rid = await _enqueue(conn, "TestFlaky")
    running = await start_worker(fetch_job_polling_interval=0.1)
    await _settled(conn, rid, "completed")
    await running.stop()

    cur = await conn.execute("SELECT attempts FROM broseph.job_records WHERE id = %s", (rid,))
    assert (await cur.fetchone())["attempts"] == 2  # it did fail once
    assert sentry.events == []


async def test_an_invalid_payload_is_a_final_failure_reported_on_its_one_attempt(
    app, conn, start_worker, sentry
):
    # Enqueued through SQL, which checks types only: the model refuses n=0 when the job runs, a
    # permanent error, never retried, so its first attempt is its last (BOUNDED allows 3).
    await testing_jobs.install(app, conn, BOUNDED)
    rid = await _enqueue(conn, "TestBounded", n=0)
    running = await start_worker(fetch_job_polling_interval=0.1)
    await _settled(conn, rid, "failed")
    await running.stop()

    (event,) = sentry.events
    assert (event["tags"]["record_id"], event["tags"]["attempt"]) == (str(rid), "1")
    (exception,) = event["exception"]["values"]
    assert exception["type"] == "PermanentJobError"
    assert exception["value"] == "invalid params: n: Input should be greater than or equal to 1"


async def test_secrets_and_payload_text_never_reach_sentry(app, conn, start_worker, sentry):
    await testing_jobs.install(app, conn, LEAKS)
    rid = await _enqueue(conn, "TestLeaks", note=NOTE)
    running = await start_worker(fetch_job_polling_interval=0.1)
    await _settled(conn, rid, "failed")
    await running.stop()

    (event,) = sentry.events
    assert event["tags"]["record_id"] == str(rid)
    cause, error = event["exception"]["values"]  # the chain, innermost first
    assert error["value"] == (
        "could not reach postgresql://broseph:[redacted]@db.internal:5432/broseph"
        " with [redacted] for note '[payload]'"
    )
    assert cause["value"] == "FCM refused: Authorization: Bearer [redacted]"
    # No frame carries its local variables.
    frames = [f for e in (cause, error) for f in e["stacktrace"]["frames"]]
    assert frames and not any("vars" in f for f in frames)
    # Nowhere in anything the SDK sent: not in a message, a frame, a tag or a context.
    sent = "\n".join(sentry.bodies)
    for leaked in (DB_PASSWORD, OPENAI_KEY, "A1b2C3d4E5f6G7h8I9j0", FCM_TOKEN, NOTE, "lighthouse"):
        assert leaked not in sent, leaked


async def test_periodic_ticks_check_in_in_progress_then_ok_or_error(
    app, conn, settings, start_worker, sentry
):
    # The catalogue's fan-out as the worker registers it, and a tick that raises.
    fan_out = next(p for p in jobs.PERIODIC if p.name == "prompt_fanout")
    lifecycle.register_periodic(app, settings, fan_out)
    failing = Periodic(name="test_tick_fails", cron=lambda s: "* * * * * *", run=_tick_fails)
    lifecycle.register_periodic(app, settings, failing)
    # An unmonitored tick (as the operations ticks are) runs and sends no check-in.
    quiet_ran: list[int] = []

    async def quiet_tick(svc: Any, timestamp: int) -> None:
        quiet_ran.append(timestamp)

    quiet = Periodic(
        name="test_tick_quiet", cron=lambda s: "* * * * * *", run=quiet_tick, monitored=False
    )
    lifecycle.register_periodic(app, settings, quiet)

    async def both_ticked() -> bool:
        done = {(c["monitor_slug"], c["status"]) for c in sentry.check_ins}
        return {("prompt_fanout", "ok"), ("test_tick_fails", "error")} <= done and bool(quiet_ran)

    running = await start_worker(fetch_job_polling_interval=0.1)
    await wait_until(both_ticked, within=30, interval=0.1)
    await running.stop()

    for slug, final in (("prompt_fanout", "ok"), ("test_tick_fails", "error")):
        mine = [c for c in sentry.check_ins if c["monitor_slug"] == slug]
        ticks: dict[str, list[dict[str, Any]]] = {}
        for check_in in mine:
            ticks.setdefault(check_in["check_in_id"], []).append(check_in)
        # Every tick opens with in_progress and closes once (the worker's stop may cut one
        # short); ticks come every second, so more than one may have run.
        assert all(
            [c["status"] for c in tick][:1] == ["in_progress"] and len(tick) <= 2
            for tick in ticks.values()
        ), ticks
        tick = next(t for t in ticks.values() if [c["status"] for c in t] == ["in_progress", final])
        assert tick[1]["duration"] >= 0
        for check_in in mine:
            # The schedule procrastinate ticks on (PROMPT_CRON), minutes-granular, in UTC.
            assert check_in["monitor_config"] == {
                "schedule": {"type": "crontab", "value": "* * * * *"},
                "timezone": "UTC",
                "checkin_margin": error_reports.CHECKIN_MARGIN_MINUTES,
                "max_runtime": error_reports.MAX_RUNTIME_MINUTES,
            }
            assert check_in["environment"] == "test"
    assert not any(c["monitor_slug"] == "test_tick_quiet" for c in sentry.check_ins)
    # A tick's failure is its `error` check-in, not an error event besides.
    assert sentry.events == []


def test_the_monitor_schedule_is_the_tick_cron() -> None:
    settings = Settings(_env_file=None, prompt_cron="7,37 * * * *")  # type: ignore[call-arg]
    fan_out = next(p for p in jobs.PERIODIC if p.name == "prompt_fanout")
    config = error_reports.monitor_config(fan_out.cron(settings))
    assert config["schedule"] == {"type": "crontab", "value": "7,37 * * * *"}
    # procrastinate's seconds field (the sixth) has no Sentry equivalent: the minutes stay.
    assert error_reports.monitor_config("*/15 * * * * 30")["schedule"]["value"] == "*/15 * * * *"


class TestOff:
    @pytest.fixture
    def settings(self, db_url: str) -> Settings:
        return settings_support.worker_settings(db_url)

    async def test_without_sentry_dsn_nothing_is_initialised_or_sent(
        self, app, conn, start_worker, sentry
    ):
        assert app.settings.sentry_dsn is None
        await testing_jobs.install(app, conn, testing_jobs.FAILING)
        rid = await _enqueue(conn, "TestAlwaysFails")
        running = await start_worker(fetch_job_polling_interval=0.1)
        await _settled(conn, rid, "failed")
        assert not sentry_sdk.get_client().is_active()
        await running.stop()
        assert sentry.bodies == []


def test_without_sentry_dsn_the_sdk_is_not_even_imported() -> None:
    code = (
        "import sys\n"
        "from broseph import error_reports, lifecycle, worker\n"
        "from broseph.settings import Settings\n"
        "assert error_reports.start(Settings(_env_file=None)) is False\n"
        "print('sentry_sdk' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin"},  # no SENTRY_DSN (nor anything else) inherited
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_a_dsn_without_the_sdk_installed_is_a_one_line_problem(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sentry_sdk", None)  # what `import` sees without the extra
    settings = Settings(_env_file=None, sentry_dsn="https://k@sentry.example/1")  # type: ignore[call-arg]
    with pytest.raises(Problem) as caught:
        error_reports.start(settings)
    assert str(caught.value) == (
        "SENTRY_DSN is set but sentry-sdk is not installed"
        " — pip install 'broseph[sentry]', or unset SENTRY_DSN"
    )


def test_a_malformed_dsn_is_a_problem_that_does_not_show_it() -> None:
    settings = Settings(_env_file=None, sentry_dsn="https://sentry.example/1?k=keep-me-secret")  # type: ignore[call-arg]
    with pytest.raises(Problem) as caught:
        error_reports.start(settings)
    assert str(caught.value).startswith("SENTRY_DSN is not a Sentry DSN — ")
    assert "keep-me-secret" not in str(caught.value)
    assert not sentry_sdk.get_client().is_active()


@pytest.mark.parametrize(
    "words",
    [
        command("broseph", "worker"),
        command("procrastinate", "--app", "broseph.worker.app", "worker"),
    ],
    ids=["broseph worker", "procrastinate worker"],
)
def test_a_worker_with_a_malformed_dsn_refuses_to_start_in_one_line(
    db_url: str, words: list[str]
) -> None:
    environment = env(DATABASE_URL=db_url, SENTRY_DSN="https://sentry.example/1?k=keep-me-secret")
    result = run(words, environment, timeout=60)
    output = result.stdout + result.stderr
    assert "keep-me-secret" not in output and "Traceback" not in output
    (line,) = error_lines(result.stderr)
    assert "SENTRY_DSN is not a Sentry DSN — copy it from" in line
    # broseph's CLI: `error: …` and exit 2 (fix the configuration); procrastinate's exits 1.
    assert result.returncode == (2 if words[0].endswith("broseph") else 1), output
