"""
(2) The daily fan-out: one GeneratePrompt job per group for 100,000 groups, in one transaction.

Ours: `broseph.enqueue.enqueue_many(conn, payloads, idempotency_keys=…)` — job records with
idempotency keys, params validated by the SQL contract, per-group locks, then the queue rows (in
statements of `enqueue.CHUNK_SIZE`). Baseline: procrastinate's `batch_defer_async` of the same
arguments on the caller's connection (same slices), queue rows only. Inputs are built before
the clock starts on both sides; the clock stops when COMMIT returns: jobs/s. The queue table's
own line — the same number of rows generated inside Postgres in one statement — is a second
baseline: what procrastinate's table takes at all on this machine. PgQueuer's batch enqueue
(lists, same slices) is the third.
Per job (bench/accounting.py): the producer's CPU (this process and its backend), the bench
database's transactions and WAL.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg

from bench import accounting, pgq, workers
from bench.harness import Context, Metric, Repetition, Sample, at_least, both, ratio_at_least
from broseph import enqueue, idempotency
from broseph.jobs.generate_prompt import GeneratePrompt

number = 2
title = "Daily fan-out over 100,000 groups"
DAY = datetime.date(2026, 3, 1)
RAW = "procrastinate batch_defer_async, same slices"
LINE = (
    "the queue table's own line: N rows in ONE INSERT … SELECT into procrastinate_jobs, no"
    " Python, no records (procrastinate's stock per-row triggers on)"
)
metrics = (
    Metric(
        "fanout",
        "(2) fan-out, enqueue_many with records + idempotency keys, 1 transaction",
        "jobs/s",
        baseline=RAW,
        target=both(ratio_at_least(1.0), at_least(20_000, "jobs/s")),
    ),
    Metric(
        "fanout_line",
        "(2) fan-out with records, vs the queue table's own line",
        "jobs/s",
        baseline=LINE,
        target=ratio_at_least(1.0),
    ),
    Metric(
        "fanout_pgq",
        "(2) fan-out with records, vs PgQueuer's batch enqueue",
        "jobs/s",
        baseline="PgQueuer Queries.enqueue of lists, same slices, 1 transaction",
    ),
    Metric(
        "cpu",
        "(2) CPU per job of the fan-out: this process + its Postgres backend",
        "ms",
        baseline=RAW,
        decimals=3,
    ),
    Metric(
        "wal",
        "(2) WAL per job of the fan-out (this database's records, full-page images apart)",
        "bytes",
        RAW,
    ),
)
Work = accounting.Work


def ours(url: str, groups: list[uuid.UUID]) -> Work:
    payloads = [GeneratePrompt(group_id=g, local_date=DAY) for g in groups]
    keys = [idempotency.prompt(g, DAY) for g in groups]

    async def work(conn: psycopg.AsyncConnection[Any]) -> None:
        ids = await enqueue.enqueue_many(conn, payloads, idempotency_keys=keys, source="schedule")
        await conn.commit()
        assert len(set(ids)) == len(groups), "every group gets its own record"

    return work


def raw(url: str, groups: list[uuid.UUID]) -> Work:
    # Deferred on the producer's connection: the app's own pool is never opened.
    task = workers.raw_app(url, concurrency=1).tasks[workers.RAW_TASK]
    day = DAY.isoformat()
    args: list[dict[str, Any]] = [{"group_id": str(g), "local_date": day} for g in groups]
    step = enqueue.CHUNK_SIZE

    async def work(conn: psycopg.AsyncConnection[Any]) -> None:
        deferrer = task.configure(connection=conn, queue="bench_fanout")
        for start in range(0, len(args), step):
            await deferrer.batch_defer_async(*args[start : start + step])
        await conn.commit()

    return work


def pgqueuer(url: str, groups: list[uuid.UUID]) -> Work:
    day = DAY.isoformat()
    blobs = [pgq.payload(g, day) for g in groups]
    step = enqueue.CHUNK_SIZE

    async def work(conn: psycopg.AsyncConnection[Any]) -> None:
        for start in range(0, len(blobs), step):
            await pgq.enqueue_batch(conn, blobs[start : start + step])
        await conn.commit()

    return work


def line(url: str, groups: list[uuid.UUID]) -> Work:
    """
    What procrastinate_jobs itself takes: the rows generated inside Postgres, so neither client
    nor records cost anything. Its AFTER INSERT triggers (a procrastinate_events row and a
    NOTIFY per job) stay on, as for every path that enqueues.
    """

    async def work(conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status)"
            " SELECT 'bench_fanout', %s, jsonb_build_object('group_id',"
            " gen_random_uuid()::text, 'local_date', %s::text), 'todo'"
            " FROM generate_series(1, %s)",
            (workers.RAW_TASK, DAY.isoformat(), len(groups)),
        )
        await conn.commit()

    return work


SIDES = {"ours": ours, "raw": raw, "pgq": pgqueuer, "line": line}


async def rounds(ctx: Context) -> AsyncIterator[Repetition]:
    n = ctx.size(full=100_000, smoke=2_000)
    ctx.note(
        f"(2) {n:,} groups per side per repetition (slices of {enqueue.CHUNK_SIZE:,});"
        " inputs built before the clock starts; per job: the producer's CPU (this process and"
        " its backend), transactions and WAL of the bench database."
    )
    await pgq.install(ctx.db)
    # Warm up every path (plpgsql compiles on first call, psycopg learns the types).
    for make in SIDES.values():
        await ctx.db.reset()
        await accounting.in_process(ctx, make(ctx.db.url, [uuid.uuid4() for _ in range(50)]), 50)
    for rep in range(ctx.reps):
        rate: dict[str, float] = {}
        acc: dict[str, accounting.Account] = {}
        order = list(SIDES) if rep % 2 == 0 else list(reversed(SIDES))
        for side in order:
            await ctx.db.reset()
            work = SIDES[side](ctx.db.url, [uuid.uuid4() for _ in range(n)])
            elapsed, acc[side] = await accounting.in_process(ctx, work, n)
            rate[side] = n / elapsed
        ctx.note(
            f"(2) round {rep + 1}: "
            + "; ".join(acc[k].describe("producer").replace("producer", k, 1) for k in SIDES)
        )
        yield {
            "fanout": Sample(rate["ours"], rate["raw"]),
            "fanout_line": Sample(rate["ours"], rate["line"]),
            "fanout_pgq": Sample(rate["ours"], rate["pgq"]),
            "cpu": Sample(acc["ours"].cpu_ms("producer"), acc["raw"].cpu_ms("producer")),
            "wal": Sample(acc["ours"].wal_per_job, acc["raw"].wal_per_job),
        }
