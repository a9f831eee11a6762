"""
The SQL-side triggers of migrations/0007: a message, a member joining or a prompt stored enqueues
SendNotification jobs for the right members in the same transaction — coalesced, so a chatty
group leaves at most one pending new_message job per member — and those jobs become pushes.
"""

# ruff: noqa: F811  (pytest fixtures imported from tests.notify_support are test arguments)
from __future__ import annotations

import asyncio
import datetime
import random
import uuid

import psycopg
import pytest

from broseph.notify.content import messages_body
from tests import factories
from tests.notify_support import (  # noqa: F401  (fixtures)
    add_device,
    fcm,
    fcm_sender,
    logs,
    no_secrets_in_logs,
    push_app,
    wait_status,
)
from tests.profiles import as_client


@pytest.fixture(autouse=True)
def _no_secrets(no_secrets_in_logs):
    """
    Every test here: no device token, access token or message body in its logs.
    """


async def _jobs(conn, type_: str | None = None) -> list[dict]:
    cur = await conn.execute(
        "SELECT r.id, r.status, r.params, r.idempotency_key, r.source, j.scheduled_at,"
        " r.created_at FROM broseph.job_records r"
        " JOIN procrastinate_jobs j ON j.id = r.procrastinate_job_id"
        " WHERE r.job_type = 'SendNotification'"
        " AND (%s::text IS NULL OR r.params ->> 'type' = %s::text) ORDER BY r.created_at, r.id",
        (type_, type_),
    )
    return [dict(row) for row in await cur.fetchall()]


def _users(jobs: list[dict]) -> list[str]:
    return sorted(job["params"]["user_id"] for job in jobs)


async def _group_of(conn, n: int, **kwargs) -> tuple[uuid.UUID, list[uuid.UUID]]:
    gid = await factories.group(conn, **kwargs)
    users = [await factories.user(conn, name=f"Member {i:02}") for i in range(n)]
    # One statement for all members: nobody was there before, so no friend_joined.
    await conn.execute(
        "INSERT INTO public.group_members (group_id, user_id) SELECT %s, unnest(%s::uuid[])",
        (gid, users),
    )
    return gid, users


async def test_a_message_notifies_the_other_members_not_the_sender_nor_the_muted(conn):
    gid, (sender, a, b, muted) = await _group_of(conn, 4)
    await conn.execute("UPDATE public.group_members SET muted = true WHERE user_id = %s", (muted,))
    assert await _jobs(conn) == []  # creating the group notified nobody

    await factories.message(conn, gid, sender, body="hello")

    jobs = await _jobs(conn, "new_message")
    assert _users(jobs) == sorted([str(a), str(b)])
    for job in jobs:
        assert job["params"]["data"] == {"group_id": str(gid)}  # ids only, no message text
        assert (job["status"], job["source"]) == ("pending", "trigger")
    # Debounced by the type's coalesce_delay, counted from the inserting transaction.
    cur = await conn.execute("SELECT created_at FROM public.messages")
    created = (await cur.fetchone())["created_at"]
    assert {job["scheduled_at"] - created for job in jobs} == {datetime.timedelta(seconds=5)}


async def test_one_insert_of_several_senders_notifies_each_member_once(conn):
    gid, (a, b, c) = await _group_of(conn, 3)
    await conn.execute(
        "INSERT INTO public.messages (group_id, sender_id, body)"
        " VALUES (%s, %s, 'x'), (%s, %s, 'y')",
        (gid, a, gid, b),
    )
    # a and b each hear about the other's message; c about both, once.
    assert _users(await _jobs(conn, "new_message")) == sorted(map(str, (a, b, c)))


async def test_fifty_messages_in_a_group_of_twenty_leave_one_pending_job_per_member(
    conn, db_url, app, start_worker
):
    gid, members = await _group_of(conn, 20)
    senders = members[:5]
    rng = random.Random(4)

    async def chat(n: int) -> None:
        # Five clients at once, each message its own transaction, like the app's API.
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as client:
            for _ in range(n):
                await factories.message(client, gid, rng.choice(senders), body="secret text")

    await asyncio.gather(*(chat(10) for _ in range(5)))

    cur = await conn.execute("SELECT count(*) AS n FROM public.messages")
    assert (await cur.fetchone())["n"] == 50
    jobs = await _jobs(conn, "new_message")
    by_member = {m: [j for j in jobs if j["params"]["user_id"] == str(m)] for m in members}
    assert all(len(found) <= 1 for found in by_member.values())
    # Everyone who did not send all 50 has exactly one; nobody has more.
    assert sum(len(found) for found in by_member.values()) == 20
    assert {j["status"] for j in jobs} == {"pending"}

    # The eventual push (development outbox) says how many: all 50 for a member who never wrote.
    await conn.execute("UPDATE procrastinate_jobs SET scheduled_at = now()")
    await start_worker()
    for job in jobs:
        await wait_status(conn, job["id"], "completed")
    cur = await conn.execute(
        "SELECT n.user_id, n.status, n.message_count, n.reason FROM public.notifications n"
        " WHERE n.type = 'new_message'"
    )
    rows = {r["user_id"]: r for r in await cur.fetchall()}
    assert len(rows) == 20
    for quiet in members[5:]:
        assert rows[quiet]["message_count"] == 50
        assert rows[quiet]["status"] == "skipped"  # no device to send to


