"""
(7) The physical line: what this Postgres does with the smallest durable transaction.

pgbench runs single-row INSERT transactions (`INSERT INTO bench_line (v) VALUES (1)`, one per
transaction, so one WAL flush each) on the bench database for a fixed time, with 1 and with 10
clients. In the same round, broseph's transactional enqueue runs the same way (1 and 10
connections, COMMIT each) for the same time: its ratio to the line says how much of what the
server can commit the enqueue contract uses.
"""

from __future__ import annotations

import asyncio
import datetime
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from bench import machine, workers
from bench.harness import Context, Metric, Repetition, Sample
from broseph import enqueue

number = 7
title = "pgbench single-row INSERT (the physical line)"
QUEUE = "bench_line"
DAY = datetime.date(2026, 3, 1)
metrics = (
    Metric("line_1", "(7) pgbench single-row INSERT, 1 client", "tx/s"),
    Metric("line_10", "(7) pgbench single-row INSERT, 10 clients", "tx/s"),
    Metric(
        "enqueue_1",
        "(7) broseph.enqueue + COMMIT, 1 connection, vs the line",
        "jobs/s",
        baseline="pgbench INSERT, 1 client (same round)",
    ),
    Metric(
        "enqueue_10",
        "(7) broseph.enqueue + COMMIT, 10 connections, vs the line",
        "jobs/s",
        baseline="pgbench INSERT, 10 clients (same round)",
    ),
)


async def pgbench(ctx: Context, clients: int, seconds: int, script: Path) -> float:
    binary = machine.pgbench_path()
    if binary is None:
        raise RuntimeError("pgbench not found (PATH or /usr/lib/postgresql/15/bin)")
    proc = await asyncio.create_subprocess_exec(
        binary,
        "--no-vacuum",
        f"--file={script}",
        f"--time={seconds}",
        f"--client={clients}",
        f"--jobs={min(clients, 2)}",
        ctx.db.url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    found = re.search(rb"tps = ([0-9.]+) \(without initial connection time\)", out)
    if proc.returncode or not found:
        raise RuntimeError(f"pgbench failed ({proc.returncode}): {err.decode()[-500:]}")
    return float(found.group(1))


async def enqueue_for(ctx: Context, connections: int, seconds: float) -> float:
    """
    broseph.enqueue + COMMIT in a loop on each connection for `seconds`; jobs/s over all.
    """
    counts = [0] * connections

    async def loop(i: int, stop_at: float) -> None:
        async with await ctx.db.connect() as conn:
            while time.perf_counter() < stop_at:
                await enqueue.enqueue(conn, workers.noop_payload(QUEUE, uuid.uuid4(), DAY))
                await conn.commit()
                counts[i] += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(i, started + seconds) for i in range(connections)))
    return sum(counts) / (time.perf_counter() - started)


async def rounds(ctx: Context) -> AsyncIterator[Repetition]:
    seconds = ctx.size(full=5, smoke=1)
    ctx.note(
        f"(7) {seconds} s per measurement: pgbench --no-vacuum --file=<INSERT> --time={seconds}"
        " --client=1|10 --jobs=1|2 <bench database>."
    )
    script = ctx.workdir / "insert.sql"
    script.write_text("INSERT INTO bench_line (v) VALUES (1);\n")
    await ctx.db.register(workers.noop_type(QUEUE))
    async with await ctx.db.connect(autocommit=True) as conn:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_line (id bigserial PRIMARY KEY, v int)"
        )
    try:
        for _ in range(ctx.reps):
            await ctx.db.reset()
            line_1 = await pgbench(ctx, 1, seconds, script)
            ours_1 = await enqueue_for(ctx, 1, seconds)
            line_10 = await pgbench(ctx, 10, seconds, script)
            ours_10 = await enqueue_for(ctx, 10, seconds)
            yield {
                "line_1": Sample(line_1),
                "line_10": Sample(line_10),
                "enqueue_1": Sample(ours_1, line_1),
                "enqueue_10": Sample(ours_10, line_10),
            }
    finally:
        await ctx.db.reset()  # no jobs left for a later benchmark's workers
        async with await ctx.db.connect(autocommit=True) as conn:
            await conn.execute("DROP TABLE IF EXISTS bench_line")
