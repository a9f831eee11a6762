"""
NotifyMembers: one SendNotification for every member of a large group, from the worker.

Retired by migrations/0040: the triggers enqueue one DeliverGroupEvent per group event
(broseph/jobs/deliver_group_event.py) whatever the group's size. The type stays in the catalogue
so NotifyMembers jobs queued before the upgrade still run, as below.

The triggers of migrations/0007 notify the members of a group in the inserting transaction only
up to `broseph.notify_inline_max()` members; beyond that each enqueue would lengthen a client's
INSERT, so they enqueue this one job instead (in the same transaction, so the notifications are
just as certain) and the worker does the fan-out here, in chunks of FANOUT_CHUNK_SIZE members per
transaction. The SendNotification jobs are the same ones the trigger would have made: new_message
coalesced per member and group, new_prompt under new_prompt:<user_id>:<prompt_id>.

A re-run (a crash halfway) enqueues again: new_message coalesces with what is pending, or runs
and finds nothing new; new_prompt and friend_joined keys (the latter per fan-out record) add
nothing twice.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from broseph import enqueue, idempotency, sql
from broseph.jobs.base import Id, JobRun, JobType
from broseph.jobs.deliver_group_event import DeliverGroupEvent
from broseph.jobs.send_notification import NotificationData, SendNotification


# A group event's fields (DeliverGroupEvent's, `requires` included), and the sender.
class NotifyMembers(DeliverGroupEvent):
    job_type: ClassVar[str] = "NotifyMembers"

    # new_message: the member who sent the messages (not notified).
    sender_id: Id | None = None


async def handle(run: JobRun, payload: NotifyMembers) -> None:
    chunk_size = run.services.settings.fanout_chunk_size
    async with run.pool.connection() as conn:
        recipients = await sql.rows(
            conn,
            "notify_members_recipients",
            {
                "group_id": payload.group_id,
                "type": payload.type,
                "sender_id": payload.sender_id,
                "friend_id": payload.friend_id,
            },
        )
        members = [row["user_id"] for row in recipients]
        data = NotificationData(
            group_id=payload.group_id, prompt_id=payload.prompt_id, friend_id=payload.friend_id
        )
        for start in range(0, len(members), chunk_size):
            chunk = members[start : start + chunk_size]
            async with conn.transaction():
                await enqueue.enqueue_many(
                    conn,
                    [SendNotification(user_id=u, type=payload.type, data=data) for u in chunk],
                    idempotency_keys=[_key(run, payload, u) for u in chunk],
                    source="fanout",
                )
            await run.progress(int(100 * (start + len(chunk)) / len(members)), "enqueued")
    run.result = {"members": len(members)}


def _key(run: JobRun, payload: NotifyMembers, user_id: uuid.UUID) -> str | None:
    if payload.type == "new_prompt":
        assert payload.prompt_id is not None  # `requires`: validation refused it otherwise
        return idempotency.new_prompt(user_id, payload.prompt_id)  # as the trigger's inline path
    if payload.type == "friend_joined":
        return idempotency.friend_joined(run.record_id, user_id)
    return None  # new_message coalesces instead


JOB = JobType(
    payload=NotifyMembers,
    handle=handle,
    queue="notifications",
    max_attempts=5,
    description="Fans a notification about a large group out to its members: one"
    " SendNotification each.",
    # A burst in a large group is one fan-out per sender while one is pending.
    coalesce_fields=("group_id", "type", "sender_id", "friend_id", "prompt_id"),
)
