"""
(2) The daily fan-out: one GeneratePrompt job per group for 100,000 groups, in one transaction.

Ours: `broseph.enqueue.enqueue_many(conn, payloads, idempotency_keys=…)` — job records with
idempotency keys, params validated by the SQL contract, per-group locks, then the queue rows (in
statements of `enqueue.CHUNK_SIZE`). Baseline: procrastinate's `batch_defer_async` of the same
arguments on the caller's connection (same slices), queue rows only. Inputs are built before
the clock starts on both sides; the clock stops when COMMIT returns: jobs/s. The queue table's
own line — the same number of rows generated inside Postgres in one statement, with
procrastinate's stock per-row insert triggers put back for it (migrations/0028 replaces them) —
is a second baseline: what procrastinate's table takes at all on this machine. PgQueuer's batch
enqueue (lists, same slices) is the third. "daily" is the production fan-out itself
(`generate_prompt.fan_out_on`, what the `prompt_fanout` periodic task runs): the same number of
groups in public.groups, all due; which are due, their payloads, keys and records are all decided
inside Postgres, one statement per chunk of FANOUT_CHUNK_SIZE (its default), each chunk its own
transaction; the groups are inserted before the clock starts.
Per job (bench/accounting.py): the producer's CPU (this process and its backend), the bench
database's transactions and WAL.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import procrastinate
import psycopg

from bench import accounting, pgq, workers
from bench.harness import Context, Metric, Repetition, Sample, at_least, both, ratio_at_least
from broseph import enqueue, idempotency, migrate
from broseph.jobs import generate_prompt
from broseph.jobs.generate_prompt import GeneratePrompt
from broseph.settings import Settings

number = 2
title = "Daily fan-out over 100,000 groups"
DAY = datetime.date(2026, 3, 1)
RAW = "procrastinate batch_defer_async, same slices"
LINE = (
    "the queue table's own line: N rows in ONE INSERT … SELECT into procrastinate_jobs, no"
    " Python, no records (procrastinate's stock per-row triggers on)"
)
# The production fan-out's chunk: FANOUT_CHUNK_SIZE's default.
DAILY_CHUNK = int(Settings.model_fields["fanout_chunk_size"].default)
# Due at the tick: 12:00 UTC, prompt hour 8, every bench group in UTC.
TICK = datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.UTC)
STOCK_TRIGGERS = (
    "procrastinate_jobs_notify_queue_job_inserted_v1",
    "procrastinate_trigger_status_events_insert_v1",
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
        "daily_line",
        "(2) the daily fan-out in Postgres (prompt_fanout, records + keys, chunks of"
        f" {DAILY_CHUNK:,}, a transaction each), vs the queue table's own line",
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


def daily(url: str, groups: list[uuid.UUID]) -> Work:
    """
    The `prompt_fanout` periodic task's own work, on the producer's connection; the groups are
    in public.groups already (`_install_groups`, before the clock).
    """

    async def work(conn: psycopg.AsyncConnection[Any]) -> None:
        sent = await generate_prompt.fan_out_on(conn, TICK, hour=8, chunk_size=DAILY_CHUNK)
        assert sent == len(groups), f"every due group gets its job ({sent} of {len(groups)})"

    return work


SIDES = {"ours": ours, "raw": raw, "pgq": pgqueuer, "line": line, "daily": daily}


async def _install_groups(ctx: Context, groups: list[uuid.UUID]) -> None:
    async with await ctx.db.connect(autocommit=True) as conn:
        await conn.execute("TRUNCATE public.groups CASCADE")
        await conn.execute(
            "INSERT INTO public.groups (id, name, time_zone)"
            " SELECT g, 'bench group', 'UTC' FROM unnest(%s::uuid[]) AS g",
            (groups,),
        )
        await conn.execute("ANALYZE public.groups")


async def _stock_triggers(ctx: Context, *, on: bool) -> None:
    """
    For the line: procrastinate's own per-row insert triggers, as its schema creates them, in
    place of broseph's statement-level one (migrations/0028) — and back again after, by the same
    file `broseph migrate` re-applies.
    """
    async with await ctx.db.connect(autocommit=True) as conn:
        if on:
            schema = (Path(procrastinate.__file__).parent / "sql" / "schema.sql").read_text()
            for name in STOCK_TRIGGERS:
                found = re.search(rf"CREATE TRIGGER {name}\b.*?;", schema, re.DOTALL)
                assert found, f"procrastinate's schema no longer creates {name}"
                await conn.execute(found.group(0).encode())
            await conn.execute("DROP TRIGGER broseph_queue_rows_inserted ON procrastinate_jobs")
        else:
            always = {a.name: a for a in migrate.load_always()}
            async with conn.transaction():
                await conn.execute(always["always/procrastinate.sql"].sql.encode())


async def rounds(ctx: Context) -> AsyncIterator[Repetition]:
    n = ctx.size(full=100_000, smoke=2_000)
    ctx.note(
        f"(2) {n:,} groups per side per repetition (slices of {enqueue.CHUNK_SIZE:,});"
        " inputs built before the clock starts; per job: the producer's CPU (this process and"
        " its backend), transactions and WAL of the bench database."
    )
    await pgq.install(ctx.db)
    # Warm up every path (plpgsql compiles on first call, psycopg learns the types).
    for side, make in SIDES.items():
        await _run(ctx, side, make, [uuid.uuid4() for _ in range(50)])
    for rep in range(ctx.reps):
        rate: dict[str, float] = {}
        acc: dict[str, accounting.Account] = {}
        order = list(SIDES) if rep % 2 == 0 else list(reversed(SIDES))
        for side in order:
            elapsed, acc[side] = await _run(
                ctx, side, SIDES[side], [uuid.uuid4() for _ in range(n)]
            )
            rate[side] = n / elapsed
        ctx.note(
            f"(2) round {rep + 1}: "
            + "; ".join(acc[k].describe("producer").replace("producer", k, 1) for k in SIDES)
        )
        yield {
            "fanout": Sample(rate["ours"], rate["raw"]),
            "fanout_line": Sample(rate["ours"], rate["line"]),
            "daily_line": Sample(rate["daily"], rate["line"]),
            "fanout_pgq": Sample(rate["ours"], rate["pgq"]),
            "cpu": Sample(acc["ours"].cpu_ms("producer"), acc["raw"].cpu_ms("producer")),
            "wal": Sample(acc["ours"].wal_per_job, acc["raw"].wal_per_job),
        }


async def _run(
    ctx: Context, side: str, make: Any, groups: list[uuid.UUID]
) -> tuple[float, accounting.Account]:
    await ctx.db.reset()
    if side == "daily":
        await _install_groups(ctx, groups)
    if side == "line":
        await _stock_triggers(ctx, on=True)
    try:
        return await accounting.in_process(ctx, make(ctx.db.url, groups), len(groups))
    finally:
        if side == "line":
            await _stock_triggers(ctx, on=False)
