"""
Timestamps of rows a client writes are the server's: a client that backdates or future-dates a
message (1900, 2999) neither stores that time nor makes analytics rows and jobs for that day.
Rows written by the service (postgres, service_role) keep the times it gives. On plain
PostgreSQL and on a Supabase-like database.
"""

from __future__ import annotations

import datetime

import pytest

from tests import factories
from tests.profiles import as_client

UTC = datetime.UTC
FAKE_TIMES = ("1900-01-01 12:00:00+00", "2999-12-31 12:00:00+00")


@pytest.fixture
def db_url(profile_db_url: str) -> str:
    """
    Every test of this module runs on both profiles.
    """
    return profile_db_url


async def _server_now(conn) -> datetime.datetime:
    cur = await conn.execute("SELECT now() AS now")
    return (await cur.fetchone())["now"]


@pytest.mark.parametrize("fake", FAKE_TIMES)
async def test_a_clients_message_gets_the_servers_time_and_todays_job(conn, fake):
    gid = await factories.group(conn, time_zone="Pacific/Kiritimati")  # UTC+14: a far "today"
    me = await factories.user(conn)
    await factories.member(conn, gid, me)
    before = await _server_now(conn)
    async with conn.transaction():
        await as_client(conn, "authenticated", me)
        await conn.execute(
            "INSERT INTO public.messages (group_id, sender_id, body, created_at)"
            " VALUES (%s, %s, 'hello from the past', %s)",
            (gid, me, fake),
        )
    cur = await conn.execute("SELECT created_at FROM public.messages WHERE group_id = %s", (gid,))
    [stored] = [r["created_at"] for r in await cur.fetchall()]
    after = await _server_now(conn)
    assert before <= stored <= after

    cur = await conn.execute(
        "SELECT params ->> 'local_date' AS day FROM broseph.job_records"
        " WHERE job_type = 'ProcessEngagement'"
    )
    days = {r["day"] for r in await cur.fetchall()}
    cur = await conn.execute(
        "SELECT (%s::timestamptz AT TIME ZONE 'Pacific/Kiritimati')::date::text AS day", (stored,)
    )
    assert days == {(await cur.fetchone())["day"]}


async def test_clients_cannot_rewrite_the_times_of_rows_they_may_update(conn):
    me = await factories.user(conn)
    cur = await conn.execute("SELECT created_at FROM public.profiles WHERE id = %s", (me,))
    joined = (await cur.fetchone())["created_at"]
    before = await _server_now(conn)
    async with conn.transaction():
        await as_client(conn, "authenticated", me)
        await conn.execute(
            "UPDATE public.profiles SET created_at = %s, display_name = 'Sam 2' WHERE id = %s",
            (FAKE_TIMES[0], me),
        )
        await conn.execute(
            "INSERT INTO public.device_tokens (user_id, identifier, created_at)"
            " VALUES (%s, 'fid-1', %s)",
            (me, FAKE_TIMES[1]),
        )
        await conn.execute(
            "INSERT INTO public.notification_preferences (user_id, updated_at) VALUES (%s, %s)",
            (me, FAKE_TIMES[0]),
        )
    cur = await conn.execute(
        "SELECT p.display_name, p.created_at AS joined, t.created_at AS device,"
        " np.updated_at AS prefs FROM public.profiles p"
        " JOIN public.device_tokens t ON t.user_id = p.id"
        " JOIN public.notification_preferences np ON np.user_id = p.id WHERE p.id = %s",
        (me,),
    )
    row = await cur.fetchone()
    after = await _server_now(conn)
    assert row["display_name"] == "Sam 2" and row["joined"] == joined
    assert before <= row["device"] <= after and before <= row["prefs"] <= after


@pytest.mark.parametrize("role", ["postgres", "service_role"])
async def test_the_service_keeps_the_times_it_writes(conn, role):
    gid = await factories.group(conn)
    me = await factories.user(conn)
    await factories.member(conn, gid, me)
    async with conn.transaction():
        if role != "postgres":
            await as_client(conn, role)
        await conn.execute(
            "INSERT INTO public.messages (group_id, sender_id, body, created_at)"
            " VALUES (%s, %s, 'imported', '2020-02-02 10:00:00+00')",
            (gid, me),
        )
    cur = await conn.execute("SELECT created_at FROM public.messages WHERE group_id = %s", (gid,))
    assert (await cur.fetchone())["created_at"] == datetime.datetime(2020, 2, 2, 10, tzinfo=UTC)
