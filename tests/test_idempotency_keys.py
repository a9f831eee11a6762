"""
Every idempotency key built in SQL agrees with its builder in `broseph.idempotency`: the
new_prompt trigger's keys (migrations/0007) are the builder's, and the queries that skip what is
already enqueued (prompt fan-out, reminders) recognise exactly the builder's key — a record under
any other spelling of the same ids does not stop them.
"""

from __future__ import annotations

import datetime
import uuid

from broseph import enqueue, idempotency, sql
from broseph.jobs.generate_prompt import GeneratePrompt
from broseph.jobs.send_notification import NotificationData, SendNotification
from broseph.notify import reminders
from tests import factories

UTC = datetime.UTC
TODAY = datetime.datetime.now(UTC).date()


def at(hour: int, minute: int = 0) -> datetime.datetime:
    return datetime.datetime.combine(TODAY, datetime.time(hour, minute), tzinfo=UTC)


async def _members(conn, gid: uuid.UUID, count: int) -> list[uuid.UUID]:
    users = []
    for n in range(count):
        uid = await factories.user(conn, name=f"Member {n}")
        await factories.member(conn, gid, uid)
        users.append(uid)
    return users


async def _keys(conn, job_type: str) -> set[str]:
    cur = await conn.execute(
        "SELECT idempotency_key FROM broseph.job_records"
        " WHERE job_type = %s AND params ->> 'type' = 'new_prompt'",
        (job_type,),
    )
    return {row["idempotency_key"] for row in await cur.fetchall()}


async def test_the_new_prompt_trigger_builds_the_builders_keys(conn):
    small = await factories.group(conn, name="Small")
    members = await _members(conn, small, 3)
    prompt = await factories.prompt(conn, small, TODAY)
    assert await _keys(conn, "SendNotification") == {
        idempotency.new_prompt(user, prompt) for user in members
    }

    # Above the inline limit the trigger enqueues one NotifyMembers job instead.
    await conn.execute(
        "CREATE OR REPLACE FUNCTION broseph.notify_inline_max() RETURNS integer"
        " LANGUAGE sql STABLE AS $$ SELECT 1 $$"
    )
    large = await factories.group(conn, name="Large")
    await _members(conn, large, 2)
    fanned = await factories.prompt(conn, large, TODAY)
    assert await _keys(conn, "NotifyMembers") == {idempotency.new_prompt_fanout(fanned)}


async def _fanout_targets(conn) -> list[uuid.UUID]:
    cur = await conn.execute(sql.query("prompt_fanout_targets"), {"now": at(12), "hour": 8})
    return [row["group_id"] for row in await cur.fetchall()]


async def test_the_prompt_fanout_query_skips_exactly_the_builders_key(conn):
    gid = await factories.group(conn, name="Crew", time_zone="UTC")
    payload = GeneratePrompt(group_id=gid, local_date=TODAY)
    assert await _fanout_targets(conn) == [gid]

    # The same ids under another spelling (the date without dashes) do not count …
    record = await enqueue.enqueue(conn, payload, idempotency_key=f"prompt:{gid}:{TODAY:%Y%m%d}")
    assert await _fanout_targets(conn) == [gid]
    # … the builder's key does.
    await _rekey(conn, record, idempotency.prompt(gid, TODAY))
    assert await _fanout_targets(conn) == []


async def test_the_reminder_query_skips_exactly_the_builders_key(conn):
    gid = await factories.group(conn, name="Crew")
    [uid] = await _members(conn, gid, 1)
    pid = await factories.prompt(conn, gid, TODAY)
    await conn.execute("UPDATE public.prompts SET created_at = %s WHERE id = %s", (at(8), pid))
    payload = SendNotification(
        user_id=uid, type="prompt_reminder", data=NotificationData(group_id=gid, prompt_id=pid)
    )

    async def due() -> list[tuple[uuid.UUID, uuid.UUID]]:
        found = await reminders.due(conn, now=at(20, 15), hour=20)
        return [(d.user_id, d.prompt_id) for d in found]

    assert await due() == [(uid, pid)]
    record = await enqueue.enqueue(conn, payload, idempotency_key=f"reminder:{pid}:{uid}")
    assert await due() == [(uid, pid)]  # the ids swapped: not the reminder's key
    await _rekey(conn, record, idempotency.reminder(uid, pid))
    assert await due() == []


async def _rekey(conn, record_id: uuid.UUID, key: str) -> None:
    # A second enqueue of the same notification would coalesce into the first (and keep its
    # key): change the key of the one record instead.
    await conn.execute(
        "UPDATE broseph.job_records SET idempotency_key = %s WHERE id = %s", (key, record_id)
    )
