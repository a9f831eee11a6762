"""
Secrets never reach logs in a running worker: no secret reaches its output, in any log format,
whichever way it is started — `broseph worker` or `procrastinate --app broseph.worker.app
worker`, as an operator types them — through job failures with tracebacks and failed start-ups.

Secrets in play: the database password (a role with a password on a cluster that checks it), the
OpenAI key, a Redis password, the Firebase service account's private key and the access token
it is exchanged for, the devices' FCM identifiers. Each test greps the process's whole output.

Also (the scrubber is linear): a worker that logs a megabyte value still stops on SIGTERM.
"""

# ruff: noqa: F811  (fixtures imported from tests.notify_support are test arguments)
from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from tests import records
from tests.conftest import wait_until
from tests.notify_support import (  # noqa: F401  (fixtures)
    ServiceAccount,
    fcm,
    notification,
    send,
    service_account,
    without_notify_triggers,
    world,
)
from tests.secrets_support import (
    PasswordCluster,
    Process,
    command,
    env,
    error_lines,
    password_cluster,
    run,
)
from tests.standins.fcm_server import FcmStandIn

OPENAI_KEY = f"sk-test-{uuid.uuid4().hex}"
REDIS_PASSWORD = f"redis-{uuid.uuid4().hex}"
WORKERS = {
    "broseph": command("broseph", "worker"),
    "procrastinate": command("procrastinate", "--app", "broseph.worker.app", "worker"),
}
FORMATS = ("console", "json")


@pytest.fixture(scope="module")
def cluster() -> Iterator[PasswordCluster]:
    with password_cluster() as server:
        yield server


@pytest.fixture
async def database(cluster: PasswordCluster) -> AsyncIterator[str]:
    name = await cluster.migrated_database()
    yield name
    from tests import pg

    pg.drop_database(cluster.server.admin_url, name)


async def admin(cluster: PasswordCluster, dbname: str) -> psycopg.AsyncConnection[dict]:
    return await psycopg.AsyncConnection.connect(
        cluster.server.url(dbname), autocommit=True, row_factory=dict_row
    )


def secrets_of(cluster: PasswordCluster, account: ServiceAccount) -> dict[str, str]:
    """
    Every secret the worker's environment holds, by name.
    """
    key_lines = [line for line in account.private_key.splitlines() if "-----" not in line]
    return {
        "database password": cluster.password,
        "OpenAI key": OPENAI_KEY,
        "Redis password": REDIS_PASSWORD,
        "private key (a line of it)": key_lines[3],
        "FCM access token": account.access_token,
    }


def assert_clean(output: str, secrets: dict[str, str]) -> None:
    assert output.strip(), "nothing was printed at all"
    for name, value in secrets.items():
        assert value not in output, f"the {name} reached the output"
    # Tracebacks are plain text without local variables (rich's locals panel, or a repr).
    assert "─ locals ─" not in output and "Settings(" not in output


@pytest.fixture(params=FORMATS)
def log_format(request: pytest.FixtureRequest) -> str:
    """
    A test that takes it runs once per LOG_FORMAT.
    """
    return str(request.param)


@pytest.fixture(params=sorted(WORKERS))
def started_by(request: pytest.FixtureRequest) -> str:
    """
    A test that takes it runs once per way of starting a worker (a key of WORKERS).
    """
    return str(request.param)


def worker_env(cluster: PasswordCluster, dbname: str, log_format: str, **extra: str) -> dict:
    values = {
        "DATABASE_URL": cluster.as_uri(dbname),
        "LOG_FORMAT": log_format,
        "LOG_LEVEL": "INFO",
        "OPENAI_API_KEY": OPENAI_KEY,
        "REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0",
        "POLL_INTERVAL": "0.5",
    }
    return env(**(values | extra))


async def test_a_push_job_failing_with_a_traceback_leaks_no_secret(
    cluster: PasswordCluster,
    database: str,
    fcm: FcmStandIn,
    service_account: ServiceAccount,
    started_by: str,
    log_format: str,
) -> None:
    async with await admin(cluster, database) as conn:
        await without_notify_triggers(conn)
        w = await world(conn)
        for device in w.devices:
            fcm.fail(device.identifier, status=503, error_code="UNAVAILABLE")  # every time
        record_id = await send(
            conn,
            notification(w.user_id, "friend_joined", group_id=w.group_id, friend_id=w.friend_id),
        )
        environment = worker_env(
            cluster,
            database,
            log_format,
            FIREBASE_CREDENTIALS_FILE=str(service_account.path),
            FCM_BASE_URL=fcm.base_url,
            WORKER_QUEUES="notifications",
        )
        worker = Process(WORKERS[started_by], environment)
        try:
            await worker.wait_for("job_failed")

            async def retrying() -> bool:
                cur = await conn.execute(
                    "SELECT status, last_error FROM broseph.job_records WHERE id = %s",
                    (record_id,),
                )
                row = await cur.fetchone()
                return bool(row and row["status"] == "retrying" and row["last_error"])

            await wait_until(retrying, within=30)
            assert worker.terminate() == 0
            output = worker.output()
        finally:
            worker.close()
    assert "RetryableJobError" in output and "Traceback" in output  # the failure, in full
    secrets = secrets_of(cluster, service_account)
    secrets |= {f"device identifier {d.kind}": d.identifier for d in w.devices}
    assert_clean(output, secrets)


