"""
(1) Transactional enqueue, one job per transaction, on the caller's connection.

Ours: `broseph.enqueue.enqueue(conn, payload)` then COMMIT — the job record and the queue row in
one statement. Baseline: procrastinate's own transactional defer on the same kind of connection,
`task.configure(connection=conn).defer_async(...)` then COMMIT — the queue row only. Both build
their input inside the timed loop, as a caller would, and both commit every job (so each pays one
WAL flush): jobs/s. Second baseline: PgQueuer's `Queries.enqueue` on the same kind of connection,
COMMIT each. Per job (bench/accounting.py): the producer's CPU (this process and its own
backend), round trips on its connection, the bench database's transactions and WAL.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import procrastinate
import psycopg

from bench import accounting, pgq, workers
from bench.harness import Context, Metric, Repetition, Sample, ratio_at_least
from broseph import enqueue

number = 1
title = "Transactional enqueue, one by one"
QUEUE = "bench_enqueue"
RAW = "procrastinate defer_async on the caller's connection"
metrics = (
    Metric(
        "enqueue_one",
        "(1) enqueue one by one, record + job, COMMIT each",
        "jobs/s",
        baseline=RAW,
        target=ratio_at_least(1.0),
    ),
    Metric(
        "enqueue_one_pgq",
        "(1) enqueue one by one, vs PgQueuer",
        "jobs/s",
        baseline="PgQueuer Queries.enqueue on the caller's connection, COMMIT each",
    ),
    Metric(
        "cpu",
        "(1) CPU per enqueued job: the producer (this process) + its Postgres backend",
        "ms",
        baseline=RAW,
        decimals=3,
    ),
    Metric(
        "wal",
        "(1) WAL per enqueued job (this database's records, full-page images apart)",
        "bytes",
        baseline=RAW,
    ),
)
WARM_UP = 50
Side = Callable[[psycopg.AsyncConnection[Any], int], Awaitable[None]]


async def ours(conn: psycopg.AsyncConnection[Any], n: int) -> None:
    day = datetime.date(2026, 3, 1)
    for _ in range(n):
        await enqueue.enqueue(conn, workers.noop_payload(QUEUE, uuid.uuid4(), day))
        await conn.commit()


def raw_side(app: procrastinate.App) -> Side:
    task = app.tasks[workers.RAW_TASK]
    day = datetime.date(2026, 3, 1).isoformat()

    async def raw(conn: psycopg.AsyncConnection[Any], n: int) -> None:
        for _ in range(n):
            await task.configure(connection=conn, queue=QUEUE).defer_async(
                group_id=str(uuid.uuid4()), local_date=day
            )
            await conn.commit()

    return raw


async def pgqueuer(conn: psycopg.AsyncConnection[Any], n: int) -> None:
    day = datetime.date(2026, 3, 1).isoformat()
    queries = pgq.queries(conn)
    for _ in range(n):
        await queries.enqueue(pgq.ENTRYPOINT, pgq.payload(uuid.uuid4(), day))
        await conn.commit()


async def timed(ctx: Context, side: Side, n: int) -> tuple[float, accounting.Account]:
    """
    Warm up, then n jobs on one connection: (jobs/s, per-job account of the producer).
    """

    async def warm_up(conn: psycopg.AsyncConnection[Any]) -> None:
        await side(conn, WARM_UP)

    async def work(conn: psycopg.AsyncConnection[Any]) -> None:
        await side(conn, n)

    elapsed, account = await accounting.in_process(ctx, work, n, warm_up=warm_up)
    return n / elapsed, account


async def rounds(ctx: Context) -> AsyncIterator[Repetition]:
    n = ctx.size(full=3000, smoke=100)
    ctx.note(
        f"(1) {n:,} jobs per side per repetition, one transaction each, after {WARM_UP} warm-up;"
        " per job: the producer's CPU (this process and its backend), round trips,"
        " transactions and WAL of the bench database."
    )
    await ctx.db.register(workers.noop_type(QUEUE))
    await pgq.install(ctx.db)
    app = workers.raw_app(ctx.db.url, concurrency=1)
    sides: dict[str, Side] = {"ours": ours, "raw": raw_side(app), "pgq": pgqueuer}
    # The raw side defers on the producer's connection: its app's pool is never opened.
    for rep in range(ctx.reps):
        # Alternate who goes first, so drift on a shared machine does not favour one side.
        rate: dict[str, float] = {}
        acc: dict[str, accounting.Account] = {}
        for side in ("ours", "raw", "pgq") if rep % 2 == 0 else ("pgq", "raw", "ours"):
            await ctx.db.reset()
            rate[side], acc[side] = await timed(ctx, sides[side], n)
        ctx.note(f"(1) round {rep + 1}: " + accounting.describe_sides(acc))
        yield {
            "enqueue_one": Sample(rate["ours"], rate["raw"]),
            "enqueue_one_pgq": Sample(rate["ours"], rate["pgq"]),
            "cpu": Sample(acc["ours"].cpu_ms("producer"), acc["raw"].cpu_ms("producer")),
            "wal": Sample(acc["ours"].wal_per_job, acc["raw"].wal_per_job),
        }
