"""
The OpenAI prompt adapter, through the real `openai` SDK, against the stand-in server.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest

from broseph.providers import ai
from broseph.providers.ai import (
    MAX_COMPLETION_TOKENS,
    PromptContext,
    PromptDraft,
    PromptGenerator,
    normalize_prompt,
)
from broseph.providers.ai_openai import ConversationPrompt, OpenAIPromptGenerator
from tests.standins.openai_server import DEFAULT_OUTPUT, OpenAIStandIn, RecordedRequest, Reply

API_KEY = "sk-test-not-a-real-key-123"
GOOD_OUTPUT = {
    "text": "What's a tiny win from this week that deserves a round of applause?",
    "category": "gratitude",
    "follow_up": "Who else was part of it?",
}
# Lets the SDK-independent retry loop wait 10 ms instead of its 0.5 s backoff.
FAST_RETRY = {"retry-after-ms": "10"}


def make_context(**overrides: Any) -> PromptContext:
    fields: dict[str, Any] = {
        "group_name": "Sunday Crew",
        "member_count": 6,
        "local_date": datetime.date(2026, 3, 6),
        "recent_prompts": [
            "What is the best breakfast you have ever had?",
            "Would you rather live by the sea or in the mountains?",
        ],
        "activity": "42 messages from 5 of 6 members in the last 7 days",
    }
    fields.update(overrides)
    return PromptContext(**fields)


def make_generator(
    server: OpenAIStandIn, *, timeout: float = 2.0, max_retries: int = 2
) -> OpenAIPromptGenerator:
    return OpenAIPromptGenerator(
        api_key=API_KEY,
        base_url=server.base_url,
        model="gpt-4o-mini",
        timeout=timeout,
        max_retries=max_retries,
    )


def user_data(request: RecordedRequest) -> dict[str, Any]:
    # The user message is one line of instruction followed by the group data as JSON.
    user = next(m for m in request.messages if m["role"] == "user")
    data: dict[str, Any] = json.loads(user["content"].split("\n", 1)[1])
    return data


@pytest.fixture
def standin() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn() as server:
        yield server


@pytest.fixture
async def generator(standin: OpenAIStandIn) -> AsyncIterator[OpenAIPromptGenerator]:
    async with contextlib.aclosing(make_generator(standin)) as gen:
        yield gen


async def expect_error(
    generator: OpenAIPromptGenerator, kind: type[ai.AIError], ctx: PromptContext | None = None
) -> ai.AIError:
    with pytest.raises(kind) as info:
        await generator.generate(ctx or make_context())
    # Translated at the boundary: no openai or pydantic exception chained for logs to print.
    error = info.value
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    assert API_KEY not in error.reason
    return error


# --- success ---------------------------------------------------------------------------------


async def test_structured_output_becomes_a_draft(
    standin: OpenAIStandIn, generator: OpenAIPromptGenerator
) -> None:
    standin.script(Reply.json_output(GOOD_OUTPUT))

    draft = await generator.generate(make_context())

    assert draft == PromptDraft(**GOOD_OUTPUT)
    [request] = standin.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "<redacted>"
    assert request.body["model"] == "gpt-4o-mini"
    response_format = request.body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["strict"] is True
    schema = response_format["json_schema"]["schema"]
    assert schema["required"] == ["text", "category", "follow_up"]
    # Strict structured output rejects length keywords; limits are enforced after parsing.
    assert "maxLength" not in json.dumps(schema)
    data = user_data(request)
    assert data["recent_prompts_to_avoid"] == make_context().recent_prompts
    assert data["group_name"] == "Sunday Crew"
    assert data["weekday"] == "Friday"


async def test_the_request_is_the_one_parse_sends(
    standin: OpenAIStandIn, generator: OpenAIPromptGenerator
) -> None:
    # The body built once per process must be what `chat.completions.parse` builds per call for
    # the same messages: same schema, same fields, same headers that matter.
    await generator.generate(make_context())
    [ours] = standin.requests
    client = openai.AsyncOpenAI(api_key=API_KEY, base_url=standin.base_url, max_retries=0)
    try:
        await client.chat.completions.parse(
            model="gpt-4o-mini",
            messages=ours.body["messages"],
            response_format=ConversationPrompt,
            max_completion_tokens=MAX_COMPLETION_TOKENS,
        )
    finally:
        await client.close()
    [_, theirs] = standin.requests
    assert ours.body == theirs.body
    assert (ours.method, ours.path) == (theirs.method, theirs.path)
    for header in ("content-type", "authorization"):
        assert ours.headers[header] == theirs.headers[header]


async def test_default_reply_and_fixed_latency(standin: OpenAIStandIn) -> None:
    standin.set_default(latency=0.3)
    async with contextlib.aclosing(make_generator(standin)) as generator:
        started = time.monotonic()
        draft = await generator.generate(make_context())
        elapsed = time.monotonic() - started

    assert draft.text == DEFAULT_OUTPUT["text"]
    assert 0.3 <= elapsed < 1.5


async def test_blank_follow_up_becomes_none(
    standin: OpenAIStandIn, generator: OpenAIPromptGenerator
) -> None:
    standin.script(Reply.json_output({**GOOD_OUTPUT, "follow_up": "  "}))

    draft = await generator.generate(make_context())

    assert draft.follow_up is None


def test_openai_generator_satisfies_the_protocol(standin: OpenAIStandIn) -> None:
    generator: PromptGenerator = make_generator(standin)
    assert callable(generator.generate)


# --- transient errors: retried, then surfaced as AITransientError ------------------------------


async def test_rate_limit_is_raised_at_once_with_the_servers_wait(
    standin: OpenAIStandIn, generator: OpenAIPromptGenerator
) -> None:
    # Not retried inside the adapter (a worker slot would sleep, and no other worker would know):
    # the job tightens the shared budget and snoozes (tests/test_budgets.py).
    standin.script(
        Reply.status(
            429,
            error={"type": "requests", "code": "rate_limit_exceeded"},
            headers={
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "1m30.5s",
                "x-ratelimit-remaining-tokens": "1200",
                "x-ratelimit-reset-tokens": "20ms",
            },
        ),
        Reply.json_output(GOOD_OUTPUT),
    )

    error = await expect_error(generator, ai.AIRateLimitedError)

    assert len(standin.requests) == 1 and standin.pending == 1
    assert isinstance(error, ai.AIRateLimitedError)
    assert error.retry_after == pytest.approx(90.5)
    assert error.exhausted == frozenset({"requests"})
    assert "429" in error.reason


@pytest.mark.parametrize(
    ("headers", "wait", "exhausted"),
    [
        # Retry-After wins over the resets; no remaining counts: both limits may be used up.
        ({"retry-after": "3", "x-ratelimit-reset-tokens": "6m0s"}, 3.0, {"requests", "tokens"}),
        ({"retry-after-ms": "250"}, 0.25, {"requests", "tokens"}),
        (
            {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "2h0m0.5s"},
            7200.5,
            {"tokens"},
        ),
        # Unreadable values are no wait at all (the job then waits a default).
        ({"x-ratelimit-reset-requests": "soon", "retry-after": "-1"}, None, {"requests", "tokens"}),
    ],
    ids=["retry-after", "retry-after-ms", "reset-tokens", "unreadable"],
)
async def test_rate_limit_headers_are_read(
    standin: OpenAIStandIn,
    generator: OpenAIPromptGenerator,
    headers: dict[str, str],
    wait: float | None,
    exhausted: set[str],
) -> None:
    standin.script(Reply.status(429, headers=headers))

    error = await expect_error(generator, ai.AIRateLimitedError)

    assert isinstance(error, ai.AIRateLimitedError)
    assert error.retry_after == (pytest.approx(wait) if wait is not None else None)
    assert error.exhausted == exhausted


async def test_server_error_then_success(
    standin: OpenAIStandIn, generator: OpenAIPromptGenerator
) -> None:
    # No retry-after header: our own backoff (about half a second) applies.
    standin.script(Reply.status(500), Reply.json_output(GOOD_OUTPUT))

    started = time.monotonic()
    draft = await generator.generate(make_context())

    assert draft.text == GOOD_OUTPUT["text"]
    assert len(standin.requests) == 2
    assert time.monotonic() - started < 2.0


async def test_server_error_that_persists_is_transient(standin: OpenAIStandIn) -> None:
    standin.script(*[Reply.status(502, headers=FAST_RETRY)] * 3)

    async with contextlib.aclosing(make_generator(standin, max_retries=1)) as generator:
        error = await expect_error(generator, ai.AITransientError)

    assert len(standin.requests) == 2
    assert "502" in error.reason
    assert isinstance(error, ai.AITransientError)
    assert error.retry_after == pytest.approx(0.01)


async def test_long_retry_after_is_left_to_the_job(
    standin: OpenAIStandIn, generator: OpenAIPromptGenerator
) -> None:
    # A worker slot should not sleep for a minute; the job's durable retry can.
    standin.script(Reply.status(503, headers={"retry-after": "60"}))

    error = await expect_error(generator, ai.AITransientError)

    assert len(standin.requests) == 1
    assert isinstance(error, ai.AITransientError)
    assert error.retry_after == 60


async def test_timeout_is_transient(standin: OpenAIStandIn) -> None:
    standin.script(Reply.delay(2.0, then=Reply.json_output(GOOD_OUTPUT)))

    async with contextlib.aclosing(
        make_generator(standin, timeout=0.2, max_retries=0)
    ) as generator:
        started = time.monotonic()
        error = await expect_error(generator, ai.AITransientError)

    assert time.monotonic() - started < 1.5
    assert error.reason == "timed out"
    assert len(standin.requests) == 1


async def test_dropped_connection_is_transient(standin: OpenAIStandIn) -> None:
    standin.script(Reply.disconnect())

    async with contextlib.aclosing(make_generator(standin, max_retries=0)) as generator:
        error = await expect_error(generator, ai.AITransientError)

    assert error.reason == "connection failed"


# --- permanent errors: never retried --------------------------------------------------------


async def test_unauthorized_is_permanent(
    standin: OpenAIStandIn, generator: OpenAIPromptGenerator
) -> None:
    standin.script(Reply.status(401))

    error = await expect_error(generator, ai.AIPermanentError)

    assert "401" in error.reason
    assert len(standin.requests) == 1


async def test_insufficient_quota_is_permanent_and_not_retried(
    standin: OpenAIStandIn, generator: OpenAIPromptGenerator
) -> None:
    # Scripted twice: a retry would be answered with another 429 rather than the default success.
    standin.script(*[Reply.status(429, code="insufficient_quota", headers=FAST_RETRY)] * 2)

    error = await expect_error(generator, ai.AIPermanentError)

    assert "insufficient_quota" in error.reason
    assert len(standin.requests) == 1


@pytest.mark.parametrize("status", [400, 403, 404, 422])
async def test_client_errors_are_permanent(
    standin: OpenAIStandIn, generator: OpenAIPromptGenerator, status: int
) -> None:
    standin.script(Reply.status(status, error={"param": "response_format"}))

    error = await expect_error(generator, ai.AIPermanentError)

    assert str(status) in error.reason
    assert len(standin.requests) == 1


# --- unusable output ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply.raw_content("not json"), "invalid JSON"),
        (Reply.raw_content('{"text": "Cut off mid'), "invalid JSON"),
        (Reply.json_output({**GOOD_OUTPUT, "category": "politics"}), "category"),
        (Reply.json_output({"text": "Only text"}), "missing"),
        (Reply.json_output({**GOOD_OUTPUT, "text": "x" * 281}), "text too long"),
        (Reply.json_output({**GOOD_OUTPUT, "follow_up": "y" * 201}), "follow_up too long"),
        (Reply.json_output({**GOOD_OUTPUT, "text": "   "}), "empty"),
        (Reply.json_output({**GOOD_OUTPUT, "text": "?!…"}), "empty"),
        (Reply.refusal(), "refused"),
        (Reply.raw_content("", finish_reason="stop"), "empty"),
        (Reply.json_output(GOOD_OUTPUT, finish_reason="length"), "truncated"),
        (Reply.json_output(GOOD_OUTPUT, finish_reason="content_filter"), "refused"),
    ],
)
async def test_unusable_output_is_an_output_error(
    standin: OpenAIStandIn, generator: OpenAIPromptGenerator, reply: Reply, reason: str
) -> None:
    standin.script(reply)

    error = await expect_error(generator, ai.AIOutputError)

    assert reason in error.reason
    # Output problems are not retried here: the job decides (e.g. falls back to the bank).
    assert len(standin.requests) == 1


async def test_text_of_exactly_280_characters_is_accepted(
    standin: OpenAIStandIn, generator: OpenAIPromptGenerator
) -> None:
    standin.script(Reply.json_output({**GOOD_OUTPUT, "text": "  " + "a" * 280 + "  "}))

    draft = await generator.generate(make_context())

    assert draft.text == "a" * 280


async def test_repeat_of_a_recent_prompt_is_an_output_error(
    standin: OpenAIStandIn, generator: OpenAIPromptGenerator
) -> None:
    recent = ["What’s the BEST breakfast you've ever had?", "Something else entirely"]
    standin.script(
        Reply.json_output(
            {**GOOD_OUTPUT, "text": "  what's the best breakfast you’ve   ever had!! "}
        )
    )

    error = await expect_error(generator, ai.AIOutputError, make_context(recent_prompts=recent))

    assert "repeat" in error.reason


# --- privacy ----------------------------------------------------------------------------------


async def test_no_message_text_is_sent_without_samples(
    standin: OpenAIStandIn, generator: OpenAIPromptGenerator
) -> None:
    await generator.generate(make_context(sample_messages=[]))

    [request] = standin.requests
    assert "sample_messages" not in request.text
    assert set(user_data(request)) == {
        "group_name",
        "member_count",
        "local_date",
        "weekday",
        "activity",
        "recent_prompts_to_avoid",
    }
    assert [m["role"] for m in request.messages] == ["system", "user"]


async def test_samples_are_sent_only_when_given(
    standin: OpenAIStandIn, generator: OpenAIPromptGenerator
) -> None:
    samples = ["anyone up for the quiz on thursday", "I'll bring the board games"]

    await generator.generate(make_context(sample_messages=samples))

    assert user_data(standin.requests[0])["sample_messages"] == samples


# --- the adapter's own rules ------------------------------------------------------------------


def test_normalize_prompt_ignores_case_punctuation_and_spacing() -> None:
    assert normalize_prompt("  What's   YOUR pick?! 🍕 ") == normalize_prompt("whats your pick")
    assert normalize_prompt("Hot take:pizza") == normalize_prompt("hot take — pizza")
    assert normalize_prompt("Café") == normalize_prompt("CAFÉ")
    assert normalize_prompt("one thing") != normalize_prompt("one other thing")
    assert normalize_prompt("...") == ""


@pytest.mark.parametrize(
    "kwargs",
    [{"api_key": ""}, {"timeout": 0}, {"max_retries": -1}],
)
def test_constructor_rejects_bad_settings(kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {
        "api_key": API_KEY,
        "base_url": "http://127.0.0.1:9/v1",
        "model": "gpt-4o-mini",
        "timeout": 1.0,
        "max_retries": 0,
    }
    with pytest.raises(ValueError):
        OpenAIPromptGenerator(**{**arguments, **kwargs})
