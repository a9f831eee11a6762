"""
(1) Transactional enqueue, one job per transaction, on the caller's connection.

Ours: `broseph.enqueue.enqueue(conn, payload)` then COMMIT — the job record and the queue row in
one statement. Baseline: procrastinate's own transactional defer on the same kind of connection,
`task.configure(connection=conn).defer_async(...)` then COMMIT — the queue row only. Both build
their input inside the timed loop, as a caller would, and both commit every job (so each pays one
WAL flush): jobs/s.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import AsyncIterator

from bench import workers
from bench.harness import Context, Metric, Repetition, Sample, ratio_at_least
from broseph import enqueue

number = 1
title = "Transactional enqueue, one by one"
QUEUE = "bench_enqueue"
metrics = (
    Metric(
        "enqueue_one",
        "(1) enqueue one by one, record + job, COMMIT each",
        "jobs/s",
        baseline="procrastinate defer_async on the caller's connection",
        target=ratio_at_least(1.0),
    ),
)
WARM_UP = 50


async def ours(ctx: Context, n: int) -> float:
    day = datetime.date(2026, 3, 1)
    async with await ctx.db.connect() as conn:
        for _ in range(WARM_UP):
            await enqueue.enqueue(conn, workers.noop_payload(QUEUE, uuid.uuid4(), day))
            await conn.commit()
        started = time.perf_counter()
        for _ in range(n):
            await enqueue.enqueue(conn, workers.noop_payload(QUEUE, uuid.uuid4(), day))
            await conn.commit()
        return n / (time.perf_counter() - started)


async def raw(ctx: Context, n: int) -> float:
    app = workers.raw_app(ctx.db.url, concurrency=1)
    task = app.tasks[workers.RAW_TASK]
    day = datetime.date(2026, 3, 1).isoformat()
    async with app.open_async(), await ctx.db.connect() as conn:
        deferrer = task.configure(connection=conn, queue=QUEUE)
        for _ in range(WARM_UP):
            await deferrer.defer_async(group_id=str(uuid.uuid4()), local_date=day)
            await conn.commit()
        started = time.perf_counter()
        for _ in range(n):
            await task.configure(connection=conn, queue=QUEUE).defer_async(
                group_id=str(uuid.uuid4()), local_date=day
            )
            await conn.commit()
        return n / (time.perf_counter() - started)


async def rounds(ctx: Context) -> AsyncIterator[Repetition]:
    n = ctx.size(full=3000, smoke=100)
    ctx.note(
        f"(1) {n:,} jobs per side per repetition, one transaction each, after {WARM_UP} warm-up."
    )
    await ctx.db.register(workers.noop_type(QUEUE))
    for rep in range(ctx.reps):
        # Alternate who goes first, so drift on a shared machine does not favour one side.
        figures: dict[str, float] = {}
        for side in ("ours", "raw") if rep % 2 == 0 else ("raw", "ours"):
            await ctx.db.reset()
            figures[side] = await (ours if side == "ours" else raw)(ctx, n)
        yield {"enqueue_one": Sample(figures["ours"], figures["raw"])}
