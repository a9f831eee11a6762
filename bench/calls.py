"""
(13) Outside calls: the client CPU of one OpenAI prompt request and of one FCM message, before and
after (same run).

Before: what the adapter did until issue 14 — `chat.completions.parse(response_format=
ConversationPrompt)`, which derives the strict JSON schema from the model and validates the whole
completion on every call, then `PromptDraft` from the parsed model. After: `OpenAIPromptGenerator
.generate` — the same request body (tests/test_ai_provider.py compares it with parse's), built
once, sent by the SDK's `post`, the reply read by `model_validate_json`.

Both run the real `openai` SDK in this process against the OpenAI stand-in in a SUBPROCESS (its
CPU is not counted): CPU per call = this process's CPU time (all threads) over a block of
sequential calls ÷ calls. Blocks of the two alternate, so load on the machine falls on both alike.

FCM: the same firebase-admin `send_each_async` of the same 500-message batch (500 concurrent
requests, as the delivery job sends), to the same TLS stand-in in a subprocess, on two apps.
Before: a stock app, firebase-admin's own httpx transport, which negotiates HTTP/2 as with real
FCM. After: `FcmPushSender`'s app, the same SDK above `AiohttpTransport` (HTTP/1.1 keep-alive,
`MAX_CONNECTIONS` connections). CPU per message = this process's CPU over a batch ÷ 500.

    python -m bench.calls            # this benchmark alone, its table
    python -m bench --only 13
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, cast

import firebase_admin
import openai
from firebase_admin import messaging
from google.oauth2.credentials import Credentials

from bench import harness
from bench.harness import Context, Metric, Repetition, Sample
from broseph.providers import ai_openai, push_fcm
from broseph.providers.ai import MAX_COMPLETION_TOKENS, PromptContext, PromptDraft
from broseph.providers.push import MAX_BATCH

if TYPE_CHECKING:
    from bench.database import BenchDatabase

number = 13
title = "Outside calls: client CPU per call"
BLOCK = 50
CALLS = 600
SMOKE_CALLS = 100
FCM_BATCHES = 12
SMOKE_FCM_BATCHES = 2
FCM_PROJECT = "broseph-bench"
metrics = (
    Metric(
        "openai_call",
        "(13) OpenAI prompt request: client CPU per call (this process; stand-in apart)",
        "ms",
        baseline="chat.completions.parse (before)",
        decimals=2,
    ),
    Metric(
        "fcm_message",
        "(13) FCM message, send_each_async of 500 over TLS: client CPU per message "
        "(this process; stand-in apart)",
        "ms",
        baseline="firebase-admin's httpx transport, HTTP/2 (before)",
        decimals=2,
    ),
)
_SERVE = """
import sys
from tests.standins.openai_server import OpenAIStandIn
with OpenAIStandIn() as server:
    print(server.base_url, flush=True)
    sys.stdin.read()
"""
_SERVE_FCM = """
import sys
from tests.standins.fcm_server import FcmStandIn
with FcmStandIn(http2=True) as server:
    print(server.base_url, flush=True)
    print(server.ca_file, flush=True)
    sys.stdin.read()
