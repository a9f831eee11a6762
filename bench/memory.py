"""
(6) Worker memory: RSS after 100,000 jobs, and its growth over the last 50,000.

One broseph worker process (concurrency 10, the bench no-op job type through the full
lifecycle); the jobs are enqueued in committed slices while it works. VmRSS of the process is
read from /proc/<pid>/status as the completed-record count passes each mark. Baseline of the
first row: the same process's RSS once idle after start-up, before any job.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from collections.abc import AsyncIterator

from bench import workers
from bench.harness import Context, Metric, Repetition, Sample, at_most
from broseph import enqueue

number = 6
title = "Worker RSS after 100,000 jobs"
QUEUE = "bench_memory"
DAY = datetime.date(2026, 3, 1)
FLAT_MB = 5.0
# 100,000 jobs take minutes on 2 cores: one round (a fresh worker, sampled as it goes).
max_reps = 1
metrics = (
    Metric(
        "rss",
        "(6) worker RSS after all jobs",
        "MiB",
        baseline="same worker idle, before its first job",
        target=at_most(150, "MiB"),
        decimals=1,
    ),
    Metric(
        "growth",
        "(6) RSS growth over the last half of the jobs",
        "MiB",
        target=at_most(FLAT_MB, "MiB (flat)"),
        decimals=1,
    ),
)


async def feed(ctx: Context, n: int, slice_size: int) -> None:
    """
    Enqueue n jobs in committed slices, the next one whenever fewer than a slice are waiting:
    the worker always has work, and the backlog stays that of a busy day, not of a burst.
    """
    async with await ctx.db.connect() as conn:
        for start in range(0, n, slice_size):
            while True:
                cur = await conn.execute(
                    "SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'"
                )
                row = await cur.fetchone()
                await conn.commit()
                if row is None or int(row[0]) < slice_size:
                    break
                await asyncio.sleep(0.2)
            count = min(slice_size, n - start)
            payloads = [workers.noop_payload(QUEUE, uuid.uuid4(), DAY) for _ in range(count)]
            await enqueue.enqueue_many(conn, payloads, source="bench")
            await conn.commit()


async def one_run(ctx: Context, n: int) -> tuple[float, float, float]:
    """
    (idle RSS, RSS after n jobs, RSS after n / 2 jobs) of a fresh worker process.
    """
    await ctx.db.reset()
    proc = workers.WorkerProcess(
        "ours", ctx.db.url, [QUEUE], concurrency=10, log_file=ctx.workdir / "worker-memory.log"
    )
    try:
        await workers.start_all(ctx.db.url, [proc])
        idle = proc.rss_mb()
        feeding = asyncio.create_task(feed(ctx, n, slice_size=2_000))
        half: float | None = None
        deadline = time.monotonic() + 1800
        async with await ctx.db.connect(autocommit=True) as conn:
            while True:
                cur = await conn.execute(
                    "SELECT count(*) FROM broseph.job_records WHERE status = 'completed'"
                )
                row = await cur.fetchone()
                done = int(row[0]) if row else 0
                rss = proc.rss_mb()
                if half is None and done >= n // 2:
                    half = rss
                if done >= n:
                    break
                proc.check_alive()
                if feeding.done() and feeding.exception() is not None:
                    await feeding  # raises the feeder's error
                if time.monotonic() > deadline:
                    raise TimeoutError(f"memory: {done} of {n} jobs after 1800 s")
                await asyncio.sleep(0.5)
        await feeding
        # Let the last completions settle (logs flushed, buffers released) before the reading.
        await asyncio.sleep(1.0)
        final = proc.rss_mb()
        assert half is not None
        return idle, final, half
    finally:
        await proc.stop()


async def rounds(ctx: Context) -> AsyncIterator[Repetition]:
    n = ctx.size(full=100_000, smoke=400)
    await ctx.db.register(workers.noop_type(QUEUE))
    ctx.note(
        f"(6) {n:,} jobs per repetition, a fresh worker process each time; RSS read every 0.5 s;"
        f" flat means ≤ {FLAT_MB:g} MiB growth over the last {n // 2:,} jobs."
    )
    for _ in range(ctx.reps):
        idle, final, half = await one_run(ctx, n)
        yield {"rss": Sample(final, idle), "growth": Sample(final - half)}
