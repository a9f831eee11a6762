"""
Row-level security: a client (role authenticated) sees only its own groups' job records — on
plain PostgreSQL and on a Supabase-like database (tests/profiles.py).
"""

from __future__ import annotations

import psycopg
import pytest

from tests import factories


@pytest.fixture
def db_url(profile_db_url: str) -> str:
    """
    Every test of this module runs on both profiles.
    """
    return profile_db_url


async def _as_user(conn, user_id) -> None:
    # What PostgREST does for a signed-in request: role authenticated, JWT sub in a setting.
    await conn.execute("SET LOCAL ROLE authenticated")
    await conn.execute("SELECT set_config('request.jwt.claim.sub', %s, true)", (str(user_id),))


async def _visible_records(conn, user_id) -> set[str]:
    seen: set[str] = set()
    async with conn.transaction():
        await _as_user(conn, user_id)
        cur = await conn.execute("SELECT id::text AS id FROM broseph.job_records")
        seen |= {r["id"] for r in await cur.fetchall()}
        cur = await conn.execute("SELECT count(*) AS n FROM public.messages")
        seen.add(f"messages:{(await cur.fetchone())['n']}")
        raise psycopg.Rollback()
    return seen


async def _enqueue(conn, gid) -> str:
    cur = await conn.execute(
        "SELECT broseph.enqueue('ProcessEngagement', jsonb_build_object('group_id', %s::text,"
        " 'local_date', '2026-01-01'))::text AS id",
        (gid,),
    )
    return (await cur.fetchone())["id"]


async def test_a_user_sees_none_of_a_foreign_groups_records(conn):
    mine, theirs = await factories.group(conn), await factories.group(conn, name="Other")
    me, them = await factories.user(conn), await factories.user(conn, name="Them")
    await factories.member(conn, mine, me)
    await factories.member(conn, theirs, them)
    await factories.message(conn, theirs, them)  # its trigger enqueues a record for theirs
    my_record = await _enqueue(conn, mine)
    cur = await conn.execute(
        "SELECT id::text AS id FROM broseph.job_records WHERE group_id = %s", (theirs,)
    )
    their_records = {r["id"] for r in await cur.fetchall()}
    assert len(their_records) == 1

    assert await _visible_records(conn, me) == {my_record, "messages:0"}
    assert await _visible_records(conn, them) == their_records | {"messages:1"}
    # Anyone else: nothing at all.
    outsider = await factories.user(conn, name="Outsider")
    assert await _visible_records(conn, outsider) == {"messages:0"}


async def test_clients_cannot_write_job_records(conn):
    me = await factories.user(conn)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        async with conn.transaction():
            await _as_user(conn, me)
            await conn.execute("UPDATE broseph.job_records SET status = 'completed'")
