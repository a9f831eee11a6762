"""
(14) A shared rate budget under a pre-generation burst: OPENAI_RPM holds across workers.

N groups due at once (the 08:00 wave's fan-out, bench/wave.py's world without devices), two
worker processes with OPENAI_RPM set, the OpenAI stand-in answering in 300 ms. Every request the
stand-in receives is timed; measured: the most requests in any 60 s window (target: at most
OPENAI_RPM — the issue's bound), the sustained rate (the requests beyond the bucket's first burst
over the time from first to last request) against the limit,
the jobs that snoozed for budget per prompt (how often a job was put back), and faults (a prompt
not stored, or stored from the offline bank: a self-inflicted storm must never reach it).

The issue's scale — 10,000 prompts at OPENAI_RPM=3000 — takes over 3 minutes of wall time per
repetition; `--budget-groups` and `--budget-rpm` choose it (the default, 1,000 at 600, runs about
as long per the limit, 100 s).

    python -m bench --only 14
    python -m bench --only 14 --budget-groups 10000 --budget-rpm 3000
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from bench import wave, workers
from bench.harness import Context, Metric, Repetition, Sample, at_most, ratio_at_most
from broseph import services
from broseph.jobs import generate_prompt
from broseph.settings import Settings
from tests.standins.fcm_server import FcmStandIn
from tests.standins.openai_server import OpenAIStandIn

number = 14
title = "Shared rate budget under a pre-generation burst"
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
    Metric("snoozes", "(14) budget snoozes per prompt", "count", decimals=2),
    Metric("faults", "(14) prompts missing or from the offline bank", "count", target=at_most(0)),
)


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


async def one_burst(
    ctx: Context, groups: int, openai: OpenAIStandIn, live: list[workers.WorkerProcess]
) -> Repetition:
    await ctx.db.reset()
    openai.reset()
    settings = Settings(_env_file=None, database_url=ctx.db.url)  # type: ignore[call-arg]
    async with await ctx.db.connect(autocommit=True) as conn:
        zone = await wave.time_zone_past(conn, settings.prompt_hour)
        await wave.seed(conn, groups, zone)
        # No devices: the new_prompt pushes find nobody, the budget under test is OpenAI's.
        await conn.execute("DELETE FROM public.device_tokens")
        snoozed_before = sum(w.log_file.read_text().count('"job_snoozed"') for w in live)
        async with AsyncConnectionPool(ctx.db.url, min_size=1, max_size=2, open=False) as pool:
            await pool.open(wait=True)
            sent = await generate_prompt.fan_out(
                services.Services(settings=settings, pool=pool), int(time.time())
            )
        if sent != groups:
            raise RuntimeError(f"budget: the fan-out sent {sent} jobs for {groups} groups")
        deadline = time.monotonic() + 3600
        while (await prompt_counts(conn))[0] < groups:
            for w in live:
                w.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError("budget: the prompts did not all arrive within an hour")
            await asyncio.sleep(0.5)
        stored, from_openai = await prompt_counts(conn)
    snoozes = sum(w.log_file.read_text().count('"job_snoozed"') for w in live) - snoozed_before
    times = sorted(r.received_at for r in openai.requests)
    rpm = float(ctx.options["budget_rpm"])
    # The burst the bucket allows at once (its capacity) apart, the rest came at this rate.
    span = times[-1] - times[0]
    sustained = 60 * max(len(times) - rpm / 60, 0) / span if span > 0 else 0.0
    return {
        "window": Sample(most_in_window(times, WINDOW), rpm),
        "rate": Sample(sustained, rpm),
        "snoozes": Sample(snoozes / groups),
        "faults": Sample((groups - stored) + (stored - from_openai)),
    }


async def rounds(ctx: Context) -> AsyncIterator[Repetition]:
    groups = ctx.options.get("budget_groups") or ctx.size(1_000, 60)
    rpm = ctx.options.setdefault("budget_rpm", 600)
    ctx.note(
        f"(14) {groups:,} GeneratePrompt jobs due at once per repetition, OPENAI_RPM={rpm:,},"
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
                yield await one_burst(ctx, groups, openai, live)
        finally:
            await workers.stop_all(live)
