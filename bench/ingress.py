"""
(5) BullMQ ingress → Postgres job records, vs a raw Python bullmq no-op Worker.

All sides consume a pre-filled BullMQ queue on the same Redis (N `ProcessEngagement` jobs as the
Node API publishes them: camelCase data, added with the bullmq Queue API) with the same job
retention. Ours is `broseph.ingress.bullmq.BullMQIngress` (its public API, in this process) with
its default settings (INGRESS_CONCURRENCY 200 jobs held per queue, INGRESS_BATCH_SIZE 100): map
and validate each job, commit the job records + receipts through the enqueue contract, one
statement per batch, then ack each with a chained moveToFinished. Baselines: a bullmq `Worker`
whose processor returns at once, at concurrency 10 (bullmq's usual setting, the target's
baseline) and at concurrency 200 (as many jobs held as ours).

Rate = (N − k) ÷ (last − first job handled), k the jobs handled at the last instant: for ours the
Postgres record times (created_at, one per batch statement; k is the last batch, whose commit
and ack fall after the last instant), for the baselines processor calls (k = 1).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import bullmq

from bench.harness import Context, Metric, Repetition, Sample, ratio_at_least
from broseph.ingress import bullmq as ingress_bullmq
from broseph.settings import Settings

number = 5
title = "BullMQ ingress → Postgres records"
CONCURRENCY = 10
# Ours runs with the ingress's defaults (an INGRESS_* variable in the environment must not
# change what is measured): jobs held per queue, jobs per Postgres statement.
HELD: int = Settings.model_fields["ingress_concurrency"].default
BATCH: int = Settings.model_fields["ingress_batch_size"].default
metrics = (
    Metric(
        "ingress",
        "(5) BullMQ ingress → Postgres job records (commit, then ack)",
        "jobs/s",
        baseline="raw Python bullmq Worker, no-op processor",
        target=ratio_at_least(1.0),
    ),
    Metric(
        "ingress_held",
        "(5) BullMQ ingress, vs the raw worker holding as many jobs",
        "jobs/s",
        baseline=f"raw Python bullmq Worker, no-op processor, concurrency {HELD}",
    ),
    Metric(
        "ingress_cpu",
        "(5) CPU per job of this process only (the ingress or the raw worker, start to stop;"
        " Postgres backends and Redis not counted)",
        "ms",
        baseline=f"raw Python bullmq Worker, no-op processor, concurrency {CONCURRENCY}",
        decimals=3,
    ),
)


async def fill(ctx: Context, queue_name: str, n: int) -> None:
    queue = bullmq.Queue(queue_name, {"connection": ctx.redis_url})
    try:
        for start in range(0, n, 500):
            await queue.addBulk(
                [
                    {
                        "name": "ProcessEngagement",
                        "data": {"groupId": str(uuid.uuid4()), "localDate": "2026-03-01"},
                    }
                    for _ in range(start, min(start + 500, n))
                ]
            )
    finally:
        await queue.close()


async def obliterate(ctx: Context, queue_name: str) -> None:
    queue = bullmq.Queue(queue_name, {"connection": ctx.redis_url})
    try:
        await queue.obliterate(force=True)
    finally:
        await queue.close()


async def ours(ctx: Context, queue_name: str, n: int) -> float:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=ctx.db.url,
        redis_url=ctx.redis_url,
        ingress_concurrency=HELD,
        ingress_batch_size=BATCH,
    )
    ingress = ingress_bullmq.BullMQIngress(settings, queues=[queue_name])
    await ingress.start()
    deadline = time.monotonic() + 600
    try:
        async with await ctx.db.connect(autocommit=True) as conn:
            while True:
                cur = await conn.execute(
                    "SELECT count(*), extract(epoch FROM max(created_at) - min(created_at)),"
                    " count(*) FILTER (WHERE created_at = (SELECT max(created_at)"
                    " FROM broseph.job_records)) FROM broseph.job_records WHERE source = 'bullmq'"
                )
                row = await cur.fetchone()
                assert row is not None
                if int(row[0]) >= n:
                    span, last = float(row[1]), int(row[2])
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"ingress: {row[0]} of {n} records after 600 s")
                await asyncio.sleep(0.1)
    finally:
        await ingress.stop()
    outcomes = (await ingress.health()).outcomes
    if outcomes.get("enqueued") != n or set(outcomes) - {"enqueued"}:
        raise RuntimeError(f"ingress outcomes {outcomes} for {n} jobs")
    return (n - last) / span


async def raw(ctx: Context, queue_name: str, n: int, concurrency: int) -> float:
    seen: list[float] = []
    done = asyncio.Event()

    async def processor(job: Any, token: str) -> None:
        seen.append(time.time())
        if len(seen) >= n:
            done.set()

    worker = bullmq.Worker(
        queue_name,
        processor,
        {
            "connection": ingress_bullmq.worker_redis_url(ctx.redis_url),
            "concurrency": concurrency,
            "autorun": False,
            "removeOnComplete": ingress_bullmq.KEEP_COMPLETED,
            "removeOnFail": ingress_bullmq.KEEP_FAILED,
        },
    )
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(done.wait(), timeout=600)
    finally:
        await worker.close()
        await asyncio.gather(running, return_exceptions=True)
    return (n - 1) / (max(seen) - min(seen))


async def rounds(ctx: Context) -> AsyncIterator[Repetition]:
    n = ctx.size(full=3_000, smoke=100)
    ctx.note(
        f"(5) {n:,} BullMQ jobs per side per repetition; ours holds {HELD} jobs (the defaults:"
        f" batches of {BATCH}), the raw worker runs at concurrency {CONCURRENCY} and {HELD}; the"
        " ingress runs in the bench process through its public API (BullMQIngress.start/stop)."
    )
    sides = ("ours", "raw", "raw_held")
    for rep in range(ctx.reps):
        await ctx.db.reset()
        figures: dict[str, float] = {}
        cpu_ms: dict[str, float] = {}
        for side in sides if rep % 2 == 0 else sides[::-1]:
            name = f"bench-ingress-{side}-{uuid.uuid4().hex[:10]}"
            try:
                await fill(ctx, name, n)
                # All of this process's threads: the consumer, its poller, start and stop.
                started = time.process_time()
                if side == "ours":
                    figures[side] = await ours(ctx, name, n)
                else:
                    held = HELD if side == "raw_held" else CONCURRENCY
                    figures[side] = await raw(ctx, name, n, held)
                cpu_ms[side] = (time.process_time() - started) * 1000 / n
            finally:
                await obliterate(ctx, name)
        yield {
            "ingress": Sample(figures["ours"], figures["raw"]),
            "ingress_held": Sample(figures["ours"], figures["raw_held"]),
            "ingress_cpu": Sample(cpu_ms["ours"], cpu_ms["raw"]),
        }
