"""
(14) Pre-generation ahead of the prompt hour under a shared rate budget: OPENAI_RPM holds across
workers and every prompt is ready before the hour.

N groups whose prompt hour comes in one zone (bench/wave.py's world), two worker processes with
OPENAI_RPM set, the OpenAI stand-in answering in 300 ms. The fan-out tick runs one lead before the
hour (prompt_fanout_ahead: run_at spread over the first 3/4 of the lead), the prompts are stored
unpublished, and at the hour one statement publishes them all (broseph.publish_due_prompts).
The zone's real prompt hour is hours away (the prompts must be stored as ahead of it), so the
bench ticks at that hour minus the lead and moves the jobs' run_at by the difference: the lead
starts now and "the hour" is now + lead on the wall clock.

Measured: the most requests in any 60 s window at the stand-in (target: at most OPENAI_RPM —
the issue's bound), the sustained rate against the limit, the last prompt's readiness as a share
of the lead (target: < 1, ready before the hour), the publish statement's time (publishing and
enqueueing every member's new_prompt notification, in a transaction rolled back so the round
leaves no 6 × N pushes behind), the budget snoozes per prompt, and faults (a prompt not stored,
stored from the offline bank — a self-inflicted storm must never reach it — or not published).

The lead is chosen from N and OPENAI_RPM: the time the budget needs for N requests at its
sustained rate (59/63 of the limit) over the spread (3/4 of the lead), plus a quarter, at least
30 s. The issue's scale — 10,000 prompts at OPENAI_RPM=3000 — takes a lead of about 6 minutes.

    python -m bench --only 14
    python -m bench --only 14 --budget-groups 10000 --budget-rpm 3000
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg

from bench import machine, wave, workers
from bench.harness import Context, Metric, Repetition, Sample, at_most, ratio_at_most
from broseph.jobs import generate_prompt
from broseph.settings import Settings
from tests.standins.fcm_server import FcmStandIn
from tests.standins.openai_server import OpenAIStandIn

number = 14
title = "Pre-generation ahead of the hour under a shared rate budget"
max_reps = 1  # a round is minutes of wall time (the lead)
AI_LATENCY = 0.300
PROCESSES = 2
CONCURRENCY = 10
WINDOW = 60.0
metrics = (
    Metric(
        "window",
        "(14) most OpenAI requests in any 60 s window (2 worker processes)",
        "requests",
        baseline="OPENAI_RPM",
        target=ratio_at_most(1.0),
    ),
    Metric(
        "rate",
        "(14) sustained rate: requests beyond the first burst (OPENAI_RPM/60) per minute",
        "per min",
        baseline="OPENAI_RPM",
    ),
    Metric(
        "ready",
        "(14) last prompt ready, from the ahead tick, ÷ the lead (< 1: before the hour)",
        "s",
        baseline="lead",
        target=ratio_at_most(1.0),
    ),
    Metric("fanout", "(14) the ahead fan-out tick (all chunks)", "s", decimals=2),
    Metric(
        "publish",
        "(14) the hour's publish statement (all prompts, members' notifications enqueued)",
        "s",
        decimals=2,
    ),
    Metric("snoozes", "(14) budget snoozes per prompt", "count", decimals=2),
    Metric(
        "faults",
        "(14) prompts missing, from the offline bank or not published at the hour",
        "count",
        target=at_most(0),
    ),
)
# The budget's sustained share of OPENAI_RPM (migrations/0034: refilled over 63 s).
SUSTAINED = 59 / 63


def lead_for(groups: int, rpm: int) -> datetime.timedelta:
    """
    Room for `groups` requests at the budget's sustained rate within the spread, plus a quarter.
    """
    needed = groups / (rpm * SUSTAINED / 60) / generate_prompt.SPREAD
    return datetime.timedelta(seconds=max(30.0, 1.25 * needed))


async def time_zone_before(conn: psycopg.AsyncConnection[Any], hour: int) -> str:
    """
    A fixed-offset zone whose local time is between 00:30 and two hours before the prompt hour,
    so the prompts of its local today are stored ahead of the hour (unpublished).
    """
    cur = await conn.execute(
        "SELECT name FROM pg_timezone_names WHERE name ~ '^Etc/GMT[+-][0-9]+$'"
        " AND (now() AT TIME ZONE name)::time BETWEEN '00:30' AND make_time(%s, 0, 0)"
        " ORDER BY (now() AT TIME ZONE name)::time LIMIT 1",
        (max(hour - 2, 0),),
    )
    row = await cur.fetchone()
    if row is None:
        raise RuntimeError(f"no time zone is between 00:30 and {hour - 2:02d}:00 now")
    return str(row[0])


def most_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


async def prompt_counts(conn: psycopg.AsyncConnection[Any]) -> tuple[int, int]:
    cur = await conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE source = 'openai') FROM public.prompts"
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def _one(conn: psycopg.AsyncConnection[Any], query: str, *args: Any) -> Any:
    cur = await conn.execute(query, args)
    row = await cur.fetchone()
    assert row is not None
    return row[0]


async def one_lead(
    ctx: Context,
    groups: int,
    lead: datetime.timedelta,
    openai: OpenAIStandIn,
    live: list[workers.WorkerProcess],
) -> Repetition:
    await ctx.db.reset()
    openai.reset()
    settings = Settings(_env_file=None, database_url=ctx.db.url)  # type: ignore[call-arg]
    hour = settings.prompt_hour
    async with await ctx.db.connect(autocommit=True) as conn:
        zone = await time_zone_before(conn, hour)
        await wave.seed(conn, groups, zone)
        # No devices: the new_prompt pushes find nobody, the budget under test is OpenAI's.
        await conn.execute("DELETE FROM public.device_tokens")
        snoozed_before = sum(w.log_file.read_text().count('"job_snoozed"') for w in live)
        hour_at: datetime.datetime = await _one(
            conn,
            "SELECT ((now() AT TIME ZONE %s)::date + make_time(%s, 0, 0)) AT TIME ZONE %s",
            zone,
            hour,
            zone,
        )
        tick = hour_at - lead
        # The lead starts at the tick, now: the fan-out's time counts against it.
        began: datetime.datetime = await _one(conn, "SELECT now()")
        started = time.monotonic()
        sent = await generate_prompt.fan_out_on(
            conn, tick, hour=hour, chunk_size=settings.fanout_chunk_size, lead=lead
        )
        fanout = time.monotonic() - started
        if sent != groups:
            raise RuntimeError(f"budget: the ahead fan-out sent {sent} jobs for {groups} groups")
        # The jobs' run_at moves from the zone's real hour to the tick's: "the hour" is
        # began + lead on the wall clock.
        await conn.execute(
            "UPDATE procrastinate_jobs SET scheduled_at = scheduled_at - (%s::timestamptz - %s)"
            " WHERE task_name = 'GeneratePrompt'",
            (tick, began),
        )
        deadline = time.monotonic() + 3600
        while (await prompt_counts(conn))[0] < groups:
            for w in live:
                w.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError("budget: the prompts did not all arrive within an hour")
            await asyncio.sleep(0.5)
        stored, from_openai = await prompt_counts(conn)
        last: datetime.datetime = await _one(conn, "SELECT max(created_at) FROM public.prompts")
        waiting = await _one(conn, "SELECT count(*) FROM public.prompts WHERE published_at IS NULL")
        # The hour: one statement; rolled back, so no 6 × N notification jobs outlive the round.
        async with conn.transaction(force_rollback=True):
            started = time.monotonic()
            published = await generate_prompt.publish_on(conn, hour_at, hour=hour)
            publish = time.monotonic() - started
    snoozes = sum(w.log_file.read_text().count('"job_snoozed"') for w in live) - snoozed_before
    times = sorted(r.received_at for r in openai.requests)
    rpm = float(ctx.options["budget_rpm"])
    # The burst the bucket allows at once (its capacity) apart, the rest came at this rate.
    span = times[-1] - times[0]
    sustained = 60 * max(len(times) - rpm / 60, 0) / span if span > 0 else 0.0
    ready = (last - began).total_seconds()
    ctx.note(
        f"(14) lead {lead.total_seconds():.0f} s; the last prompt ready {ready:.0f} s after the"
        f" ahead tick ({lead.total_seconds() - ready:.0f} s before the hour); {waiting:,} waited"
        f" unpublished, {published:,} published by one statement in {publish:.2f} s;"
        f" load {machine.load()}"
    )
    return {
        "window": Sample(most_in_window(times, WINDOW), rpm),
        "rate": Sample(sustained, rpm),
        "ready": Sample(ready, lead.total_seconds()),
        "fanout": Sample(fanout),
        "publish": Sample(publish),
        "snoozes": Sample(snoozes / groups),
        "faults": Sample(
            (groups - stored) + (stored - from_openai) + (groups - waiting) + (groups - published)
        ),
    }


async def rounds(ctx: Context) -> AsyncIterator[Repetition]:
    groups = ctx.options.get("budget_groups") or ctx.size(1_000, 60)
    rpm = ctx.options.setdefault("budget_rpm", 600)
    lead = lead_for(groups, rpm)
    ctx.note(
        f"(14) {groups:,} GeneratePrompt jobs ahead of one prompt hour per repetition, lead"
        f" {lead.total_seconds():.0f} s (spread over {generate_prompt.SPREAD:.0%}),"
        f" OPENAI_RPM={rpm:,},"
        f" {PROCESSES} worker processes × concurrency {CONCURRENCY}, OpenAI stand-in"
        f" {AI_LATENCY * 1000:.0f} ms; the bucket: capacity OPENAI_RPM/60, the rest refilled over"
        " 63 s (migrations/0034: 3 s to spare between a take and its request reaching the"
        " provider), so the sustained rate is 59/63 (94 %) of the limit by design."
    )
    with OpenAIStandIn(latency=AI_LATENCY) as openai, FcmStandIn() as fcm:
        live = [
            workers.WorkerProcess(
                "wave",
                ctx.db.url,
                [],
                concurrency=CONCURRENCY,
                log_file=ctx.workdir / f"worker-budget-{i}.log",
                extra={"openai-url": openai.base_url, "fcm-url": fcm.base_url},
                env={"OPENAI_RPM": str(rpm)},
            )
            for i in range(PROCESSES)
        ]
        try:
            await ctx.db.reset()
            await workers.start_all(ctx.db.url, live)
            for _ in range(ctx.reps):
                yield await one_lead(ctx, groups, lead, openai, live)
        finally:
            await workers.stop_all(live)
