"""
(3) Processing no-op jobs: broseph's full lifecycle vs a raw procrastinate task.

Ours: the bench no-op job type run by broseph's worker app — fetch (the trigger moves the record
to processing), load the record, validate its params, `job_start` log, one `progress()` update,
`job_complete` log and metrics, finish (the trigger moves the record to completed). Baseline: a
stock procrastinate App whose task does nothing. Every configuration is its own worker process
(each on its own queue, all started once); a round enqueues N jobs in one transaction and times
COMMIT → the last `succeeded` event (procrastinate_events, the database's clock): jobs/s.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from bench import cpu, workers
from bench.database import BenchDatabase
from bench.harness import Context, Metric, Repetition, Sample, ratio_at_least
from broseph import enqueue

number = 3
title = "Processing no-op jobs through the full lifecycle"
DAY = datetime.date(2026, 3, 1)
metrics = (
    Metric(
        "c1",
        "(3) no-op jobs through the lifecycle, 1 process, concurrency 1",
        "jobs/s",
        baseline="raw procrastinate no-op task, same",
    ),
    Metric(
        "c10",
        "(3) no-op jobs through the lifecycle, 1 process, concurrency 10",
        "jobs/s",
        baseline="raw procrastinate no-op task, same",
        target=ratio_at_least(0.9),
    ),
    Metric(
        "two_processes",
        "(3) 2 worker processes × concurrency 10 (ours)",
        "jobs/s",
        baseline="1 process × concurrency 10 (ours, same round)",
        target=ratio_at_least(1.5),
    ),
    Metric(
        "cpu_c10",
        "(3) CPU per job at concurrency 10: worker + Postgres",
        "ms",
        baseline="raw procrastinate no-op task, same",
        decimals=2,
    ),
    Metric(
        "busy_2p",
        "(3) CPU busy during the 2-process run (share of all cores)",
        "%",
        baseline="1 process × concurrency 10 (ours)",
        decimals=0,
    ),
)


@dataclass(frozen=True)
class Config:
    key: str
    kind: str
    concurrency: int
    processes: int

    @property
    def queue(self) -> str:
        return f"bench_{self.key}"


CONFIGS = (
    Config("ours_c1", "ours", 1, 1),
    Config("raw_c1", "raw", 1, 1),
    Config("ours_c10", "ours", 10, 1),
    Config("raw_c10", "raw", 10, 1),
    Config("ours_2p", "ours", 10, 2),
)


async def enqueue_noops(db: BenchDatabase, kind: str, queue: str, n: int) -> float:
    """
    N no-op jobs in one transaction (ours through enqueue_many, raw through batch_defer_async);
    returns the time.time() at which COMMIT returned.
    """
    groups = [uuid.uuid4() for _ in range(n)]
    async with await db.connect() as conn:
        if kind == "ours":
            payloads = [workers.noop_payload(queue, g, DAY) for g in groups]
            await enqueue.enqueue_many(conn, payloads, source="bench")
        else:
            app = workers.raw_app(db.url, concurrency=1)
            task = app.tasks[workers.RAW_TASK].configure(connection=conn, queue=queue)
            args: list[dict[str, Any]] = [
                {"group_id": str(g), "local_date": DAY.isoformat()} for g in groups
            ]
            for start in range(0, n, enqueue.CHUNK_SIZE):
                await task.batch_defer_async(*args[start : start + enqueue.CHUNK_SIZE])
        await conn.commit()
        return time.time()


async def wait_done(
    db: BenchDatabase, queue: str, n: int, *, within: float, live: list[workers.WorkerProcess]
) -> float:
    """
    Wait until the queue's N jobs have succeeded; the time of the last success (DB clock). Any
    failed job makes the round invalid.
    """
    deadline = time.monotonic() + within
    async with await db.connect(autocommit=True) as conn:
        while True:
            cur = await conn.execute(
                "SELECT count(*) FILTER (WHERE status = 'succeeded'),"
                " count(*) FILTER (WHERE status NOT IN ('todo', 'doing', 'succeeded'))"
                " FROM procrastinate_jobs WHERE queue_name = %s",
                (queue,),
            )
            row = await cur.fetchone()
            assert row is not None
            done, bad = int(row[0]), int(row[1])
            if bad:
                raise RuntimeError(f"{bad} jobs on {queue} did not succeed")
            if done >= n:
                break
            for w in live:
                w.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{queue}: {done} of {n} jobs done after {within:g} s")
            await asyncio.sleep(0.05)
        cur = await conn.execute(
            "SELECT extract(epoch FROM max(e.at))::float8 FROM procrastinate_events e"
            " JOIN procrastinate_jobs j ON j.id = e.job_id"
            " WHERE j.queue_name = %s AND e.type = 'succeeded'",
            (queue,),
        )
        last = await cur.fetchone()
        assert last is not None
        return float(last[0])


async def check_records(db: BenchDatabase, queue: str, n: int) -> None:
    """
    Every record of the round says completed, with progress 100 (the full lifecycle ran).
    """
    async with await db.connect(autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM broseph.job_records WHERE job_type = %s"
            " AND status = 'completed' AND progress = 100",
            (workers.noop_type(queue).name,),
        )
        row = await cur.fetchone()
    if not row or int(row[0]) != n:
        raise RuntimeError(f"{queue}: {row[0] if row else 0} of {n} records completed")


@dataclass(frozen=True)
class Measured:
    rate: float
    # CPU per job (s) of this configuration's workers plus Postgres, and the machine's busy share.
    cpu_per_job: float
    busy: float


async def measure(
    ctx: Context, config: Config, n: int, live: list[workers.WorkerProcess]
) -> Measured:
    await ctx.db.reset()
    # Only this configuration's workers count as "workers" (the others idle on other queues).
    pids = [w.pid for w in live if w.queues == [config.queue]]
    meter = cpu.CpuMeter()
    before = meter.snapshot(pids)
    committed = await enqueue_noops(ctx.db, config.kind, config.queue, n)
    finished = await wait_done(ctx.db, config.queue, n, within=600, live=live)
    used = meter.usage(before, pids)
    if config.kind == "ours":
        await check_records(ctx.db, config.queue, n)
    return Measured(n / (finished - committed), (used.workers + used.postgres) / n, used.busy_share)


async def rounds(ctx: Context) -> AsyncIterator[Repetition]:
    sizes = {1: ctx.size(full=1_000, smoke=40), 10: ctx.size(full=4_000, smoke=100)}
    ctx.note(
        f"(3) {sizes[1]:,} jobs per round at concurrency 1, {sizes[10]:,} at concurrency 10"
        " (also for 2 processes); worker logs JSON at INFO, as in production."
    )
    live: list[workers.WorkerProcess] = []
    for config in CONFIGS:
        if config.kind == "ours":
            await ctx.db.register(workers.noop_type(config.queue))
        live += [
            workers.WorkerProcess(
                config.kind,
                ctx.db.url,
                [config.queue],
                concurrency=config.concurrency,
                log_file=ctx.workdir / f"worker-{config.key}-{i}.log",
            )
            for i in range(config.processes)
        ]
    try:
        await workers.start_all(ctx.db.url, live)
        # One small warm-up round per configuration (imports, plans, pools).
        for config in CONFIGS:
            await measure(ctx, config, 20, live)
        for rep in range(ctx.reps):
            got: dict[str, Measured] = {}
            order = CONFIGS if rep % 2 == 0 else tuple(reversed(CONFIGS))
            for config in order:
                got[config.key] = await measure(ctx, config, sizes[config.concurrency], live)
            yield {
                "c1": Sample(got["ours_c1"].rate, got["raw_c1"].rate),
                "c10": Sample(got["ours_c10"].rate, got["raw_c10"].rate),
                "two_processes": Sample(got["ours_2p"].rate, got["ours_c10"].rate),
                "cpu_c10": Sample(
                    1000 * got["ours_c10"].cpu_per_job, 1000 * got["raw_c10"].cpu_per_job
                ),
                "busy_2p": Sample(100 * got["ours_2p"].busy, 100 * got["ours_c10"].busy),
            }
    finally:
        await workers.stop_all(live)
