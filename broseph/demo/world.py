"""
The demo's small Broseph world, and what its people do while the worker runs.

- `seed`: groups in six time zones with a few members each (joining one by one, so earlier
  members hear of later ones: friend_joined), a day and a half of messages, a phone per person,
  one fresh message per group; and a crowd — a larger group, whose notifications are one
  DeliverGroupEvent per event as every group's.
- `newcomer`: someone joins the crowd (its friend_joined delivery).
- `enqueue_yesterday` / `enqueue_prompts`: the Python face of enqueue.
- `answer_prompts`: members answer their group's new prompt (the response rate).
"""

from __future__ import annotations

import datetime
import random
import uuid
from typing import Any

import psycopg
from psycopg.rows import dict_row

from broseph import enqueue, services, sql
from broseph.jobs import generate_prompt
from broseph.jobs.process_engagement import ProcessEngagement

TIME_ZONES = (
    "America/Los_Angeles",
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Tokyo",
    "Australia/Sydney",
)
GROUP_NAMES = ("Climbing crew", "Book club", "Flatmates", "Uni friends", "Band", "Family")
PEOPLE = ("Ana", "Ben", "Chloé", "Dev", "Eli", "Femi", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea")
CROWD = ("Running club", "America/Sao_Paulo", 30)  # name, time zone, members


async def seed(url: str, n_groups: int) -> list[uuid.UUID]:
    """
    The small groups, then the crowd (last), committed together; returns their ids.
    """
    rng = random.Random(42)
    ids: list[uuid.UUID] = []
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        await conn.execute(sql.query("demo_debounce"))
        for i in range(n_groups):
            tz = TIME_ZONES[i % len(TIME_ZONES)]
            gid = await _group(conn, GROUP_NAMES[i % len(GROUP_NAMES)], tz)
            for j, person in enumerate(rng.sample(PEOPLE, rng.randint(3, 6))):
                role = "owner" if j == 0 else "member"
                params = {"name": person, "time_zone": tz, "group_id": gid, "role": role}
                await conn.execute(sql.query("demo_member"), params)
            # One INSERT of many rows: the messages trigger enqueues once per (group, local day).
            await conn.execute(
                sql.query("demo_messages"), {"group_id": gid, "count": rng.randint(10, 40)}
            )
            ids.append(gid)
        name, tz, count = CROWD
        crowd = await _group(conn, name, tz)
        await conn.execute(
            sql.query("demo_crowd"),
            {"prefix": "Runner", "time_zone": tz, "group_id": crowd, "count": count},
        )
        ids.append(crowd)
        # Push notifications: a phone per person, and one fresh message per group to announce.
        await conn.execute(sql.query("demo_devices"))
        await conn.execute(sql.query("demo_fresh_messages"))
        await conn.commit()
    return ids


async def _group(conn: psycopg.AsyncConnection[Any], name: str, time_zone: str) -> uuid.UUID:
    cur = await conn.execute(sql.query("demo_group"), {"name": name, "time_zone": time_zone})
    row = await cur.fetchone()
    assert row is not None
    return row["id"]  # type: ignore[call-overload,no-any-return]


async def newcomer(url: str, crowd: uuid.UUID) -> None:
    """
    Someone joins the crowd, after the others (its own transaction: a later joined_at).
    """
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(
            sql.query("demo_member"),
            {"name": "Zoe", "time_zone": CROWD[1], "group_id": crowd, "role": "member"},
        )
        await conn.execute(sql.query("demo_devices"))  # Zoe's phone


async def enqueue_yesterday(svc: services.Services, group_ids: list[uuid.UUID]) -> None:
    """
    The Python face: yesterday's stats for every group, in one transaction, deduplicated.
    """
    today = datetime.datetime.now(datetime.UTC).date()
    payloads = [
        ProcessEngagement(group_id=g, local_date=today - datetime.timedelta(days=1))
        for g in group_ids
    ]
    keys = [f"demo:engagement:{p.group_id}:{p.local_date}" for p in payloads]
    async with svc.pool.connection() as conn:
        await enqueue.enqueue_many(conn, payloads, idempotency_keys=keys, source="api")


async def enqueue_prompts(svc: services.Services, group_ids: list[uuid.UUID]) -> None:
    """
    Today's prompt for every demo group now, rather than at PROMPT_HOUR (OpenAI with a key, else
    the offline bank); the schedule's own keys, so a fan-out tick during the demo adds nothing.
    """
    async with svc.pool.connection() as conn:
        await generate_prompt.enqueue_today(conn, group_ids, source="api")


async def answer_prompts(svc: services.Services, since: datetime.datetime) -> int:
    """
    Members answer the prompts stored since `since`; returns how many answers were sent.
    """
    async with svc.pool.connection() as conn:
        cur = await conn.execute(sql.query("demo_answers"), {"since": since})
        return len(await cur.fetchall())
