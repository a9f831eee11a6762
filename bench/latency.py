"""
(4) Pick-up latency of an idle worker: COMMIT → handler start.

200 jobs, 20 ms apart, each in its own transaction. The producer takes `time.time()` right after
COMMIT returns; the handler sends `time.time()` by UDP the moment it starts (for ours that is
after the record is loaded and its params validated — the whole pick-up path). Same machine, same
clock. Baseline: the raw procrastinate no-op task, measured the same way in the same round.
"""

from __future__ import annotations

import asyncio
import datetime
import statistics
import time
import uuid
from collections.abc import AsyncIterator

from bench import accounting, cpu, workers
from bench.harness import Context, Metric, Repetition, Sample, at_most, both, ratio_at_most
from broseph import enqueue

number = 4
title = "Pick-up latency of an idle worker"
DAY = datetime.date(2026, 3, 1)
GAP = 0.020
QUEUE = {"ours": "bench_lat_ours", "raw": "bench_lat_raw"}
metrics = (
    Metric(
        "p50",
        "(4) pick-up latency p50",
        "ms",
        "raw procrastinate",
        both(at_most(5, "ms"), ratio_at_most(1.1)),
        2,
    ),
    Metric("p95", "(4) pick-up latency p95", "ms", "raw procrastinate", None, 2),
    Metric("p99", "(4) pick-up latency p99", "ms", "raw procrastinate", at_most(20, "ms"), 2),
    Metric(
        "cpu",
        "(4) CPU per job of the idle worker: its process + its Postgres backends",
        "ms",
        "raw procrastinate",
        None,
        2,
    ),
    Metric(
        "trips",
        "(4) round trips per job (worker ↔ Postgres)",
        "count",
        "raw procrastinate",
        None,
        2,
    ),
)


class Beacon(asyncio.DatagramProtocol):
    """
    Receives "<job key> <time>" from handlers.
    """

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.arrived = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        key, at = data.decode().split()
        self.started[key] = float(at)
        self.arrived.set()


async def produce(ctx: Context, kind: str, n: int) -> dict[str, float]:
    """
    n jobs, one transaction each, GAP apart; {job key: time COMMIT returned}.
    """
    committed: dict[str, float] = {}
    queue = QUEUE[kind]
    async with await ctx.db.connect() as conn:
        raw_task = workers.raw_app(ctx.db.url).tasks[workers.RAW_TASK]
        for _ in range(n):
            group = uuid.uuid4()
            if kind == "ours":
                key = str(await enqueue.enqueue(conn, workers.noop_payload(queue, group, DAY)))
            else:
                job_id = await raw_task.configure(connection=conn, queue=queue).defer_async(
                    group_id=str(group), local_date=DAY.isoformat()
                )
                key = str(job_id)
            await conn.commit()
            committed[key] = time.time()
            await asyncio.sleep(GAP)
    return committed


async def latencies(
    ctx: Context, kind: str, n: int, beacon: Beacon, worker: workers.WorkerProcess
) -> tuple[list[float], accounting.Account]:
    beacon.started.clear()
    interval = await accounting.begin(
        ctx,
        [cpu.Group(kind, (worker.pid,), (worker.app_name,))],
        counters=[worker.round_trips_file],
    )
    committed = await produce(ctx, kind, n)
    deadline = time.monotonic() + 30
    while not committed.keys() <= beacon.started.keys():
        if time.monotonic() > deadline:
            missing = len(committed.keys() - beacon.started.keys())
            raise TimeoutError(f"{kind}: {missing} of {n} jobs never started")
        beacon.arrived.clear()
        try:
            await asyncio.wait_for(beacon.arrived.wait(), timeout=1)
        except TimeoutError:
            pass
    # Every handler has started; its job finishes within milliseconds.
    await asyncio.sleep(0.2)
    account = await interval.end(n, settle=False, db=False)
    return [(beacon.started[k] - committed[k]) * 1000 for k in committed], account


def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


async def rounds(ctx: Context) -> AsyncIterator[Repetition]:
    n = ctx.size(full=200, smoke=30)
    ctx.note(
        f"(4) {n} jobs {GAP * 1000:.0f} ms apart per side per repetition; ours runs with the"
        " default settings (concurrency 10, LISTEN/NOTIFY)."
    )
    loop = asyncio.get_running_loop()
    transport, beacon = await loop.create_datagram_endpoint(Beacon, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    await ctx.db.register(workers.noop_type(QUEUE["ours"]))
    live = [
        workers.WorkerProcess(
            kind,
            ctx.db.url,
            [QUEUE[kind]],
            concurrency=10,
            log_file=ctx.workdir / f"worker-latency-{kind}.log",
            beacon=f"127.0.0.1:{port}",
        )
        for kind in ("ours", "raw")
    ]
    try:
        await workers.start_all(ctx.db.url, live)
        by_kind = dict(zip(("ours", "raw"), live, strict=True))
        for kind in ("ours", "raw"):  # warm-up: first jobs pay imports and plans
            await latencies(ctx, kind, 5, beacon, by_kind[kind])
        for rep in range(ctx.reps):
            await ctx.db.reset()
            found: dict[str, list[float]] = {}
            acc: dict[str, accounting.Account] = {}
            for kind in ("ours", "raw") if rep % 2 == 0 else ("raw", "ours"):
                found[kind], acc[kind] = await latencies(ctx, kind, n, beacon, by_kind[kind])
            figures = {
                f"p{p}": Sample(percentile(found["ours"], p), percentile(found["raw"], p))
                for p in (50, 95, 99)
            }
            figures["cpu"] = Sample(acc["ours"].cpu_ms("ours"), acc["raw"].cpu_ms("raw"))
            figures["trips"] = Sample(
                acc["ours"].round_trips_per_job, acc["raw"].round_trips_per_job
            )
            yield figures
    finally:
        await workers.stop_all(live)
        transport.close()
