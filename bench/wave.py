"""
(8) The 08:00 wave: every group's prompt becomes visible at once, and every member is told.

N groups of 6 members (one device each), each with its prompt of the day generated ahead and
waiting unpublished. The publish tick is ONE statement, broseph.publish_due_prompts (the
`prompt_publish` periodic task's, migrations/0038), that publishes all N and, in the same
transaction, calls broseph.notify_prompts_published: one DeliverGroupEvent per group
(migrations/0040). Worker processes (the production app and
services; the real firebase-admin SDK) each run one job per group: one decision query, one
statement of skips (none here), one transaction opening 6 notifications and marking 6 deliveries
sending, one `send_each_async` of 6 messages to the FCM stand-in (20 ms a reply, TLS: the workers'
aiohttp transport speaks HTTP/1.1 to it, the push line's stock firebase-admin HTTP/2), one
transaction recording the answers.

Baselines, in the same run against the same stand-in:
- the push line: raw firebase-admin `send_each_async` of the same N × 6 messages (one call per
  group), no database, no queue, in as many processes at the same concurrency
  (bench/push_line.py); the wave's wall time ÷ the push line's is the figure to keep ≤ 1.5×;
- a raw procrastinate no-op job: N of them through raw procrastinate workers of the same
  processes × concurrency, their CPU (processes + their Postgres backends) per job; the wave's
  CPU per group (workers + their backends, bench/accounting.py) ÷ that is the figure to keep ≤ 10.

Measured besides: jobs per group per day (the prompt's GeneratePrompt counted as one, plus the
deliveries), lost / duplicated pushes (every device exactly one new_prompt push), where the time
went (the publish statement, the deliveries), and per group the workers' round trips, the
database's transactions and WAL, the stand-ins' CPU and the machine's busy share as context.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg

from bench import accounting, cpu, processing, workers
from bench.harness import Context, Metric, Repetition, Sample, at_most, ratio_at_most
from broseph.jobs import generate_prompt
from tests.standins.fcm_server import FcmStandIn

number = 8
title = "The 08:00 wave"
MEMBERS = 6
FCM_LATENCY = 0.020
PROCESSES = 2
CONCURRENCY = 10
RAW_QUEUE = "bench_wave_raw"
metrics = (
    Metric(
        "wall",
        "(8) wave: publish tick → last new_prompt push",
        "s",
        baseline="push line: raw firebase-admin send_each_async of the same messages, same"
        " stand-in and concurrency, no database",
        target=ratio_at_most(1.5),
        decimals=2,
    ),
    Metric(
        "cpu_group",
        "(8) CPU per group: worker processes + their Postgres backends",
        "ms",
        baseline="CPU per raw procrastinate no-op job, same processes × concurrency",
        target=ratio_at_most(10),
        decimals=1,
    ),
    Metric(
        "jobs_group",
        "(8) jobs per group per day (GeneratePrompt + deliveries)",
        "count",
        target=at_most(2),
        decimals=2,
    ),
    Metric("faults", "(8) lost + duplicated pushes", "count", target=at_most(0)),
    Metric(
        "publish",
        "(8) where: the publish statement (N prompts published, their deliveries enqueued)",
        "s",
        decimals=2,
    ),
    Metric("pickup", "(8) where: publish committed → first delivery started", "s", decimals=2),
    Metric("deliver", "(8) where: first delivery started → last push", "s", decimals=2),
    Metric(
        "busy",
        "(8) CPU busy, tick → last push (share of all cores, every process: load, context)",
        "%",
        decimals=0,
    ),
    Metric("cpu_worker", "(8) … of which the worker processes", "ms", decimals=1),
    Metric(
        "cpu_standins",
        "(8) stand-in's CPU per group (the bench process hosting it and the tick)",
        "ms",
        decimals=1,
    ),
    Metric(
        "cpu_floor",
        "(8) CPU floor: all measured CPU (workers, their backends, stand-in, tick) ÷ cores",
        "s",
        decimals=1,
    ),
    Metric("trips", "(8) round trips per group (workers ↔ Postgres)", "count", decimals=2),
    Metric("xacts", "(8) Postgres transactions per group", "count", decimals=2),
    Metric("wal", "(8) WAL per group (this database's records, full-page images apart)", "bytes"),
)
TICK_APP = "bench-tick"


async def seed(conn: psycopg.AsyncConnection[Any], groups: int, time_zone: str) -> None:
    """
    N groups × 6 members × 1 device, in set-based statements. The members of all groups go in
    one INSERT: members added together notify nobody (no friend_joined pushes).
    """
    await conn.execute(
        "INSERT INTO public.groups (name, time_zone)"
        " SELECT 'Wave ' || i, %s FROM generate_series(1, %s) AS i",
        (time_zone, groups),
    )
    await conn.execute(
        "INSERT INTO public.profiles (display_name, time_zone)"
        " SELECT 'Member ' || i, %s FROM generate_series(1, %s) AS i",
        (time_zone, groups * MEMBERS),
    )
    await conn.execute(
        "INSERT INTO public.group_members (group_id, user_id)"
        " SELECT g.id, p.id"
        "   FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM public.groups) g"
        "   JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM public.profiles) p"
        "     ON (p.n - 1) / %s + 1 = g.n",
        (MEMBERS,),
    )
    await conn.execute(
        "INSERT INTO public.device_tokens (user_id, kind, identifier)"
        " SELECT id, 'fid', 'fid-' || id FROM public.profiles"
    )
    await conn.execute("ANALYZE")


async def time_zone_past(conn: psycopg.AsyncConnection[Any], hour: int) -> str:
    """
    A fixed-offset zone whose local time is between hour + 1 and 21:00 now, so the whole run
    stays on one local day after the prompt hour.
    """
    cur = await conn.execute(
        "SELECT name FROM pg_timezone_names WHERE name ~ '^Etc/GMT[+-][0-9]+$'"
        " AND extract(hour FROM now() AT TIME ZONE name) BETWEEN %s AND 20"
        " ORDER BY abs(extract(hour FROM now() AT TIME ZONE name) - 14) LIMIT 1",
        (hour + 1,),
    )
    row = await cur.fetchone()
    if row is None:
        raise RuntimeError("no time zone has a suitable local time")
    return str(row[0])


async def wait_for_pushes(
    fcm: FcmStandIn, expected: int, live: list[workers.WorkerProcess]
) -> None:
    deadline = time.monotonic() + 3600
    quiet_since, seen = time.monotonic(), -1
    while True:
        count = sum(1 for r in fcm.requests if _is_new_prompt(r.message))
        if count >= expected:
            return
        if count != seen:
            quiet_since, seen = time.monotonic(), count
        for w in live:
            w.check_alive()
        if time.monotonic() > deadline or time.monotonic() - quiet_since > 120:
            raise TimeoutError(f"wave: {count} of {expected} pushes, none for 120 s")
        await asyncio.sleep(0.5)


def _is_new_prompt(message: dict[str, Any]) -> bool:
    data = message.get("data")
    return isinstance(data, dict) and data.get("type") == "new_prompt"


async def stage(conn: psycopg.AsyncConnection[Any], local_date: datetime.date) -> None:
    """
    Every group's prompt of the day, generated ahead and waiting unpublished (as
    GeneratePrompt stores it before the hour): the prompts trigger announces nothing yet.
    """
    await conn.execute(
        "INSERT INTO public.prompts (group_id, local_date, text, category, source, published_at)"
        " SELECT g.id, %s, 'What made you laugh today?', 'bench', 'manual', NULL"
        "   FROM public.groups g",
        (local_date,),
    )


async def publish(conn: psycopg.AsyncConnection[Any]) -> int:
    """
    The publish tick, as the `prompt_publish` periodic task runs it: ONE statement
    (broseph.publish_due_prompts) publishes every due prompt and enqueues their deliveries in
    the same transaction. The groups are in UTC and the hour is 0: all are due.
    """
    return await generate_prompt.publish_on(conn, datetime.datetime.now(datetime.UTC), hour=0)


async def phases(conn: psycopg.AsyncConnection[Any]) -> tuple[float, float, int]:
    """
    (first delivery started, last delivery finished) — the database's clock, epoch seconds — and
    the delivery jobs; every one must have completed.
    """
    cur = await conn.execute(
        "SELECT extract(epoch FROM min(started_at))::float8,"
        " extract(epoch FROM max(finished_at))::float8, count(*)::int,"
        " count(*) FILTER (WHERE status <> 'completed')::int"
        " FROM broseph.job_records WHERE job_type = 'DeliverGroupEvent'"
    )
    row = await cur.fetchone()
    assert row is not None
    started, finished, jobs, unfinished = row
    if unfinished or not jobs:
        raise RuntimeError(f"wave: {unfinished} of {jobs} DeliverGroupEvent jobs did not complete")
    return float(started), float(finished), int(jobs)


async def job_count(conn: psycopg.AsyncConnection[Any]) -> int:
    cur = await conn.execute("SELECT count(*) FROM broseph.job_records")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


def faults(fcm: FcmStandIn, groups: int) -> int:
    pushes = [r.identifier for r in fcm.requests if _is_new_prompt(r.message)]
    lost = groups * MEMBERS - len(set(pushes))
    duplicated = len(pushes) - len(set(pushes))
    return lost + duplicated


async def push_line(fcm: FcmStandIn, groups: int) -> float:
    """
    The push line's wall time: PROCESSES processes, started together, each sending its share of
    the groups at CONCURRENCY; from the start to the last request at the stand-in.
    """
    fcm.reset()
    shares = [groups // PROCESSES + (1 if i < groups % PROCESSES else 0) for i in range(PROCESSES)]
    env = {**os.environ, "SSL_CERT_FILE": fcm.ca_file}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.push_line",
            "--fcm-url",
            fcm.base_url,
            "--groups",
            str(share),
            "--members",
            str(MEMBERS),
            "--concurrency",
            str(CONCURRENCY),
            "--tag",
            str(i),
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for i, share in enumerate(shares)
    ]
    for proc in procs:
        assert proc.stdout is not None
        if (await proc.stdout.readline()).strip() != b"ready":
            raise RuntimeError("push line: a process did not start")
    start = time.monotonic()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    for proc in procs:
        assert proc.stdout is not None
        done = (await proc.stdout.readline()).split()
        await proc.wait()
        if done[:1] != [b"done"] or done[1:] != [b"0"]:
            raise RuntimeError(f"push line: {b' '.join(done).decode() or 'no answer'}")
    if len(fcm.requests) != groups * MEMBERS:
        raise RuntimeError(f"push line: {len(fcm.requests)} of {groups * MEMBERS} requests")
    return max(r.received_at for r in fcm.requests) - start


async def raw_noop_cpu(ctx: Context, n: int, raw: list[workers.WorkerProcess]) -> float:
    """
    CPU (ms) per raw procrastinate no-op job: N of them through the raw workers, their processes
    and their own backends.
    """
    await ctx.db.reset()
    group = cpu.Group("raw", tuple(w.pid for w in raw), tuple(w.app_name for w in raw))
    interval = await accounting.begin(ctx, [group], counters=[w.round_trips_file for w in raw])
    await processing.enqueue_noops(ctx.db, "raw", RAW_QUEUE, n)
    _, polls = await processing.wait_done(ctx.db, RAW_QUEUE, n, within=600, live=raw)
    account = await interval.end(
        n, settle=True, harness_xacts=polls + accounting.CONNECTION_XACTS, db=False
    )
    return account.cpu_ms("raw")


async def one_wave(
    ctx: Context,
    groups: int,
    fcm: FcmStandIn,
    live: list[workers.WorkerProcess],
    raw: list[workers.WorkerProcess],
) -> Repetition:
    line = await push_line(fcm, groups)
    noop_ms = await raw_noop_cpu(ctx, groups, raw)
    await ctx.db.reset()
    fcm.reset()
    async with await ctx.db.connect(autocommit=True) as conn:
        await seed(conn, groups, "UTC")
        await stage(conn, datetime.datetime.now(datetime.UTC).date())
    epoch_offset = time.time() - time.monotonic()
    cpu_groups = [
        cpu.Group("workers", tuple(w.pid for w in live), tuple(w.app_name for w in live)),
        cpu.Group("bench", app_names=(TICK_APP,), this_process=True),
    ]
    async with await psycopg.AsyncConnection.connect(
        ctx.db.url, autocommit=True, application_name=TICK_APP
    ) as tick_conn:
        interval = await accounting.begin(
            ctx,
            cpu_groups,
            counters=[w.round_trips_file for w in live],
            keep=(accounting.WORKER_APP, TICK_APP),
        )
        tick = time.monotonic()
        if await publish(tick_conn) != groups:
            raise RuntimeError("wave: the publish statement did not publish every group's prompt")
        published = time.monotonic()
    await wait_for_pushes(fcm, groups * MEMBERS, live)
    # Every delivery records its answers just after its push: the interval (CPU, transactions,
    # WAL) closes 2 s after the last push, when all have.
    await asyncio.sleep(2)
    async with await ctx.db.connect(autocommit=True) as conn:
        jobs = await job_count(conn)
    account = await interval.end(groups, settle=True, harness_xacts=1 + accounting.CONNECTION_XACTS)
    last_push = max(r.received_at for r in fcm.requests if _is_new_prompt(r.message))
    async with await ctx.db.connect(autocommit=True) as conn:
        started, _, deliveries = await phases(conn)
    if deliveries != groups:
        raise RuntimeError(f"wave: {deliveries} DeliverGroupEvent jobs for {groups} groups")
    used = account.cpu
    workers_cpu, bench_cpu = used.groups["workers"], used.groups["bench"]
    measured = workers_cpu.total + bench_cpu.total
    return {
        "wall": Sample(last_push - tick, line),
        "cpu_group": Sample(account.cpu_ms("workers"), noop_ms),
        # The prompt's own job (GeneratePrompt, issue 14 part 1) is one per group per day.
        "jobs_group": Sample(1 + jobs / groups),
        "faults": Sample(faults(fcm, groups)),
        "publish": Sample(published - tick),
        "pickup": Sample(started - (published + epoch_offset)),
        "deliver": Sample(last_push + epoch_offset - started),
        "busy": Sample(100 * used.busy_share),
        "cpu_worker": Sample(1000 * workers_cpu.processes / groups),
        "cpu_standins": Sample(1000 * bench_cpu.total / groups),
        "cpu_floor": Sample(measured / (os.cpu_count() or 1)),
        "trips": Sample(account.round_trips_per_job),
        "xacts": Sample(account.xacts_per_job),
        "wal": Sample(account.wal_per_job),
    }


async def rounds(ctx: Context) -> AsyncIterator[Repetition]:
    groups = ctx.options.get("wave_groups", 1_000)
    slots = PROCESSES * CONCURRENCY
    ctx.note(
        f"(8) {groups:,} groups × {MEMBERS} members (1 device each) per repetition; publish tick ="
        f" one INSERT … SELECT of the {groups:,} prompts; {PROCESSES} worker processes ×"
        f" concurrency {CONCURRENCY} = {slots} job slots (queue notifications); FCM stand-in"
        f" {FCM_LATENCY * 1000:.0f} ms (HTTP/2, TLS); push line: {PROCESSES} processes ×"
        f" {CONCURRENCY} concurrent send_each_async of {MEMBERS} messages; raw no-op: {groups:,}"
        f" jobs through {PROCESSES} raw procrastinate processes × concurrency {CONCURRENCY}."
    )
    with FcmStandIn(latency=FCM_LATENCY, http2=True) as fcm:
        live = [
            workers.WorkerProcess(
                "wave",
                ctx.db.url,
                ["notifications"],
                concurrency=CONCURRENCY,
                log_file=ctx.workdir / f"worker-wave-{i}.log",
                extra={"fcm-url": fcm.base_url},
                env={"SSL_CERT_FILE": fcm.ca_file},
            )
            for i in range(PROCESSES)
        ]
        raw = [
            workers.WorkerProcess(
                "raw",
                ctx.db.url,
                [RAW_QUEUE],
                concurrency=CONCURRENCY,
                log_file=ctx.workdir / f"worker-wave-raw-{i}.log",
            )
            for i in range(PROCESSES)
        ]
        try:
            await ctx.db.reset()
            await workers.start_all(ctx.db.url, [*live, *raw])
            for _ in range(ctx.reps):
                yield await one_wave(ctx, groups, fcm, live, raw)
        finally:
            await workers.stop_all([*live, *raw])