async def test_the_eventual_push_counts_the_coalesced_messages(conn, app, start_worker):
    gid, (ana, ben, sam) = await _group_of(conn, 3)
    await conn.execute("UPDATE public.profiles SET display_name = 'Ana' WHERE id = %s", (ana,))
    await conn.execute("UPDATE public.profiles SET display_name = 'Ben' WHERE id = %s", (ben,))
    await add_device(conn, sam)
    for sender in (ana, ben, ana, ana, ben):
        await factories.message(conn, gid, sender, body="do not log me")
    [job] = [j for j in await _jobs(conn, "new_message") if j["params"]["user_id"] == str(sam)]
    await conn.execute("UPDATE procrastinate_jobs SET scheduled_at = now()")
    await start_worker()

    await wait_status(conn, job["id"], "completed")
    cur = await conn.execute("SELECT title, body, data FROM broseph.push_outbox")
    [push] = await cur.fetchall()
    assert push["body"] == messages_body(5, 2, ["Ben", "Ana"])  # the latest sender first
    assert push["data"]["message_count"] == "5"


async def test_a_rolled_back_message_enqueues_nothing(conn, db_url):
    gid, (a, _b) = await _group_of(conn, 2)
    async with await psycopg.AsyncConnection.connect(db_url) as client:
        await factories.message(client, gid, a)
        cur = await client.execute(
            "SELECT count(*) AS n FROM broseph.job_records WHERE job_type = 'SendNotification'"
        )
        assert (await cur.fetchone())[0] == 1  # visible inside the transaction
        await client.rollback()
    assert await _jobs(conn) == []


