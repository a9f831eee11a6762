"""
Errors a person can act on: every command, exactly as an operator types it, meets the ordinary
mistakes — no DATABASE_URL, a malformed one, an unknown host, database or role, a wrong password,
a database that is down or not migrated, invalid input — and answers with one line on stderr
naming the cause and the fix, a non-zero exit code (2: fix the configuration or the input), no
traceback and no password. `broseph --debug` adds the traceback.

Permanent connection errors fail at once; only transient ones (a refused connection, a server
starting) are waited for (test_secrets.py also shows a wrong password is not retried).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from tests import pgcluster, secrets_support
from tests.secrets_support import PasswordCluster, Process, command, env, error_lines, run

GROUP = "6f1c1c8e-2b7a-4f0e-9a51-0c3c2d1e4f5a"
COMMANDS = {
    "worker": command("broseph", "worker"),
    "procrastinate worker": command("procrastinate", "--app", "broseph.worker.app", "worker"),
    "migrate": command("broseph", "migrate"),
    "enqueue": command(
        "broseph",
        "enqueue",
        "ProcessEngagement",
        f'{{"group_id": "{GROUP}", "local_date": "2026-01-01"}}',
    ),
    "jobs list": command("broseph", "jobs", "list"),
    "jobs show": command("broseph", "jobs", "show", "1"),
    "quarantine list": command("broseph", "ingress", "quarantine", "list"),
    "ingress bullmq": command("broseph", "ingress", "bullmq"),
    "demo": command("broseph", "demo", "--groups", "1"),
}


@dataclass(frozen=True)
class Mistake:
    url: str | None
    cause: str
    exit_code: int


@pytest.fixture(scope="module")
def cluster() -> Iterator[PasswordCluster]:
    with secrets_support.password_cluster() as server:
        yield server


@pytest.fixture(scope="module")
def mistakes(cluster: PasswordCluster, admin_url: str) -> dict[str, Mistake]:
    empty = cluster.empty_database()
    trusting = conninfo_to_dict(admin_url)  # the shared server trusts: roles are checked alone
    return {
        "no DATABASE_URL": Mistake(None, "DATABASE_URL is not set — set it to", 2),
        "malformed URL": Mistake(
            f"postgresql://broseph_app:{cluster.password}@127.0.0.1:fivefour/db",
            'DATABASE_URL is not a valid PostgreSQL URL (invalid integer value "…" for'
            ' connection option "port")',
            2,
        ),
        "unknown host": Mistake(
            f"postgresql://broseph_app:{cluster.password}@nonexistent.invalid:5432/db",
            'cannot resolve the database host "nonexistent.invalid" — fix the host name',
            2,
        ),
        "unknown database": Mistake(
            cluster.as_uri("nope"),
            'database "nope" does not exist — create it or fix the database name in DATABASE_URL',
            2,
        ),
        "unknown role": Mistake(
            f"postgresql://nobody_here:{cluster.password}@{trusting.get('host', '127.0.0.1')}:"
            f"{trusting.get('port', '5432')}/postgres",
            'role "nobody_here" does not exist — create it or fix the user name',
            2,
        ),
        "wrong password": Mistake(
            cluster.as_uri(empty, password="Wrong-password-1"),
            'password authentication failed for user "broseph_app" — fix the password',
            2,
        ),
        "database down": Mistake(
            f"postgresql://broseph_app:{cluster.password}@127.0.0.1:{pgcluster.free_port()}/db",
            "(connection refused)",
            1,
        ),
        "not migrated": Mistake(cluster.as_uri(empty), "run `broseph migrate`", 1),
    }


# What does not apply: the demo starts an embedded server without DATABASE_URL and migrates
# what it is given; migrate migrates; the ingress waits for a database that is down.
SKIP = {
    ("demo", "no DATABASE_URL"),
    ("demo", "not migrated"),
    ("migrate", "not migrated"),
    ("ingress bullmq", "database down"),
}


@pytest.mark.parametrize(
    "mistake",
    [
        "no DATABASE_URL",
        "malformed URL",
        "unknown host",
        "unknown database",
        "unknown role",
        "wrong password",
        "database down",
        "not migrated",
    ],
)
@pytest.mark.parametrize("name", list(COMMANDS))
def test_one_line_naming_cause_and_fix(
    cluster: PasswordCluster, mistakes: dict[str, Mistake], name: str, mistake: str
) -> None:
    if (name, mistake) in SKIP:
        pytest.skip("does not apply")
    case = mistakes[mistake]
    # A worker waits DB_OUTAGE_TIMEOUT for a database that is down; keep that short here.
    environment = env(DATABASE_URL=case.url, DB_OUTAGE_TIMEOUT="1", LOG_FORMAT="json")
    result = run(COMMANDS[name], environment, timeout=60)
    output = result.stdout + result.stderr
    assert cluster.password not in output
    assert "Traceback" not in output
    lines = error_lines(result.stderr)
    if name == "procrastinate worker":
        # procrastinate's CLI prints the error's message and always exits 1.
        assert result.returncode == 1 and not lines[-1].startswith("error:"), output
    else:
        assert result.returncode == case.exit_code, output
        assert lines[-1].startswith("error: "), lines
    # The only other lines a worker may print: its log while it waits for a database.
    assert all('"database_unavailable"' in line for line in lines[:-1]), lines
    assert case.cause in lines[-1], lines[-1]
    assert " — " in lines[-1]  # the fix follows the cause


def test_health_names_the_cause_in_its_report(
    cluster: PasswordCluster, mistakes: dict[str, Mistake]
) -> None:
    """
    `broseph health` is a probe: a database it cannot use is a finding in its report (exit 1),
    a missing DATABASE_URL a misconfiguration (exit 2).
    """
    for mistake, case in mistakes.items():
        result = run(command("broseph", "health"), env(DATABASE_URL=case.url))
        output = " ".join((result.stdout + result.stderr).split())
        assert cluster.password not in output and "Traceback" not in output, mistake
        assert result.returncode == (2 if mistake == "no DATABASE_URL" else 1), (mistake, output)
        cause = "broseph migrate" if mistake == "not migrated" else case.cause.split(" — ")[0]
        assert cause.removeprefix("error: ") in output, (mistake, output)


@pytest.mark.parametrize(
    ("params", "cause"),
    [
        ('{"group_id": ', "PARAMS is not valid JSON (Expecting value at column 14)"),
        ('["a"]', "PARAMS is a JSON list, not an object"),
        (
            '{"group_id": "x", "local_date": "2026-01-01"}',
            "invalid params for ProcessEngagement: group_id: Input should be a valid UUID",
        ),
        ('{"local_date": "2026-01-01", "extra": 1}', "group_id: Field required"),
    ],
)
def test_enqueue_names_what_is_wrong_with_its_input(
    cluster: PasswordCluster, params: str, cause: str
) -> None:
    empty = cluster.empty_database()
    result = run(
        command("broseph", "enqueue", "ProcessEngagement", params),
        env(DATABASE_URL=cluster.as_uri(empty)),
    )
    assert result.returncode == 2
    [line] = error_lines(result.stderr)
    assert line.startswith("error: ") and cause in line and " — " in line
    assert "Traceback" not in result.stderr


def test_enqueue_of_an_unknown_job_type(cluster: PasswordCluster) -> None:
    result = run(
        command("broseph", "enqueue", "SendPigeon", "{}"),
        env(DATABASE_URL=cluster.as_uri("postgres")),
    )
    assert result.returncode == 2
    [line] = error_lines(result.stderr)
    assert line.startswith(
        "error: unknown job type 'SendPigeon' — use one of DeliverGroupEvent, GeneratePrompt,"
    )


def test_debug_adds_the_traceback_still_without_secrets(cluster: PasswordCluster) -> None:
    result = run(command("broseph", "--debug", "worker"), env(DATABASE_URL=cluster.as_uri("nope")))
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert "psycopg.OperationalError" in result.stderr  # the error behind the line
    assert result.stderr.rstrip().splitlines()[-1].startswith('error: database "nope" does not')
    assert cluster.password not in result.stderr


async def test_a_worker_waits_for_a_database_that_is_starting(cluster: PasswordCluster) -> None:
    """
    Transient errors are retried: a worker started while its database is down waits (and says
    so once), and runs as soon as the database is back.
    """
    name = await cluster.migrated_database()
    cluster.server.stop()
    worker = Process(
        command("broseph", "worker"),
        env(DATABASE_URL=cluster.as_uri(name), DB_OUTAGE_TIMEOUT="120", LOG_FORMAT="json"),
    )
    try:
        await worker.wait_for('"database_unavailable"')
        cluster.server.start()
        deadline = time.monotonic() + 60
        while True:
            with psycopg.connect(cluster.server.url(name)) as conn:
                row = conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()
            if row and row[0]:
                break
            assert worker.process.poll() is None, worker.output()[-2000:]
            assert time.monotonic() < deadline, worker.output()[-2000:]
            await asyncio.sleep(0.2)
        assert worker.terminate() == 0
        output = worker.output()
    finally:
        if not cluster.server.running():
            cluster.server.start()
        worker.close()
    assert output.count('"database_unavailable"') == 1 and '"database_available"' in output
    assert "(connection refused)" in output and cluster.password not in output
