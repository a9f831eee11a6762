"""
(13) Outside calls: the client CPU of one OpenAI prompt request, before and after (same run).

Before: what the adapter did until issue 14 — `chat.completions.parse(response_format=
ConversationPrompt)`, which derives the strict JSON schema from the model and validates the whole
completion on every call, then `PromptDraft` from the parsed model. After: `OpenAIPromptGenerator
.generate` — the same request body (tests/test_ai_provider.py compares it with parse's), built
once, sent by the SDK's `post`, the reply read by `model_validate_json`.

Both run the real `openai` SDK in this process against the OpenAI stand-in in a SUBPROCESS (its
CPU is not counted): CPU per call = this process's CPU time (all threads) over a block of
sequential calls ÷ calls. Blocks of the two alternate, so load on the machine falls on both alike.

    python -m bench.calls            # this benchmark alone, its table
    python -m bench --only 13
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, cast

import openai

from bench import harness
from bench.harness import Context, Metric, Repetition, Sample
from broseph.providers import ai_openai
from broseph.providers.ai import MAX_COMPLETION_TOKENS, PromptContext, PromptDraft

if TYPE_CHECKING:
    from bench.database import BenchDatabase

number = 13
title = "Outside calls: client CPU per call"
BLOCK = 50
CALLS = 600
SMOKE_CALLS = 100
metrics = (
    Metric(
        "openai_call",
        "(13) OpenAI prompt request: client CPU per call (this process; stand-in apart)",
        "ms",
        baseline="chat.completions.parse (before)",
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
def standin() -> Iterator[str]:
    """
    The OpenAI stand-in in its own process; yields its base URL.
    """
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVE],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
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
    calls = SMOKE_CALLS if ctx.smoke else CALLS
    with standin() as base_url:
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
