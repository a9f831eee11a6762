"""
Helpers of the dashboard's tests (tests/test_ops_filters.py, test_dashboard_*.py): jobs put in
every state through procrastinate's own functions, quarantined ingress jobs, the dashboard
served by `broseph dashboard` exactly as an operator starts it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tests import ops_app

ROOT = Path(__file__).resolve().parent.parent
USER, PASSWORD = "operator", "correct horse battery staple"
Conn = psycopg.AsyncConnection[Any]


async def install_nap(conn: Conn) -> None:
    """
    The test-only TestNap job type (tests/ops_app.py) in this test database.
    """
    await ops_app.install(conn)


async def naps(conn: Conn, count: int, **params: Any) -> list[uuid.UUID]:
    cur = await conn.execute(
        "SELECT broseph.enqueue_many('TestNap', %s::jsonb[]) AS ids",
        ([Jsonb({"millis": 0, **params}) for _ in range(count)],),
    )
    row = await cur.fetchone()
    assert row is not None
    return list(row["ids"] if isinstance(row, dict) else row[0])


async def take(conn: Conn, record_ids: list[uuid.UUID], *, worker: bool = True) -> list[int]:
    """
    Start jobs as a worker does (todo → doing: record `processing`); returns their queue ids.
    """
    worker_id = None
    if worker:
        cur = await conn.execute("INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id")
        worker_id = _first(await cur.fetchone())
    cur = await conn.execute(
        "UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s WHERE id IN"
        " (SELECT procrastinate_job_id FROM broseph.job_records WHERE id = ANY(%s))"
        " RETURNING id",
        (worker_id, record_ids),
    )
    return sorted(_first(row) for row in await cur.fetchall())


async def fail(conn: Conn, record_ids: list[uuid.UUID], error: str = "RuntimeError: boom") -> None:
    """
    Fail jobs the way a worker does: started, then finished `failed` by procrastinate.
    """
    job_ids = await take(conn, record_ids, worker=False)
    await conn.execute(
        "UPDATE broseph.job_records SET last_error = %s WHERE id = ANY(%s)", (error, record_ids)
    )
    for job_id in job_ids:
        await conn.execute("SELECT procrastinate_finish_job_v1(%s, 'failed', false)", (job_id,))


async def complete(conn: Conn, record_ids: list[uuid.UUID]) -> None:
    for job_id in await take(conn, record_ids, worker=False):
        await conn.execute("SELECT procrastinate_finish_job_v1(%s, 'succeeded', false)", (job_id,))


async def quarantine(conn: Conn, raw: dict[str, Any] | str, reason: str, job_id: str) -> int:
    text = raw if isinstance(raw, str) else json.dumps(raw)
    cur = await conn.execute(
        "INSERT INTO broseph.ingress_quarantine"
        " (delivery_key, source, queue, job_id, job_name, raw, reason)"
        " VALUES (%s, 'bullmq', 'broseph-jobs', %s, %s, %s, %s) RETURNING id",
        (f"bullmq:broseph-jobs:{job_id}", job_id, _name(text), text, reason),
    )
    return _first(await cur.fetchone())


async def quarantine_prompt(
    conn: Conn, group: uuid.UUID, reason: str, job_id: str, timestamp_ms: int
) -> int:
    """
    A BullMQ GeneratePrompt job for `group`, quarantined by the ingress (a replay can run it).
    """
    raw = {"name": "GeneratePrompt", "data": {"groupId": str(group)}, "timestamp": timestamp_ms}
    return await quarantine(conn, raw, reason, job_id)


async def statuses(conn: Conn, record_ids: list[uuid.UUID]) -> dict[str, int]:
    cur = await conn.execute(
        "SELECT status, count(*) AS n FROM broseph.job_records WHERE id = ANY(%s) GROUP BY 1",
        (record_ids,),
    )
    return {_at(row, 0, "status"): _at(row, 1, "n") for row in await cur.fetchall()}


def _name(text: str) -> str:
    try:
        return str(json.loads(text).get("name", "?"))
    except (ValueError, AttributeError):
        return "?"


def _first(row: Any) -> Any:
    assert row is not None
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def _at(row: Any, index: int, key: str) -> Any:
    return row[key] if isinstance(row, dict) else row[index]


# --- the dashboard as an operator starts it ---------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served(url: str, *args: str, **env: str) -> Iterator[str]:
    """
    `broseph dashboard --port N [args]` in a subprocess; yields its base URL, SIGTERM after.
    """
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": url,
        "DASHBOARD_USER": USER,
        "DASHBOARD_PASSWORD": PASSWORD,
        "DASHBOARD_POLL_SECONDS": "0.3",
        "LOG_FORMAT": "console",
        "PYTHONPATH": str(ROOT),
        **env,
    }
    log = Path(tempfile.mkstemp(prefix="dashboard-", suffix=".log")[1])
    command = [str(Path(sys.executable).parent / "broseph"), "dashboard", "--port", str(port)]
    with log.open("w") as out:
        process = subprocess.Popen(
            [*command, *args], cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"dashboard did not start:\n{log.read_text()}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        if process.returncode not in (0, -signal.SIGTERM):
            print(f"--- dashboard log ---\n{log.read_text()[-4000:]}")
        log.unlink(missing_ok=True)
