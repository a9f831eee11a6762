"""
(8) The 08:00 wave: every group reaches its prompt hour at once.

N groups of 6 members (one device each) in a time zone whose local time is past PROMPT_HOUR.
The tick: `generate_prompt.fan_out(services, now)` — what the `prompt_fanout` periodic task runs —
enqueues one GeneratePrompt per group. Worker processes (the production app and services; the
real openai and firebase-admin SDKs) write each prompt through the OpenAI stand-in (300 ms a
reply); storing it fires the new_prompt trigger (SendNotification per member, same transaction);
each SendNotification pushes through the FCM stand-in (20 ms a reply).

Measured: wall time from the tick to the last new_prompt push recorded at the stand-in; the ideal
for the configured concurrency = outside-service work ÷ job slots (N × 300 ms + 6N × 20 ms, over
processes × concurrency); efficiency = ideal ÷ actual; where the time went; and lost / duplicated
work (every group one prompt, every device exactly one new_prompt push). And whether the wave
waited or computed (bench/accounting.py): the CPU per job of the worker processes and their own
Postgres backends; the stand-ins' CPU apart (they run in the bench process, with the tick); the
CPU floor — all the measured CPU over the cores, the wall time no scheduling could beat at this
cost per job (a floor near the wall time means the wave is CPU-bound: more slots would not help,
only cheaper jobs, or fewer); the machine's busy share as context; and per job the workers'
round trips, the database's transactions and WAL.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from bench import accounting, cpu, workers
from bench.harness import Context, Metric, Repetition, Sample, at_least, at_most
from broseph import services
from broseph.jobs import generate_prompt
from broseph.settings import Settings
from tests.standins.fcm_server import FcmStandIn
from tests.standins.openai_server import OpenAIStandIn

number = 8
title = "The 08:00 wave"
MEMBERS = 6
AI_LATENCY = 0.300
FCM_LATENCY = 0.020
PROCESSES = 2
CONCURRENCY = 10
metrics = (
    Metric(
        "wall",
        "(8) wave: tick → last new_prompt push",
        "s",
        baseline="ideal: outside-service work ÷ job slots",
        decimals=1,
    ),
    Metric(
        "efficiency",
        "(8) wave efficiency (ideal ÷ actual)",
        "ratio",
        target=at_least(0.8),
        decimals=2,
    ),
    Metric("fanout", "(8) where: fan-out (tick → every GeneratePrompt committed)", "s", decimals=1),
    Metric("ai", "(8) where: prompts (first → last GeneratePrompt done)", "s", decimals=1),
    Metric(
        "notify",
        "(8) where: notification fan-out (first → last SendNotification queued)",
        "s",
        decimals=1,
    ),
    Metric("push", "(8) where: pushes (first SendNotification start → last push)", "s", decimals=1),
    Metric("faults", "(8) lost + duplicated (prompts, pushes)", "count", target=at_most(0)),
    Metric(
        "busy",
        "(8) CPU busy, tick → last push (share of all cores, every process: load, context)",
        "%",
        decimals=0,
    ),
    Metric(
        "cpu_job",
        "(8) CPU per job (GeneratePrompt or SendNotification): worker processes + their"
        " Postgres backends",
        "ms",
        decimals=1,
    ),
    Metric("cpu_worker", "(8) … of which the worker processes", "ms", decimals=1),
    Metric(
        "cpu_standins",
        "(8) stand-ins' CPU per job (the bench process hosting them and the tick)",
        "ms",
        decimals=1,
    ),
    Metric(
        "cpu_floor",
        "(8) CPU floor: all measured CPU (workers, their backends, stand-ins, tick) ÷ cores",
        "s",
        decimals=1,
    ),
    Metric("trips", "(8) round trips per job (workers ↔ Postgres)", "count", decimals=2),
    Metric("xacts", "(8) Postgres transactions per job", "count", decimals=2),
    Metric("wal", "(8) WAL per job (this database's records, full-page images apart)", "bytes"),
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


async def phases(conn: psycopg.AsyncConnection[Any]) -> dict[str, float]:
    """
    First and last times of each phase, from the records (the database's clock, epoch seconds).
    """
    cur = await conn.execute(
        "SELECT job_type, extract(epoch FROM min(created_at))::float8,"
        " extract(epoch FROM max(created_at))::float8,"
        " extract(epoch FROM min(started_at))::float8,"
        " extract(epoch FROM max(finished_at))::float8,"
        " count(*) FILTER (WHERE status <> 'completed')"
        " FROM broseph.job_records GROUP BY job_type"
    )
    found: dict[str, float] = {}
    for (
        job_type,
        created_first,
        created_last,
        started,
        finished,
        unfinished,
    ) in await cur.fetchall():
        if unfinished:
            raise RuntimeError(f"wave: {unfinished} {job_type} jobs did not complete")
        key = {"GeneratePrompt": "prompt", "SendNotification": "notify"}.get(job_type, job_type)
        found |= {
            f"{key}_created_first": created_first,
            f"{key}_created_last": created_last,
            f"{key}_started": started,
            f"{key}_finished": finished,
        }
    return found


async def job_count(conn: psycopg.AsyncConnection[Any]) -> int:
    cur = await conn.execute(
        "SELECT count(*) FROM broseph.job_records"
        " WHERE job_type IN ('GeneratePrompt', 'SendNotification')"
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def faults(conn: psycopg.AsyncConnection[Any], fcm: FcmStandIn, groups: int) -> int:
    cur = await conn.execute("SELECT count(*) FROM public.prompts")
    row = await cur.fetchone()
    prompts = int(row[0]) if row else 0
    pushes = [r.identifier for r in fcm.requests if _is_new_prompt(r.message)]
    lost = (groups - prompts) + (groups * MEMBERS - len(set(pushes)))
    duplicated = len(pushes) - len(set(pushes))
    return lost + duplicated


async def one_wave(
    ctx: Context, groups: int, fcm: FcmStandIn, live: list[workers.WorkerProcess]
) -> Repetition:
    await ctx.db.reset()
    fcm.reset()
    settings = Settings(_env_file=None, database_url=ctx.db.url)  # type: ignore[call-arg]
    async with await ctx.db.connect(autocommit=True) as conn:
        zone = await time_zone_past(conn, settings.prompt_hour)
        await seed(conn, groups, zone)
    epoch_offset = time.time() - time.monotonic()
    cpu_groups = [
        cpu.Group("workers", tuple(w.pid for w in live), tuple(w.app_name for w in live)),
        cpu.Group("bench", app_names=(TICK_APP,), this_process=True),
    ]
    async with AsyncConnectionPool(
        ctx.db.url,
        min_size=1,
        max_size=2,
        open=False,
        kwargs={"application_name": TICK_APP},
    ) as pool:
        await pool.open(wait=True)
        interval = await accounting.begin(
            ctx,
            cpu_groups,
            counters=[w.round_trips_file for w in live],
            keep=(accounting.WORKER_APP, TICK_APP),
        )
        tick = time.monotonic()
        sent = await generate_prompt.fan_out(
            services.Services(settings=settings, pool=pool), int(time.time())
        )
        fanned_out = time.monotonic()
    if sent != groups:
        raise RuntimeError(f"wave: the fan-out sent {sent} jobs for {groups} groups")
    await wait_for_pushes(fcm, groups * MEMBERS, live)
    # Every SendNotification finishes (records its outcome) just after its push: the interval
    # (CPU, transactions, WAL) closes 2 s after the last push, when all have.
    await asyncio.sleep(2)
    async with await ctx.db.connect(autocommit=True) as conn:
        jobs = await job_count(conn)
    account = await interval.end(jobs, settle=True, harness_xacts=1 + accounting.CONNECTION_XACTS)
    last_push = max(r.received_at for r in fcm.requests if _is_new_prompt(r.message))
    async with await ctx.db.connect(autocommit=True) as conn:
        at = await phases(conn)
        fault_count = await faults(conn, fcm, groups)
    used = account.cpu
    workers_cpu, bench_cpu = used.groups["workers"], used.groups["bench"]
    measured = workers_cpu.total + bench_cpu.total
    wall = last_push - tick
    ideal = (groups * AI_LATENCY + groups * MEMBERS * FCM_LATENCY) / (PROCESSES * CONCURRENCY)
    return {
        "wall": Sample(wall, ideal),
        "efficiency": Sample(ideal / wall),
        "fanout": Sample(fanned_out - tick),
        "ai": Sample(at["prompt_finished"] - at["prompt_started"]),
        "notify": Sample(at["notify_created_last"] - at["notify_created_first"]),
        "push": Sample(last_push + epoch_offset - at["notify_started"]),
        "faults": Sample(fault_count),
        "busy": Sample(100 * used.busy_share),
        "cpu_job": Sample(account.cpu_ms("workers")),
        "cpu_worker": Sample(1000 * workers_cpu.processes / jobs),
        "cpu_standins": Sample(1000 * bench_cpu.total / jobs),
        "cpu_floor": Sample(measured / (os.cpu_count() or 1)),
        "trips": Sample(account.round_trips_per_job),
        "xacts": Sample(account.xacts_per_job),
        "wal": Sample(account.wal_per_job),
    }


async def rounds(ctx: Context) -> AsyncIterator[Repetition]:
    groups = ctx.options.get("wave_groups", 1_000)
    slots = PROCESSES * CONCURRENCY
    ctx.note(
        f"(8) {groups:,} groups × {MEMBERS} members (1 device each) per repetition;"
        f" {PROCESSES} worker processes × concurrency {CONCURRENCY} = {slots} job slots;"
        f" OpenAI stand-in {AI_LATENCY * 1000:.0f} ms, FCM stand-in {FCM_LATENCY * 1000:.0f} ms"
        " (HTTP/2, TLS); ideal = (N × 0.3 s + 6N × 0.02 s) ÷ slots."
    )
    with (
        OpenAIStandIn(latency=AI_LATENCY) as openai,
        FcmStandIn(latency=FCM_LATENCY, http2=True) as fcm,
    ):
        live = [
            workers.WorkerProcess(
                "wave",
                ctx.db.url,
                [],
                concurrency=CONCURRENCY,
                log_file=ctx.workdir / f"worker-wave-{i}.log",
                extra={"openai-url": openai.base_url, "fcm-url": fcm.base_url},
                env={"SSL_CERT_FILE": fcm.ca_file},
            )
            for i in range(PROCESSES)
        ]
        try:
            # These workers serve every queue: empty the database first, so nothing an earlier
            # benchmark left (its own job types) is fetched while the wave is being set up.
            await ctx.db.reset()
            await workers.start_all(ctx.db.url, live)
            for _ in range(ctx.reps):
                yield await one_wave(ctx, groups, fcm, live)
        finally:
            await workers.stop_all(live)
