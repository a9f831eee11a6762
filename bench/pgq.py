"""
PgQueuer, the second same-run baseline: what a Python user would pick instead of procrastinate.

Its own schema (the `pgqueuer` queue table, `pgqueuer_statistics`, a statement-level NOTIFY
trigger) is installed in the bench database through its Python API (`Queries.install`, what
`pgq install` runs). Everything goes through psycopg (`pgqueuer.db.PsycopgDriver`) like our side.
Its default worker: one QueueManager on one connection, `run()` with its defaults (batch_size 10,
dequeue_timeout 30 s, LISTEN/NOTIFY) — up to 10 jobs in flight in one process. A finished job is
deleted from the queue table and counted in `pgqueuer_statistics` (buffered, in batches; 1.x
also logs it in `pgqueuer_log`), so "done" is "the queue table is empty".

Only the names PgQueuer keeps as its public API across releases are used (pgqueuer.db,
pgqueuer.queries, pgqueuer.qm), so the bench runs on the version the lock resolves to.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from pgqueuer.db import PsycopgDriver
from pgqueuer.qm import QueueManager
from pgqueuer.queries import Queries

from bench.database import BenchDatabase

if TYPE_CHECKING:
    from bench.workers import WorkerProcess

ENTRYPOINT = "bench_noop"


def payload(group_id: uuid.UUID, local_date: str) -> bytes:
    """
    The same two ids our no-op carries, as PgQueuer carries payloads: bytes.
    """
    return json.dumps({"group_id": str(group_id), "local_date": local_date}).encode()


async def install(db: BenchDatabase) -> None:
    """
    PgQueuer's schema in the bench database (once per run).
    """
    async with await db.connect(autocommit=True) as conn:
        cur = await conn.execute("SELECT to_regclass('public.pgqueuer') IS NOT NULL")
        row = await cur.fetchone()
        if row and row[0]:
            return
        await Queries(PsycopgDriver(conn)).install()


def queries(conn: psycopg.AsyncConnection[Any]) -> Queries:
    return Queries(PsycopgDriver(conn))


async def enqueue_batch(conn: psycopg.AsyncConnection[Any], payloads: list[bytes]) -> None:
    """
    Many jobs in one statement (PgQueuer's batch form: lists of entrypoints and payloads).
    """
    n = len(payloads)
    await queries(conn).enqueue([ENTRYPOINT] * n, list(payloads), [0] * n)  # type: ignore[arg-type]


async def remaining(conn: psycopg.AsyncConnection[Any]) -> int:
    cur = await conn.execute("SELECT count(*) FROM pgqueuer")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def wait_drained(
    db: BenchDatabase, *, within: float, live: Sequence[WorkerProcess]
) -> tuple[float, int]:
    """
    Poll until PgQueuer's queue table is empty; (time.time() then, statements run). Raises if
    a worker died.
    """
    deadline = time.monotonic() + within
    statements = 0
    async with await db.connect(autocommit=True) as conn:
        while True:
            left = await remaining(conn)
            statements += 1
            if not left:
                return time.time(), statements
            for w in live:
                w.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"pgqueuer: {left} jobs left after {within:g} s")
            await asyncio.sleep(0.02)


def _queue_manager(conn: psycopg.AsyncConnection[Any]) -> QueueManager:
    # 0.x takes the driver (`connection`), 1.x the queries built on it (`queries`).
    names = {f.name for f in dataclasses.fields(QueueManager)}
    if "connection" in names:
        return QueueManager(connection=PsycopgDriver(conn))  # type: ignore[call-arg]
    return QueueManager(queries=Queries(PsycopgDriver(conn)))  # type: ignore[call-arg]


async def serve(url: str) -> None:
    """
    PgQueuer's default worker with a no-op entrypoint, until SIGTERM.
    """
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        qm = _queue_manager(conn)

        @qm.entrypoint(ENTRYPOINT)
        async def noop(job: Any) -> None:
            return None

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, qm.shutdown.set)
        loop.add_signal_handler(signal.SIGINT, qm.shutdown.set)
        await qm.run()
