"""
(2) The daily fan-out: one GeneratePrompt job per group for 100,000 groups, in one transaction.

Ours: `broseph.enqueue.enqueue_many(conn, payloads, idempotency_keys=…)` — job records with
idempotency keys, params validated by the SQL contract, per-group locks, then the queue rows (in
statements of `enqueue.CHUNK_SIZE`). Baseline: procrastinate's `batch_defer_async` of the same
arguments on the caller's connection (same slices), queue rows only. Inputs are built before
the clock starts on both sides; the clock stops when COMMIT returns: jobs/s. A third row measures
the queue table's own line — the same number of rows generated inside Postgres in one statement —
so a figure can be read against what procrastinate's table takes at all on this machine.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from bench import workers
from bench.harness import Context, Metric, Repetition, Sample, at_least, both, ratio_at_least
from broseph import enqueue, idempotency
from broseph.jobs.generate_prompt import GeneratePrompt

number = 2
title = "Daily fan-out over 100,000 groups"
DAY = datetime.date(2026, 3, 1)
metrics = (
    Metric(
        "fanout",
        "(2) fan-out, enqueue_many with records + idempotency keys, 1 transaction",
        "jobs/s",
        baseline="procrastinate batch_defer_async, same slices",
        target=both(ratio_at_least(1.0), at_least(20_000, "jobs/s")),
    ),
    Metric(
        "line",
        "(2) the queue table's own line: N queue rows in ONE INSERT … SELECT, no Python,"
        " no records (procrastinate's per-row triggers on)",
        "jobs/s",
        baseline="procrastinate batch_defer_async, same",
    ),
)


async def ours(ctx: Context, groups: list[uuid.UUID]) -> float:
    payloads = [GeneratePrompt(group_id=g, local_date=DAY) for g in groups]
    keys = [idempotency.prompt(g, DAY) for g in groups]
    async with await ctx.db.connect() as conn:
        started = time.perf_counter()
        ids = await enqueue.enqueue_many(conn, payloads, idempotency_keys=keys, source="schedule")
        await conn.commit()
        elapsed = time.perf_counter() - started
    assert len(set(ids)) == len(groups), "every group gets its own record"
    return len(groups) / elapsed


async def raw(ctx: Context, groups: list[uuid.UUID]) -> float:
    app = workers.raw_app(ctx.db.url, concurrency=1)
    task = app.tasks[workers.RAW_TASK]
    day = DAY.isoformat()
    args: list[dict[str, Any]] = [{"group_id": str(g), "local_date": day} for g in groups]
    step = enqueue.CHUNK_SIZE
    async with app.open_async(), await ctx.db.connect() as conn:
        deferrer = task.configure(connection=conn, queue="bench_fanout")
        started = time.perf_counter()
        for start in range(0, len(args), step):
            await deferrer.batch_defer_async(*args[start : start + step])
        await conn.commit()
        elapsed = time.perf_counter() - started
    return len(groups) / elapsed


async def line(ctx: Context, n: int) -> float:
    """
    What procrastinate_jobs itself takes: the rows generated inside Postgres, so neither client
    nor records cost anything. Its AFTER INSERT triggers (a procrastinate_events row and a
    NOTIFY per job) stay on, as for every path that enqueues.
    """
    async with await ctx.db.connect() as conn:
        started = time.perf_counter()
        await conn.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status)"
            " SELECT 'bench_fanout', %s, jsonb_build_object('group_id',"
            " gen_random_uuid()::text, 'local_date', %s::text), 'todo'"
            " FROM generate_series(1, %s)",
            (workers.RAW_TASK, DAY.isoformat(), n),
        )
        await conn.commit()
        return n / (time.perf_counter() - started)


async def rounds(ctx: Context) -> AsyncIterator[Repetition]:
    n = ctx.size(full=100_000, smoke=2_000)
    ctx.note(f"(2) {n:,} groups per side per repetition (slices of {enqueue.CHUNK_SIZE:,}).")
    # Warm up both paths (plpgsql compiles on first call, psycopg learns the types).
    await ctx.db.reset()
    await ours(ctx, [uuid.uuid4() for _ in range(50)])
    await raw(ctx, [uuid.uuid4() for _ in range(50)])
    for rep in range(ctx.reps):
        figures: dict[str, float] = {}
        for side in ("ours", "raw") if rep % 2 == 0 else ("raw", "ours"):
            await ctx.db.reset()
            groups = [uuid.uuid4() for _ in range(n)]
            figures[side] = await (ours if side == "ours" else raw)(ctx, groups)
        await ctx.db.reset()
        figures["line"] = await line(ctx, n)
        yield {
            "fanout": Sample(figures["ours"], figures["raw"]),
            "line": Sample(figures["line"], figures["raw"]),
        }