async def test_an_exception_holding_the_database_url_is_scrubbed(
    cluster: PasswordCluster, database: str, log_format: str
) -> None:
    """
    A job whose exception message (and whose frame's locals) hold the whole DATABASE_URL: the
    log line, the traceback and the record's last_error show it without the password.
    """
    from tests import secrets_app  # the test app (imported here: only these tests need it)

    async with await admin(cluster, database) as conn:
        await secrets_app.install(conn)
        cur = await conn.execute(
            "SELECT broseph.enqueue('TestLeaky', %s) AS id", (Jsonb({"note": "careless"}),)
        )
        row = await cur.fetchone()
        assert row is not None
        worker = Process(
            command("procrastinate", "--app", "tests.secrets_app.app", "worker"),
            worker_env(cluster, database, log_format, WORKER_QUEUES="test"),
        )
        try:
            await worker.wait_for("job_failed")

            async def failed() -> bool:
                cur = await conn.execute(
                    "SELECT status FROM broseph.job_records WHERE id = %s", (row["id"],)
                )
                found = await cur.fetchone()
                return bool(found and found["status"] == "failed")

            await wait_until(failed, within=30)
            assert worker.terminate() == 0
            output = worker.output()
        finally:
            worker.close()
        record = await records.record(conn, row["id"])
    assert record is not None
    assert record["last_error"] == (
        f"RuntimeError: could not use postgresql://broseph_app:[redacted]@127.0.0.1:"
        f"{cluster.server.port}/{database} (careless)"
    )
    assert "Traceback" in output and "could not use postgresql://broseph_app:[redacted]@" in output
    assert_clean(output, {"database password": cluster.password})


async def test_failed_start_ups_leak_no_secret(
    cluster: PasswordCluster,
    service_account: ServiceAccount,
    started_by: str,
    log_format: str,
) -> None:
    """
    Start-ups that fail with the password around: a malformed URL (libpq quotes it back), a
    wrong password, an unmigrated database. One line each, no traceback, no secret.
    """
    empty = cluster.empty_database()
    port = cluster.server.port
    cases = {
        "malformed": (
            f"postgresql://broseph_app:{cluster.password}@[127.0.0.1:{port}/{empty}",
            "not a valid PostgreSQL URL",
        ),
        "wrong password": (
            cluster.as_uri(empty, password=f"{cluster.password}-wrong"),
            'password authentication failed for user "broseph_app"',
        ),
        "unmigrated": (cluster.as_uri(empty), "run `broseph migrate`"),
    }
    secrets = secrets_of(cluster, service_account)  # the wrong password starts with the right one
    for case, (url, cause) in cases.items():
        environment = worker_env(cluster, empty, log_format, DATABASE_URL=url)
        result = run(WORKERS[started_by], environment, timeout=40)
        output = result.stdout + result.stderr
        assert_clean(output, secrets)
        assert result.returncode != 0, (case, output)
        assert "Traceback" not in output, case
        [line] = error_lines(result.stderr)
        assert cause in line, (case, line)


def test_a_wrong_password_is_not_retried(cluster: PasswordCluster) -> None:
    """
    An authentication failure is permanent: the worker says so at once, instead of retrying it
    for the pool's 30 s (or DB_OUTAGE_TIMEOUT) and ending in a PoolTimeout.
    """
    empty = cluster.empty_database()
    environment = worker_env(
        cluster,
        empty,
        "json",
        DATABASE_URL=cluster.as_uri(empty, password="not-the-password"),
        DB_OUTAGE_TIMEOUT="600",
    )
    result = run(WORKERS["broseph"], environment, timeout=25)
    assert result.returncode == 2
    assert "database_unavailable" not in result.stderr  # never waited
    [line] = error_lines(result.stderr)
    assert line == (
        'error: password authentication failed for user "broseph_app"'
        " — fix the password in DATABASE_URL"
    )


async def test_a_worker_logging_a_megabyte_value_still_stops_on_sigterm(
    cluster: PasswordCluster, database: str
) -> None:
    """
    Scrubbing is linear: logging a 1 MB value costs the event loop milliseconds, so the worker
    still heartbeats and answers SIGTERM. (The old pattern took minutes over such a value,
    with the loop blocked: no heartbeat, SIGTERM ignored.) Speed itself: python -m bench.scrub.
    """
    from tests import secrets_app  # the test app (imported here: only these tests need it)

    async with await admin(cluster, database) as conn:
        await secrets_app.install(conn)
        cur = await conn.execute(
            "SELECT broseph.enqueue('TestLoud', %s) AS id", (Jsonb({"size": 1_000_000}),)
        )
        row = await cur.fetchone()
        assert row is not None
        worker = Process(
            command("procrastinate", "--app", "tests.secrets_app.app", "worker"),
            worker_env(cluster, database, "console", WORKER_QUEUES="test"),
        )
        try:

            async def picked_up() -> bool:
                cur = await conn.execute(
                    "SELECT status FROM broseph.job_records WHERE id = %s", (row["id"],)
                )
                found = await cur.fetchone()
                return bool(found and found["status"] != "pending")

            await wait_until(picked_up, within=30)
            # Generous: a worker stops in about a second; the old scrubber needed minutes.
            code = worker.terminate(within=60)
            output = worker.output()
        finally:
            worker.close()
        record = await records.record(conn, row["id"])
    assert code == 0, "the worker did not stop within 60 s of SIGTERM"
    assert record is not None and record["status"] == "completed"
    assert "loud_value" in output
