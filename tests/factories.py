"""
Small builders for the Broseph world, written with plain SQL on a test connection.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import psycopg


async def group(
    conn: psycopg.AsyncConnection[Any],
    *,
    name: str = "Crew",
    time_zone: str = "UTC",
    active: bool = True,
) -> uuid.UUID:
    cur = await conn.execute(
        "INSERT INTO public.groups (name, time_zone, active) VALUES (%s, %s, %s) RETURNING id",
        (name, time_zone, active),
    )
    row = await cur.fetchone()
    assert row is not None
    return _id(row)


async def user(
    conn: psycopg.AsyncConnection[Any], *, name: str = "Sam", time_zone: str = "UTC"
) -> uuid.UUID:
    cur = await conn.execute(
        "INSERT INTO public.profiles (display_name, time_zone) VALUES (%s, %s) RETURNING id",
        (name, time_zone),
    )
    row = await cur.fetchone()
    assert row is not None
    return _id(row)


async def member(
    conn: psycopg.AsyncConnection[Any], group_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    await conn.execute(
        "INSERT INTO public.group_members (group_id, user_id) VALUES (%s, %s)", (group_id, user_id)
    )


async def message(
    conn: psycopg.AsyncConnection[Any],
    group_id: uuid.UUID,
    sender_id: uuid.UUID,
    *,
    at: datetime.datetime | None = None,
    prompt_id: uuid.UUID | None = None,
    body: str = "hello",
) -> None:
    await conn.execute(
        "INSERT INTO public.messages (group_id, sender_id, body, prompt_id, created_at) "
        "VALUES (%s, %s, %s, %s, coalesce(%s, now()))",
        (group_id, sender_id, body, prompt_id, at),
    )


async def prompt(
    conn: psycopg.AsyncConnection[Any],
    group_id: uuid.UUID,
    local_date: datetime.date,
    *,
    text: str = "What made you laugh this week?",
) -> uuid.UUID:
    cur = await conn.execute(
        "INSERT INTO public.prompts (group_id, local_date, text, category, source) "
        "VALUES (%s, %s, %s, 'icebreaker', 'manual') RETURNING id",
        (group_id, local_date, text),
    )
    row = await cur.fetchone()
    assert row is not None
    return _id(row)


def _id(row: Any) -> uuid.UUID:
    value = row["id"] if isinstance(row, dict) else row[0]
    return uuid.UUID(str(value))
