"""
Constants and helpers shared by the GeneratePrompt job tests (fixtures stay in the test module).
"""

from __future__ import annotations

import asyncio
import datetime
import json
from typing import Any

import psycopg
from pydantic import SecretStr

from broseph import enqueue, idempotency
from broseph.jobs.generate_prompt import GeneratePrompt
from broseph.settings import Settings
from tests.conftest import wait_until
from tests.standins.openai_server import OpenAIStandIn

API_KEY = "sk-test-generate-prompt-0123456789"
DAY = datetime.date(2026, 3, 6)
GOOD = {
    "text": "What's a tiny win from this week that deserves a round of applause?",
    "category": "gratitude",
    "follow_up": "Who else was part of it?",
}
OTHER = {
    "text": "Which snack would you bring to a desert island?",
    "category": "icebreaker",
    "follow_up": None,
}
FAST_RETRY = {"retry-after-ms": "10"}
SECRET_BODY = "my secret message body 7f3a"
# Job-level retries in tests: attempts 0.3 s apart instead of the production 30 s.
QUICK = {"max_attempts": 3, "backoff_seconds": 0.3, "backoff_type": "fixed"}


def ai_settings(settings: Settings, standin: OpenAIStandIn, **overrides: Any) -> Settings:
    """
    The test settings with an OpenAI key and the stand-in as the API (no retries in the adapter
    unless overridden).
    """
    return settings.model_copy(
        update={
            "openai_api_key": SecretStr(API_KEY),
            "openai_base_url": standin.base_url,
            "openai_timeout": 2.0,
            "openai_max_retries": 0,
            **overrides,
        }
    )


async def enqueue_prompt(
    conn: psycopg.AsyncConnection[Any],
    gid: Any,
    day: datetime.date | None = DAY,
    retry: dict[str, Any] | None = None,
) -> Any:
    payload = GeneratePrompt(group_id=gid, local_date=day)
    key = idempotency.prompt(gid, day) if day else None
    return await enqueue.enqueue(conn, payload, idempotency_key=key, retry=retry)


async def record(conn: psycopg.AsyncConnection[Any], rid: Any) -> dict[str, Any]:
    cur = await conn.execute("SELECT * FROM broseph.job_records WHERE id = %s", (rid,))
    row = await cur.fetchone()
    assert row is not None
    return dict(row)


async def finish(
    conn: psycopg.AsyncConnection[Any], rid: Any, *, within: float = 15.0
) -> tuple[dict[str, Any], list[str]]:
    """
    Wait for the record to finish; return it and the statuses seen on the way.
    """
    seen: list[str] = []

    async def finished() -> bool:
        status = (await record(conn, rid))["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        return status in ("completed", "failed", "cancelled")

    await wait_until(finished, within=within, interval=0.02)
    return await record(conn, rid), seen


async def prompts(conn: psycopg.AsyncConnection[Any], gid: Any) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT id, local_date, text, category, follow_up, source, created_at"
        " FROM public.prompts WHERE group_id = %s ORDER BY local_date",
        (gid,),
    )
    return list(await cur.fetchall())


async def stored(conn: psycopg.AsyncConnection[Any], gid: Any) -> dict[str, Any]:
    [row] = [p for p in await prompts(conn, gid) if p["local_date"] == DAY]
    return row


def user_data(request: Any) -> dict[str, Any]:
    user = next(m for m in request.messages if m["role"] == "user")
    data: dict[str, Any] = json.loads(user["content"].split("\n", 1)[1])
    return data


def fallbacks(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "prompt_fallback"]


async def has_requests(standin: OpenAIStandIn, n: int) -> bool:
    await asyncio.sleep(0)
    return len(standin.requests) >= n
