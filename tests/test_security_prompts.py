"""
A prompt generated ahead of its hour (migrations/0038) is invisible to clients until published:
not in public.prompts for a member or anon, not answerable by a message, not publishable or
announceable by a client, and no client-visible notification names it. On plain PostgreSQL and
on a Supabase-like database (tests/profiles.py).
"""

from __future__ import annotations

import datetime
from typing import Any

import psycopg
import pytest

from tests import factories
from tests.profiles import as_client

DAY = datetime.date(2026, 6, 1)


@pytest.fixture
def db_url(profile_db_url: str) -> str:
    """
    Every test of this module runs on both profiles.
    """
    return profile_db_url


async def _crew(conn: psycopg.AsyncConnection[Any]) -> tuple[Any, Any, Any, Any]:
    """
    A group with a member, yesterday's prompt published and today's waiting unpublished.
    """
    gid = await factories.group(conn, time_zone="Europe/Berlin")
    me = await factories.user(conn)
    await factories.member(conn, gid, me)
    published = await factories.prompt(conn, gid, DAY - datetime.timedelta(days=1))
    cur = await conn.execute(
        "INSERT INTO public.prompts"
        " (group_id, local_date, text, category, source, published_at)"
        " VALUES (%s, %s, 'Not yet!', 'icebreaker', 'openai', NULL) RETURNING id",
        (gid, DAY),
    )
    waiting = (await cur.fetchone())["id"]
    return gid, me, published, waiting


async def _seen(conn: psycopg.AsyncConnection[Any], role: str, user: Any = None) -> set[Any]:
    """
    The prompt ids the client reads; none when it may not read the table at all (anon).
    """
    try:
        async with conn.transaction():
            await as_client(conn, role, user)
            cur = await conn.execute("SELECT id FROM public.prompts")
            seen = {r["id"] for r in await cur.fetchall()}
            raise psycopg.Rollback()
    except psycopg.errors.InsufficientPrivilege:
        return set()
    return seen


async def test_a_member_sees_published_prompts_only_and_anon_none(conn):
    _, me, published, waiting = await _crew(conn)
    assert await _seen(conn, "authenticated", me) == {published}
    assert await _seen(conn, "anon") == set()
    await conn.execute("SELECT broseph.publish_due_prompts(8, '2026-06-01 06:00+00')")
    assert await _seen(conn, "authenticated", me) == {published, waiting}


async def _answer(
    conn: psycopg.AsyncConnection[Any], gid: Any, me: Any, prompt_id: Any
) -> str | None:
    """
    The member answers `prompt_id` as a client; the error class name when refused.
    """
    try:
        async with conn.transaction():
            await as_client(conn, "authenticated", me)
            await conn.execute(
                "INSERT INTO public.messages (group_id, sender_id, body, prompt_id)"
                " VALUES (%s, %s, 'my answer', %s)",
                (gid, me, prompt_id),
            )
            raise psycopg.Rollback()
    except psycopg.Error as err:
        return type(err).__name__
    return None


async def test_a_member_cannot_answer_an_unpublished_prompt_or_another_groups(conn):
    gid, me, published, waiting = await _crew(conn)
    _, _, theirs, _ = await _crew(conn)
    assert await _answer(conn, gid, me, published) is None
    assert await _answer(conn, gid, me, None) is None
    assert await _answer(conn, gid, me, waiting) == "InsufficientPrivilege"
    assert await _answer(conn, gid, me, theirs) == "InsufficientPrivilege"


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT broseph.publish_due_prompts(8, now())",
        "SELECT broseph.notify_prompts_published(ARRAY[%(waiting)s::uuid])",
        "UPDATE public.prompts SET published_at = now() WHERE id = %(waiting)s",
    ],
)
@pytest.mark.parametrize("role", ["anon", "authenticated"])
async def test_a_client_can_neither_publish_nor_announce_a_prompt(conn, statement, role):
    _, me, _, waiting = await _crew(conn)
    updated = 0
    try:
        async with conn.transaction():
            await as_client(conn, role, me if role == "authenticated" else None)
            cur = await conn.execute(statement, {"waiting": waiting})
            updated = cur.rowcount
    except psycopg.errors.InsufficientPrivilege:
        pass
    else:
        # The Supabase-like profile grants the client roles UPDATE on every public table (its
        # default): RLS, with no UPDATE policy on prompts, leaves the client no row to change.
        assert statement.startswith("UPDATE") and updated == 0
    cur = await conn.execute("SELECT published_at FROM public.prompts WHERE id = %s", (waiting,))
    assert (await cur.fetchone())["published_at"] is None
    cur = await conn.execute(
        "SELECT count(*) AS n FROM broseph.job_records WHERE params -> 'data' ->> 'prompt_id' = %s",
        (str(waiting),),
    )
    assert (await cur.fetchone())["n"] == 0  # nobody was told about it