async def test_a_client_insert_under_rls_enqueues_through_the_security_definer_trigger(
    profile_conn,
):
    # On plain PostgreSQL and on a Supabase-like database (tests/profiles.py).
    conn = profile_conn
    gid, (a, b) = await _group_of(conn, 2)
    async with conn.transaction():
        await as_client(conn, "authenticated", a)
        await conn.execute(
            "INSERT INTO public.messages (group_id, sender_id, body) VALUES (%s, %s, 'hi')",
            (gid, a),
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            async with conn.transaction():
                await conn.execute("SELECT broseph.enqueue('SendNotification', '{}')")
    assert _users(await _jobs(conn, "new_message")) == [str(b)]


async def test_a_member_joining_notifies_the_members_already_there(conn):
    gid, (a, b, muted) = await _group_of(conn, 3)
    await conn.execute("UPDATE public.group_members SET muted = true WHERE user_id = %s", (muted,))
    newcomer = await factories.user(conn, name="Newcomer")
    await factories.member(conn, gid, newcomer)

    jobs = await _jobs(conn, "friend_joined")
    assert _users(jobs) == sorted([str(a), str(b)])
    assert {str(j["params"]["data"]["friend_id"]) for j in jobs} == {str(newcomer)}
    assert {j["params"]["data"]["group_id"] for j in jobs} == {str(gid)}


async def test_a_stored_prompt_notifies_every_member_once(conn):
    gid, members = await _group_of(conn, 4)
    await conn.execute(
        "UPDATE public.group_members SET muted = true WHERE user_id = %s", (members[0],)
    )
    today = datetime.date(2026, 11, 27)
    prompt_id = await factories.prompt(conn, gid, today)
    # GeneratePrompt's re-run stores nothing (ON CONFLICT DO NOTHING) and so notifies nobody.
    await conn.execute(
        "INSERT INTO public.prompts (group_id, local_date, text, category, source)"
        " VALUES (%s, %s, 'again', 'x', 'manual') ON CONFLICT DO NOTHING",
        (gid, today),
    )

    jobs = await _jobs(conn, "new_prompt")
    assert _users(jobs) == sorted(map(str, members[1:]))
    assert {j["idempotency_key"] for j in jobs} == {
        f"new_prompt:{m}:{prompt_id}" for m in members[1:]
    }


async def test_a_stored_prompt_reaches_the_members_devices_through_fcm(
    conn, fcm, push_app, start_worker
):
    gid, (a, b) = await _group_of(conn, 2, name="Book club")
    devices = [await add_device(conn, a), await add_device(conn, b, "token")]
    prompt_id = await factories.prompt(conn, gid, datetime.date(2026, 11, 27), text="Best book?")
    await start_worker()

    for job in await _jobs(conn, "new_prompt"):
        await wait_status(conn, job["id"], "completed")
    for device in devices:
        (request,) = fcm.requests_for(device.identifier)
        assert request.message["notification"] == {
            "title": "New prompt in Book club",
            "body": "Best book?",
        }
        assert request.message["data"]["prompt_id"] == str(prompt_id)


async def _group_above_inline_limit(conn) -> tuple[uuid.UUID, list[uuid.UUID]]:
    cur = await conn.execute("SELECT broseph.notify_inline_max() AS n")
    limit = (await cur.fetchone())["n"]
    # One more member than the limit, plus one muted (muted members do not count).
    gid, members = await _group_of(conn, limit + 2)
    await conn.execute(
        "UPDATE public.group_members SET muted = true WHERE user_id = %s", (members[-1],)
    )
    return gid, members


async def _fanouts(conn) -> list[dict]:
    cur = await conn.execute(
        "SELECT r.id, r.params, r.status, r.idempotency_key, j.scheduled_at"
        " FROM broseph.job_records r JOIN procrastinate_jobs j ON j.id = r.procrastinate_job_id"
        " WHERE r.job_type = 'NotifyMembers' ORDER BY r.created_at, r.id"
    )
    return [dict(row) for row in await cur.fetchall()]


async def test_a_large_group_gets_one_fan_out_job_in_the_transaction(conn, app, start_worker):
    gid, members = await _group_above_inline_limit(conn)
    ana, ben, muted = members[0], members[1], members[-1]
    for sender in (ana, ana, ana, ben):
        await factories.message(conn, gid, sender)

    # The inserting transactions enqueued one fan-out per sender (coalesced), no per-member jobs.
    assert await _jobs(conn, "new_message") == []
    fanouts = await _fanouts(conn)
    assert sorted(f["params"].get("sender_id") for f in fanouts) == sorted(map(str, (ana, ben)))
    assert {f["params"]["type"] for f in fanouts} == {"new_message"}

    await conn.execute("UPDATE procrastinate_jobs SET scheduled_at = now()")
    await start_worker()
    for fanout in fanouts:
        await wait_status(conn, fanout["id"], "completed")
    jobs = await _jobs(conn, "new_message")
    # Everyone but the muted member: Ana and Ben each hear about the other's messages. (A member
    # whose job from the first fan-out already ran gets a second from the other one.)
    assert set(_users(jobs)) == {str(m) for m in members if m != muted}
    assert max(_users(jobs).count(u) for u in _users(jobs)) <= len(fanouts)
    assert {j["params"]["data"]["group_id"] for j in jobs} == {str(gid)}


async def test_a_large_group_fans_out_joins_and_prompts_in_the_worker(conn, app, start_worker):
    gid, members = await _group_above_inline_limit(conn)
    newcomer = await factories.user(conn, name="Newcomer")
    await factories.member(conn, gid, newcomer)
    prompt_id = await factories.prompt(conn, gid, datetime.date(2026, 11, 27))
    fanouts = await _fanouts(conn)
    assert {f["params"]["type"]: f["idempotency_key"] for f in fanouts} == {
        "friend_joined": None,
        "new_prompt": f"new_prompt:{prompt_id}",
    }
    assert await _jobs(conn, "friend_joined") == await _jobs(conn, "new_prompt") == []

    await start_worker()
    for fanout in fanouts:
        await wait_status(conn, fanout["id"], "completed")
    listening = list(members[:-1])  # the muted member hears nothing
    joined = await _jobs(conn, "friend_joined")
    assert _users(joined) == sorted(map(str, listening))  # not the newcomer
    assert {j["params"]["data"]["friend_id"] for j in joined} == {str(newcomer)}
    prompts = await _jobs(conn, "new_prompt")
    assert _users(prompts) == sorted(map(str, [*listening, newcomer]))
    assert {j["idempotency_key"] for j in prompts} == {
        f"new_prompt:{u}:{prompt_id}" for u in [*listening, newcomer]
    }
