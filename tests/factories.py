"""
Small builders for the Broseph world, written with plain SQL on a test connection.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tests import pg


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
    row = await pg.one(
        conn,
        "INSERT INTO public.prompts (group_id, local_date, text, category, source) "
        "VALUES (%s, %s, %s, 'icebreaker', 'manual') RETURNING id",
        (group_id, local_date, text),
    )
    return _id(row)


async def enqueued(
    conn: psycopg.AsyncConnection[Any], job_type: str, params: dict[str, Any]
) -> uuid.UUID:
    """
    A job enqueued through SQL (`broseph.enqueue`, as a client or trigger does): its record id.
    """
    row = await pg.one(conn, "SELECT broseph.enqueue(%s, %s) AS id", (job_type, Jsonb(params)))
    return _id(row)


def group_with_member(
    conn: psycopg.Connection[Any], group_name: str, member_name: str
) -> tuple[uuid.UUID, uuid.UUID]:
    """
    A group in UTC with one member, through a plain (sync) connection: the two ids.
    """
    group = conn.execute(
        "INSERT INTO public.groups (name, time_zone) VALUES (%s, 'UTC') RETURNING id",
        (group_name,),
    ).fetchone()
    member = conn.execute(
        "INSERT INTO public.profiles (display_name, time_zone) VALUES (%s, 'UTC') RETURNING id",
        (member_name,),
    ).fetchone()
    assert group and member
    conn.execute(
        "INSERT INTO public.group_members (group_id, user_id) VALUES (%s, %s)",
        (group[0], member[0]),
    )
    return _id(group), _id(member)


def _id(row: Any) -> uuid.UUID:
    value = row["id"] if isinstance(row, dict) else row[0]
    return uuid.UUID(str(value))