"""
ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-bench-not-a-real-key"
CONTEXT = PromptContext(
    group_name="Sunday Crew",
    member_count=6,
    local_date=datetime.date(2026, 3, 6),
    recent_prompts=[f"Recent prompt number {i}: what made you smile?" for i in range(30)],
    activity="42 messages from 5 of 6 members in the last 7 days",
)


@contextlib.contextmanager
def standin(script: str = _SERVE, lines: int = 1) -> Iterator[list[str]]:
    """
    A stand-in in its own process; yields the first `lines` lines it prints (its base URL, ...).
    """
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield [process.stdout.readline().strip() for _ in range(lines)]
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=10)


def parse_call(client: openai.AsyncOpenAI, model: str) -> Callable[[], Awaitable[PromptDraft]]:
    """
    The adapter's request before issue 14, as it was.
    """

    async def call() -> PromptDraft:
        completion = await client.chat.completions.parse(
            model=model,
            messages=ai_openai._build_messages(CONTEXT),
            response_format=ai_openai.ConversationPrompt,
            max_completion_tokens=MAX_COMPLETION_TOKENS,
        )
        parsed = completion.choices[0].message.parsed
        assert parsed is not None
        return PromptDraft.model_validate(parsed.model_dump())

    return call


async def cpu_per_call(call: Callable[[], Awaitable[PromptDraft]], calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        await call()
    return (time.process_time() - started) / calls


async def rounds(ctx: Context) -> AsyncIterator[Repetition]:
    openai_rounds = openai_calls(ctx)
    fcm_rounds = fcm_messages(ctx)
    async for openai_sample in openai_rounds:
        fcm_sample = await anext(fcm_rounds)
        yield openai_sample | fcm_sample
    await fcm_rounds.aclose()


async def openai_calls(ctx: Context) -> AsyncIterator[Repetition]:
    calls = SMOKE_CALLS if ctx.smoke else CALLS
    with standin() as (base_url,):
        ours = ai_openai.OpenAIPromptGenerator(
            api_key=KEY, base_url=base_url, model="gpt-4o-mini", timeout=10, max_retries=0
        )
        client = openai.AsyncOpenAI(api_key=KEY, base_url=base_url, max_retries=0)
        before = parse_call(client, "gpt-4o-mini")

        async def after() -> PromptDraft:
            return await ours.generate(CONTEXT)

        try:
            # Warm both (connections, imports, the SDK's caches) before measuring.
            for _ in range(20):
                await before()
                await after()
            for _ in range(ctx.reps):
                spent = {"before": 0.0, "after": 0.0}
                for _ in range(calls // BLOCK):
                    spent["before"] += await cpu_per_call(before, BLOCK)
                    spent["after"] += await cpu_per_call(after, BLOCK)
                blocks = calls // BLOCK
                yield {
                    "openai_call": Sample(
                        1000 * spent["after"] / blocks, 1000 * spent["before"] / blocks
                    )
                }
        finally:
            await ours.aclose()
            await client.close()
    ctx.note(
        f"(13) {calls} sequential calls of each per repetition, in alternating blocks of {BLOCK},"
        " against the OpenAI stand-in in a subprocess (0 ms latency); CPU = this process's"
        " process_time (all its threads) ÷ calls; the request: 30 recent prompts, no samples."
    )


def fcm_batch() -> list[messaging.Message]:
    """
    500 messages shaped like a daily prompt, one per Firebase Installation ID.
    """
    return [
        messaging.Message(
            fid=f"fid-bench-{i:04d}",
            notification=messaging.Notification(
                title="Nightly prompt", body="What made you smile?"
            ),
            data={"group_id": "g-1", "prompt_id": "p-9"},
            android=messaging.AndroidConfig(collapse_key="group-g-1"),
            apns=messaging.APNSConfig(headers={"apns-collapse-id": "group-g-1"}),
        )
        for i in range(MAX_BATCH)
    ]


async def cpu_per_message(app: firebase_admin.App, batch: list[messaging.Message]) -> float:
    started = time.process_time()
    result = await messaging.send_each_async(batch, app=app)
    spent = time.process_time() - started
    if result.success_count != len(batch):
        raise RuntimeError(f"error: {result.failure_count} FCM sends failed — see the stand-in")
    return spent / len(batch)


async def fcm_messages(ctx: Context) -> AsyncGenerator[Repetition]:
    batches = SMOKE_FCM_BATCHES if ctx.smoke else FCM_BATCHES
    batch = fcm_batch()
    ctx.note(
        f"(13) FCM: {batches} batches of {MAX_BATCH} messages per side per repetition, the sides"
        " alternating, one send_each_async each (500 requests at once), to the FCM stand-in"
        " in a subprocess over TLS (0 ms latency); CPU = this process's process_time ÷ messages;"
        f" ours holds at most {push_fcm.MAX_CONNECTIONS} HTTP/1.1 connections."
    )
    with standin(_SERVE_FCM, lines=2) as (base_url, ca_file):
        with env("SSL_CERT_FILE", ca_file):
            # Both apps read the trust store when their HTTP clients are built, here.
            credentials = Credentials(token="bench")  # type: ignore[no-untyped-call]
            stock = firebase_admin.initialize_app(
                credentials, {"projectId": FCM_PROJECT}, name="bench-fcm-stock"
            )
            stock_hooks = push_fcm._MessagingHooks(stock)
            stock_hooks.point_at(base_url, FCM_PROJECT)
            ours = push_fcm.FcmPushSender(
                credentials=credentials,
                project_id=FCM_PROJECT,
                fcm_url=base_url,
                app_name="bench-fcm-ours",
            )
        try:
            # Warm both (connections, TLS sessions, imports) before measuring.
            for _ in range(2):
                await cpu_per_message(stock, batch)
                await cpu_per_message(ours._app, batch)
            for _ in range(ctx.reps):
                spent = {"before": 0.0, "after": 0.0}
                for _ in range(batches):
                    spent["before"] += await cpu_per_message(stock, batch)
                    spent["after"] += await cpu_per_message(ours._app, batch)
                yield {
                    "fcm_message": Sample(
                        1000 * spent["after"] / batches, 1000 * spent["before"] / batches
                    )
                }
        finally:
            await stock_hooks.close_async_client()
            await asyncio.to_thread(firebase_admin.delete_app, stock)
            await ours.aclose()


@contextlib.contextmanager
def env(name: str, value: str) -> Iterator[None]:
    """
    `os.environ[name] = value` for the block only.
    """
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            del os.environ[name]
        else:
            os.environ[name] = previous


def main() -> None:
    """
    This benchmark alone (`python -m bench.calls [--smoke]`); it needs no database.
    """
    ctx = Context(
        db=cast("BenchDatabase", None),  # never used: the calls need no database
        redis_url="",
        reps=3,
        smoke="--smoke" in sys.argv[1:],
        workdir=Path("."),
    )
    rows = asyncio.run(harness.collect(cast(harness.Benchmark, sys.modules[__name__]), ctx))
    print(harness.render(rows))
    for note in ctx.notes:
        print(f"- {note}")
    print(f"- load: {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    main()
