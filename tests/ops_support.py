"""
Helpers of the operations tests (tests/test_ops_*.py; their fixtures are in ops_fixtures.py):
worker subprocesses, the `broseph` command, producers, and the bookkeeping of the reliability
scenarios (lost / duplicated / recovery time, docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from broseph import lifecycle, worker
from broseph.ops.connector import connection_lost
from broseph.settings import Settings
from tests import ops_app, pg, processes

ROOT = Path(__file__).resolve().parent.parent
Conn = psycopg.AsyncConnection[DictRow]
TEST_APP_NAME = "broseph-ops-test"  # connections the chaos tests must not terminate


# --- worker subprocesses --------------------------------------------------------------------

WORKER_ENV = {
    "LOG_FORMAT": "console",
    "LOG_LEVEL": "INFO",
    "WORKER_CONCURRENCY": "10",
    "POLL_INTERVAL": "1.0",
    "HEARTBEAT_INTERVAL": "0.5",
    "RESCUE_AFTER_SECONDS": "3",
    "RESCUE_CRON": "* * * * * *",  # every second
    "RETENTION_CRON": "0 0 1 1 *",  # not during a test
    "SHUTDOWN_TIMEOUT": "10",
    "DB_OUTAGE_TIMEOUT": "60",
}


class WorkerProcess:
    """
    `procrastinate --app tests.ops_app.app worker` in a subprocess, as an operator runs it.
    """

    def __init__(self, url: str, name: str, **env: str) -> None:
        self.log_path = Path(tempfile.mkstemp(prefix=f"ops-{name}-", suffix=".log")[1])
        environment = {**os.environ, **WORKER_ENV, **env, "DATABASE_URL": url,
                       "PYTHONPATH": str(ROOT)}  # fmt: skip
        command = [sys.executable, "-m", "procrastinate", "--app", "tests.ops_app.app", "worker"]
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
            )
        self.worker_id: int | None = None

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no cleanup, no unregister — a crashed host
        self.process.wait(10)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        processes.stop(self.process, within=20)
        self.log_path.unlink(missing_ok=True)


async def _worker_ids(conn: psycopg.AsyncConnection[Any]) -> set[int]:
    cur = await conn.execute("SELECT id FROM procrastinate_workers")
    return {row[0] for row in await cur.fetchall()}


def broseph(url: str | None, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """
    The `broseph` command exactly as an operator types it (DATABASE_URL in the environment).
    """
    environment = {**os.environ, **env}
    environment.pop("DATABASE_URL", None)
    if url is not None:
        environment["DATABASE_URL"] = url
    return processes.broseph(args, environment, timeout=60, cwd=ROOT)


async def run_until_idle(url: str) -> None:
    """
    An in-process worker (production app + TestNap) that stops once the queue is empty.
    """
    settings = Settings(_env_file=None, database_url=url, poll_interval=0.2)  # type: ignore[call-arg]
    app = worker.create_app(settings, periodic=False)
    for job_type in (ops_app.NAP, ops_app.NAP_LOCKED):
        lifecycle.register(app, job_type)
    async with app.open_async():
        await app.run_worker_async(install_signal_handlers=False, wait=False)


# --- jobs and their bookkeeping ---------------------------------------------------------------


async def enqueue_naps(
    conn: Conn, count: int, *, millis: int, job_type: str = "TestNap", **params: Any
) -> list[uuid.UUID]:
    cur = await conn.execute(
        "SELECT broseph.enqueue_many(%s, %s::jsonb[]) AS ids",
        (job_type, [Jsonb({"millis": millis, **params}) for _ in range(count)]),
    )
    row = await cur.fetchone()
    assert row is not None
    return list(row["ids"])


class Producer:
    """
    Enqueues TestNap jobs like a careful producer: through a database restart it reconnects and
    retries, and idempotency keys make a retry after an unknown commit outcome add nothing.
    """

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.ids: list[uuid.UUID] = []
        self.retries = 0
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._stop = asyncio.Event()

    async def batch(self, count: int, **params: Any) -> list[uuid.UUID]:
        keys = [f"{self.prefix}-{len(self.ids) + i}" for i in range(count)]
        rows = [Jsonb(params) for _ in range(count)]
        delay = 0.05
        while True:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = await psycopg.AsyncConnection.connect(
                        self.url, autocommit=True, application_name=TEST_APP_NAME
                    )
                cur = await self._conn.execute(
                    "SELECT broseph.enqueue_many('TestNap', %s::jsonb[], %s) AS ids", (rows, keys)
                )
                row = await cur.fetchone()
                assert row is not None
                self.ids.extend(row[0])
                return list(row[0])
            except psycopg.Error as exc:
                if not connection_lost(exc):
                    raise
                self.retries += 1
                if self._conn is not None:
                    await self._conn.close()
                self._conn = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)

    async def stream(self, total: int, *, per_batch: int, every: float, **params: Any) -> None:
        while len(self.ids) < total and not self._stop.is_set():
            await self.batch(min(per_batch, total - len(self.ids)), **params)
            await asyncio.sleep(every)

    def stop(self) -> None:
        """
        End `stream` after its batch in flight: a cancelled task could leave a committed batch
        out of `ids` (cancelled between the commit and reading its result).
        """
        self._stop.set()

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()


@dataclass
class Outcome:
    jobs: int
    completed: int
    lost: int
    duplicated: int
    stuck: int
    statuses: dict[str, int]


async def outcome(conn: Conn, record_ids: list[uuid.UUID]) -> Outcome:
    """
    Where the given jobs are: completed records, jobs whose effect never happened (lost), jobs
    whose effect happened more than once (duplicated), records stuck processing.
    """
    cur = await conn.execute(
        "SELECT status, count(*) AS n FROM broseph.job_records WHERE id = ANY(%s) GROUP BY 1",
        (record_ids,),
    )
    statuses = {row["status"]: row["n"] for row in await cur.fetchall()}
    row = await pg.one(
        conn,
        "SELECT count(DISTINCT record_id) AS done, count(*) - count(DISTINCT record_id) AS dup"
        " FROM ops_test.effects WHERE record_id = ANY(%s)",
        (record_ids,),
    )
    return Outcome(
        jobs=len(record_ids),
        completed=statuses.get("completed", 0),
        lost=len(record_ids) - row["done"],
        duplicated=row["dup"],
        stuck=statuses.get("processing", 0),
        statuses=statuses,
    )


async def wait_for(conn: Conn, record_ids: list[uuid.UUID], *, within: float) -> Outcome:
    """
    Wait until every job has completed (or the time is up); return where they are.
    """
    deadline = time.monotonic() + within
    while True:
        result = await outcome(conn, record_ids)
        if result.completed == len(record_ids) or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.1)


async def until(predicate: Callable[[], Awaitable[bool]], *, within: float, what: str) -> None:
    """
    Poll until the predicate holds; fail the test saying what did not happen.
    """
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {within}s: {what}")
        await asyncio.sleep(0.02)


async def db_now(conn: Conn) -> Any:
    """
    The database's clock (records' timestamps are on it).
    """
    cur = await conn.execute("SELECT clock_timestamp() AS now")
    row = await cur.fetchone()
    assert row is not None
    return row["now"]


def report(scenario: str, result: Outcome, recovery_seconds: float, **extra: Any) -> None:
    """
    One row of the results table in docs/reliability.md (run pytest with -s to see them).
    """
    details = " ".join(f"{k}={v}" for k, v in extra.items())
    print(
        f"\nRELIABILITY | {scenario} | jobs={result.jobs} completed={result.completed}"
        f" lost={result.lost} duplicated={result.duplicated}"
        f" recovery={recovery_seconds:.2f}s {details}"
    )
