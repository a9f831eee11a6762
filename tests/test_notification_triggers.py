"""
The SQL-side triggers (migrations/0007, 0040): a message, a member joining or a prompt stored
enqueues ONE DeliverGroupEvent per group event in the same transaction — coalesced, so a chatty
group leaves at most one pending new_message delivery per group — and that job notifies the right
members: one notification row per member, pushes through FCM.
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
        " WHERE r.job_type = 'DeliverGroupEvent'"
        " AND (%s::text IS NULL OR r.params ->> 'type' = %s::text) ORDER BY r.created_at, r.id",
        (type_, type_),
    )
    return [dict(row) for row in await cur.fetchall()]


async def _notified(conn, type_: str) -> dict[uuid.UUID, dict]:
    cur = await conn.execute(
        "SELECT * FROM public.notifications WHERE type = %s ORDER BY user_id", (type_,)
    )
    return {row["user_id"]: dict(row) for row in await cur.fetchall()}


async def _run(conn, start_worker, jobs: list[dict]) -> None:
    await conn.execute("UPDATE procrastinate_jobs SET scheduled_at = now()")
    await start_worker()
    for job in jobs:
        await wait_status(conn, job["id"], "completed")


async def _group_of(conn, n: int, **kwargs) -> tuple[uuid.UUID, list[uuid.UUID]]:
    gid = await factories.group(conn, **kwargs)
    users = [await factories.user(conn, name=f"Member {i:02}") for i in range(n)]
    # One statement for all members: nobody was there before, so no friend_joined.
    await conn.execute(
        "INSERT INTO public.group_members (group_id, user_id) SELECT %s, unnest(%s::uuid[])",
        (gid, users),
    )
    return gid, users


async def test_a_message_notifies_the_other_members_not_the_sender_nor_the_muted(
    conn, app, start_worker
):
    gid, (sender, a, b, muted) = await _group_of(conn, 4)
    await conn.execute("UPDATE public.group_members SET muted = true WHERE user_id = %s", (muted,))
    assert await _jobs(conn) == []  # creating the group notified nobody

    await factories.message(conn, gid, sender, body="hello")

    [job] = await _jobs(conn, "new_message")
    assert job["params"] == {"group_id": str(gid), "type": "new_message"}  # ids only, no text
    assert (job["status"], job["source"]) == ("pending", "trigger")
    # Debounced by the type's coalesce_delay, counted from the inserting transaction.
    cur = await conn.execute("SELECT created_at FROM public.messages")
    created = (await cur.fetchone())["created_at"]
    assert job["scheduled_at"] - created == datetime.timedelta(seconds=5)

    await _run(conn, start_worker, [job])
    rows = await _notified(conn, "new_message")
    assert set(rows) == {a, b}
    assert {(r["status"], r["reason"], r["record_id"]) for r in rows.values()} == {
        ("skipped", "no live devices", job["id"])
    }


async def test_one_insert_of_several_senders_notifies_each_member_once(conn, app, start_worker):
    gid, (a, b, c) = await _group_of(conn, 3)
    await conn.execute(
        "INSERT INTO public.messages (group_id, sender_id, body)"
        " VALUES (%s, %s, 'x'), (%s, %s, 'y')",
        (gid, a, gid, b),
    )
    jobs = await _jobs(conn, "new_message")
    assert len(jobs) == 1
    await _run(conn, start_worker, jobs)
    # c hears about both, once. (a and b wrote at the same instant as each other: the rule of
    # new_message_summary counts from a member's own latest message, so neither hears about the
    # other's.)
    rows = await _notified(conn, "new_message")
    assert {u: r["message_count"] for u, r in rows.items()} == {c: 2}


async def test_fifty_messages_in_a_group_of_twenty_leave_one_pending_delivery_for_the_group(
    conn, db_url, app, start_worker
):
    gid, members = await _group_of(conn, 20)
    other_gid, other_members = await _group_of(conn, 3)
    senders = members[:5]
    rng = random.Random(4)

    async def chat(n: int) -> None:
        # Five clients at once, each message its own transaction, like the app's API.
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as client:
            for _ in range(n):
                await factories.message(client, gid, rng.choice(senders), body="secret text")
            await factories.message(client, other_gid, other_members[0], body="other group")

    await asyncio.gather(*(chat(10) for _ in range(5)))

    cur = await conn.execute("SELECT count(*) AS n FROM public.messages")
    assert (await cur.fetchone())["n"] == 55
    jobs = await _jobs(conn, "new_message")
    # Coalesced per group: one pending delivery for each group, whatever the burst.
    assert sorted(j["params"]["group_id"] for j in jobs) == sorted([str(gid), str(other_gid)])
    assert {j["status"] for j in jobs} == {"pending"}

    # The eventual notification says how many: all 50 for a member who never wrote.
    await _run(conn, start_worker, jobs)
    rows = {u: r for u, r in (await _notified(conn, "new_message")).items() if r["group_id"] == gid}
    # A sender hears about the messages after their own latest one; one with none is not told.
    cur = await conn.execute(
        "SELECT s.sender_id FROM public.messages s WHERE s.group_id = %s GROUP BY s.sender_id"
        " HAVING EXISTS (SELECT 1 FROM public.messages o WHERE o.group_id = %s"
        "   AND o.sender_id <> s.sender_id AND o.created_at > max(s.created_at))",
        (gid, gid),
    )
    told = {row["sender_id"] for row in await cur.fetchall()}
    assert set(rows) == {*members[5:], *told}
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
    jobs = await _jobs(conn, "new_message")
    assert len(jobs) == 1
    await _run(conn, start_worker, jobs)

    cur = await conn.execute("SELECT title, body, data FROM broseph.push_outbox")
    [push] = await cur.fetchall()
    assert push["body"] == messages_body(5, 2, ["Ben", "Ana"])  # the latest sender first
    assert push["data"]["message_count"] == "5"


async def test_a_rolled_back_message_enqueues_nothing(conn, db_url):
    gid, (a, _b) = await _group_of(conn, 2)
    async with await psycopg.AsyncConnection.connect(db_url) as client:
        await factories.message(client, gid, a)
        cur = await client.execute(
            "SELECT count(*) AS n FROM broseph.job_records WHERE job_type = 'DeliverGroupEvent'"
        )
        assert (await cur.fetchone())[0] == 1  # visible inside the transaction
        await client.rollback()
    assert await _jobs(conn) == []


async def test_a_client_insert_under_rls_enqueues_through_the_security_definer_trigger(
    profile_conn,
):
    # On plain PostgreSQL and on a Supabase-like database (tests/profiles.py).
    conn = profile_conn
    gid, (a, _b) = await _group_of(conn, 2)
    async with conn.transaction():
        await as_client(conn, "authenticated", a)
        await conn.execute(
            "INSERT INTO public.messages (group_id, sender_id, body) VALUES (%s, %s, 'hi')",
            (gid, a),
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            async with conn.transaction():
                await conn.execute("SELECT broseph.enqueue('DeliverGroupEvent', '{}')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            async with conn.transaction():
                await conn.execute("SELECT broseph.notify_prompts_published(ARRAY[]::uuid[])")
    [job] = await _jobs(conn, "new_message")
    assert job["params"]["group_id"] == str(gid)


async def test_a_member_joining_notifies_the_members_already_there(conn, app, start_worker):
    gid, (a, b, muted) = await _group_of(conn, 3)
    await conn.execute("UPDATE public.group_members SET muted = true WHERE user_id = %s", (muted,))
    newcomer = await factories.user(conn, name="Newcomer")
    await factories.member(conn, gid, newcomer)

    [job] = await _jobs(conn, "friend_joined")
    assert job["params"] == {
        "group_id": str(gid),
        "type": "friend_joined",
        "friend_id": str(newcomer),
    }
    await _run(conn, start_worker, [job])
    rows = await _notified(conn, "friend_joined")
    assert set(rows) == {a, b}
    assert {(r["data"]["friend_id"], r["status"], r["reason"]) for r in rows.values()} == {
        (str(newcomer), "skipped", "no live devices")
    }


async def test_a_stored_prompt_notifies_every_member_once(conn, app, start_worker):
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
    # Publishing it again (issue 14 part 1's publish statement) adds nothing either.
    await conn.execute("SELECT broseph.notify_prompts_published(%s)", ([prompt_id],))

    [job] = await _jobs(conn, "new_prompt")
    assert job["idempotency_key"] == f"new_prompt:{prompt_id}"
    await _run(conn, start_worker, [job])
    rows = await _notified(conn, "new_prompt")
    assert set(rows) == set(members[1:])
    assert {r["record_id"] for r in rows.values()} == {job["id"]}


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
    rows = await _notified(conn, "new_prompt")
    assert {r["status"] for r in rows.values()} == {"sent"}
    # Each member's push names their own notification.
    assert {
        fcm.requests_for(d.identifier)[0].message["data"]["notification_id"] for d in devices
    } == {str(r["id"]) for r in rows.values()}
