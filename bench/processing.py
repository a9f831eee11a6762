"""
(3) Processing no-op jobs: broseph's full lifecycle vs a raw procrastinate task and PgQueuer.

Ours: the bench no-op job type run by broseph's worker app — fetch (the trigger moves the record
to processing), load the record, validate its params, `job_start` log, one `progress()` update,
`job_complete` log and metrics, finish (the trigger moves the record to completed). Baseline: a
stock procrastinate App whose task does nothing; second baseline: PgQueuer's default worker
(bench/pgq.py). Every configuration is its own worker process (each on its own queue, all
started once); a round enqueues N jobs in one transaction and times COMMIT → the last
`succeeded` event (procrastinate_events, the database's clock; PgQueuer: its queue table empty):
jobs/s. Per job (bench/accounting.py): CPU of the configuration's worker process(es) and their own
Postgres backends, round trips, the bench database's transactions and WAL.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from bench import accounting, cpu, pgq, workers
from bench.database import BenchDatabase
from bench.harness import (
    Context,
    Metric,
    Repetition,
    Sample,
    at_most,
    ratio_at_least,
    ratio_at_most,
)
from broseph import enqueue

number = 3
title = "Processing no-op jobs through the full lifecycle"
DAY = datetime.date(2026, 3, 1)
RAW = "raw procrastinate no-op task, same"
PGQ = "PgQueuer default worker (batch 10), no-op, same"
BACKLOG = "in a backlog (all enqueued, then drained)"
metrics = (
    Metric("c1", "(3) no-op jobs through the lifecycle, 1 process, concurrency 1", "jobs/s", RAW),
    Metric(
        "c10",
        "(3) no-op jobs through the lifecycle, 1 process, concurrency 10",
        "jobs/s",
        RAW,
        target=ratio_at_least(2.0),
    ),
    Metric(
        "c10_pgq",
        "(3) no-op jobs through the lifecycle, 1 process, concurrency 10, vs PgQueuer",
        "jobs/s",
        PGQ,
        target=ratio_at_least(0.5),
    ),
    Metric(
        "two_processes",
        "(3) 2 worker processes × concurrency 10 (ours)",
        "jobs/s",
        baseline="1 process × concurrency 10 (ours, same round)",
        target=ratio_at_least(1.5),
    ),
    Metric(
        "uvloop_c10",
        "(3) no-op jobs, concurrency 10, ours on uvloop",
        "jobs/s",
        baseline="ours on asyncio's loop, concurrency 10, same round",
    ),
    Metric(
        "cpu_uvloop_c10",
        "(3) CPU per job at concurrency 10, ours on uvloop (worker process + its backends)",
        "ms",
        baseline="ours on asyncio's loop, same round",
        decimals=2,
    ),
    Metric(
        "cpu_c10",
        "(3) CPU per job at concurrency 10: the worker process + its Postgres backends",
        "ms",
        RAW,
        target=ratio_at_most(0.5),
        decimals=2,
    ),
    Metric(
        "cpu_c10_pgq",
        "(3) CPU per job at concurrency 10, vs PgQueuer (same accounting)",
        "ms",
        PGQ,
        decimals=2,
    ),
    Metric(
        "trips_c10",
        "(3) round trips per job (worker ↔ Postgres), concurrency 10",
        "count",
        RAW,
        decimals=2,
    ),
    Metric(
        "xacts_c10",
        f"(3) Postgres transactions per job {BACKLOG}, concurrency 10",
        "count",
        RAW,
        target=at_most(1),
        decimals=2,
    ),
    Metric(
        "wal_c10",
        f"(3) WAL per job {BACKLOG}, concurrency 10 (this database's records, full-page"
        " images apart)",
        "bytes",
        RAW,
        target=ratio_at_most(1.2),
    ),
    Metric(
        "busy_2p",
        "(3) CPU busy during the 2-process run (share of all cores: load, context)",
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
    loop: str = "asyncio"

    @property
    def queue(self) -> str:
        return f"bench_{self.key}"


CONFIGS = (
    Config("ours_c1", "ours", 1, 1),
    Config("raw_c1", "raw", 1, 1),
    Config("ours_c10", "ours", 10, 1),
    Config("raw_c10", "raw", 10, 1),
    Config("pgq_c10", "pgq", 10, 1),
    Config("ours_2p", "ours", 10, 2),
    # Whether uvloop would make the worker faster (an option, measured, not adopted unless so).
    Config("ours_uv_c10", "ours", 10, 1, loop="uvloop"),
)
# The configurations whose transactions and WAL are read (each read waits for the counters).
ACCOUNTED = {"ours_c10", "raw_c10", "pgq_c10"}


async def enqueue_noops(db: BenchDatabase, kind: str, queue: str, n: int) -> float:
    """
    N no-op jobs in one transaction (ours through enqueue_many, raw through batch_defer_async,
    PgQueuer through its list form of enqueue); returns the time.time() at which COMMIT returned.
    """
    groups = [uuid.uuid4() for _ in range(n)]
    if kind == "pgq":
        # PgQueuer 1.x wants its connection in autocommit: one transaction per slice.
        day = DAY.isoformat()
        blobs = [pgq.payload(g, day) for g in groups]
        async with await db.connect(autocommit=True) as conn:
            for start in range(0, n, enqueue.CHUNK_SIZE):
                await pgq.enqueue_batch(conn, blobs[start : start + enqueue.CHUNK_SIZE])
        return time.time()
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
) -> tuple[float, int]:
    """
    Wait until the queue's N jobs have succeeded; (the time of the last success (DB clock),
    statements this poller ran). Any failed job makes the round invalid.
    """
    deadline = time.monotonic() + within
    statements = 1
    async with await db.connect(autocommit=True) as conn:
        while True:
            statements += 1
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
        return float(last[0]), statements


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
    account: accounting.Account


async def measure(
    ctx: Context,
    config: Config,
    n: int,
    live: list[workers.WorkerProcess],
    *,
    warm_up: bool = False,
    background: float = 0.0,
) -> Measured:
    await ctx.db.reset()
    # Only this configuration's workers count (the others idle on other queues).
    mine = [w for w in live if w.queues == [config.queue]]
    group = cpu.Group(config.key, tuple(w.pid for w in mine), tuple(w.app_name for w in mine))
    interval = await accounting.begin(ctx, [group], counters=[w.round_trips_file for w in mine])
    committed = await enqueue_noops(ctx.db, config.kind, config.queue, n)
    if config.kind == "pgq":
        finished, polls = await pgq.wait_drained(ctx.db, within=600, live=live)
    else:
        finished, polls = await wait_done(ctx.db, config.queue, n, within=600, live=live)
    account = await interval.end(
        n,
        settle=True,
        harness_xacts=polls + accounting.CONNECTION_XACTS,
        db=config.key in ACCOUNTED and not warm_up,
        background=background,
    )
    if config.kind == "ours":
        await check_records(ctx.db, config.queue, n)
    return Measured(n / (finished - committed), account)


async def rounds(ctx: Context) -> AsyncIterator[Repetition]:
    sizes = {1: ctx.size(full=1_000, smoke=40), 10: ctx.size(full=10_000, smoke=100)}
    ctx.note(
        f"(3) {sizes[1]:,} jobs per round at concurrency 1, {sizes[10]:,} at concurrency 10"
        " (also for 2 processes and PgQueuer), enqueued in one transaction: the worker drains"
        " a backlog. Workers log JSON at INFO, as in production (PgQueuer: its default logging)."
        " Per job: CPU of the worker process and of its own Postgres backends"
        " (application_name), round trips counted in the worker's psycopg, transactions and"
        " WAL of the bench database (the producer's one enqueue transaction included)."
    )
    await pgq.install(ctx.db)
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
                extra={"loop": config.loop},
            )
            for i in range(config.processes)
        ]
    try:
        await workers.start_all(ctx.db.url, live)
        # One small warm-up round per configuration (imports, plans, pools).
        for config in CONFIGS:
            await measure(ctx, config, 20, live, warm_up=True)
        assert ctx.stats is not None
        background = await ctx.stats.background((accounting.WORKER_APP,))
        ctx.note(
            f"(3) the {len(live)} idle workers run {background:.1f} transactions/s between them"
            " (polling, heartbeats): taken out of each measured interval's count."
        )
        for rep in range(ctx.reps):
            got: dict[str, Measured] = {}
            order = CONFIGS if rep % 2 == 0 else tuple(reversed(CONFIGS))
            for config in order:
                got[config.key] = await measure(
                    ctx, config, sizes[config.concurrency], live, background=background
                )
            ours, raw, other = (got[k].account for k in ("ours_c10", "raw_c10", "pgq_c10"))
            ctx.note(
                f"(3) round {rep + 1}: "
                + "; ".join(
                    a.describe(k)
                    for k, a in (("ours_c10", ours), ("raw_c10", raw), ("pgq_c10", other))
                )
            )
            yield {
                "c1": Sample(got["ours_c1"].rate, got["raw_c1"].rate),
                "c10": Sample(got["ours_c10"].rate, got["raw_c10"].rate),
                "c10_pgq": Sample(got["ours_c10"].rate, got["pgq_c10"].rate),
                "two_processes": Sample(got["ours_2p"].rate, got["ours_c10"].rate),
                "cpu_c10": Sample(ours.cpu_ms("ours_c10"), raw.cpu_ms("raw_c10")),
                "cpu_c10_pgq": Sample(ours.cpu_ms("ours_c10"), other.cpu_ms("pgq_c10")),
                "trips_c10": Sample(ours.round_trips_per_job, raw.round_trips_per_job),
                "xacts_c10": Sample(ours.xacts_per_job, raw.xacts_per_job),
                "wal_c10": Sample(ours.wal_per_job, raw.wal_per_job),
                "uvloop_c10": Sample(got["ours_uv_c10"].rate, got["ours_c10"].rate),
                "cpu_uvloop_c10": Sample(
                    got["ours_uv_c10"].account.cpu_ms("ours_uv_c10"), ours.cpu_ms("ours_c10")
                ),
                "busy_2p": Sample(
                    100 * got["ours_2p"].account.cpu.busy_share, 100 * ours.cpu.busy_share
                ),
            }
    finally:
        await workers.stop_all(live)
