"""
Every idempotency key built in SQL agrees with its builder in `broseph.idempotency`: the
new_prompt trigger's keys (migrations/0040) are the builder's, a group delivery recognises exactly
the builder's key of a member's own (quiet hours) delivery, and the queries that skip what is
already enqueued (prompt fan-out, reminders) recognise exactly the builder's key — a record under
any other spelling of the same ids does not stop them.
"""

from __future__ import annotations

import datetime
import uuid

from broseph import enqueue, idempotency, sql
from broseph.jobs import deliver_group_event
from broseph.jobs.deliver_group_event import DeliverGroupEvent
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
    await _members(conn, small, 3)
    prompt = await factories.prompt(conn, small, TODAY)
    large = await factories.group(conn, name="Large")
    await _members(conn, large, 30)
    other = await factories.prompt(conn, large, TODAY)
    # One delivery per prompt, whatever the group's size.
    assert await _keys(conn, "DeliverGroupEvent") == {
        idempotency.new_prompt_fanout(prompt),
        idempotency.new_prompt_fanout(other),
    }


async def _handed_off(conn, payload: DeliverGroupEvent, record_id: uuid.UUID) -> bool:
    [row] = await sql.rows(
        conn,
        "group_event_members",
        {
            **payload.model_dump(),
            "record_id": record_id,
            "quiet_key": deliver_group_event.own_key_pattern(record_id, payload),
        },
    )
    return bool(row["handed_off"])


async def test_the_group_delivery_recognises_exactly_the_builders_member_keys(conn):
    gid = await factories.group(conn, name="Crew")
    [user] = await _members(conn, gid, 1)
    prompt = await factories.prompt(conn, gid, TODAY)
    record = uuid.uuid4()
    data = NotificationData(group_id=gid, prompt_id=prompt)
    for kind, key, other in [
        ("new_prompt", idempotency.new_prompt(user, prompt), f"new_prompt:{prompt}:{user}"),
        ("new_message", idempotency.quiet_member(record, user), f"quiet:{user}:{record}"),
    ]:
        payload = DeliverGroupEvent(group_id=gid, type=kind, prompt_id=prompt)  # type: ignore[arg-type]
        own = SendNotification(user_id=user, type=kind, data=data)  # type: ignore[arg-type]
        # The same ids under another spelling do not count (another message id: no coalescing) …
        elsewhere = own.model_copy(update={"data": data.model_copy(update={"message_id": record})})
        await enqueue.enqueue(conn, elsewhere, idempotency_key=other)
        assert not await _handed_off(conn, payload, record)
        # … the builder's key does: that member's delivery is their own job's.
        await enqueue.enqueue(conn, own, idempotency_key=key)
        assert await _handed_off(conn, payload, record)


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
