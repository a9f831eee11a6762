"""
DeliverGroupEvent: the push notifications of one group event — a burst of new messages, a member
joining, a new prompt — to every member, in one job whatever the group's size.

Producers: the triggers of migrations/0040 (one job per (group, event), in the same transaction as
the message, member or prompt) and `broseph.notify_prompts_published(prompt ids)`, which whatever
publishes prompts calls (key new_prompt:<prompt_id>: a prompt is delivered once). new_message
carries the group only and coalesces per group while pending (the trigger's debounce): a burst is
one job, and each member's push counts the messages they have not heard about.

Set-based, in a fixed number of statements for any number of members:
  1. one query decides for every member (`group_event_members`): the rule of
     broseph.notification_recipients (members, muted ones left out, new_message: those with
     messages from others they have not heard about, friend_joined: those there before the friend),
     then — the reasons of SendNotification's decision — the type off in their preferences →
     skipped; the subject gone or stale (prompt or friend not found, the friend left again, the
     newest message too old) → skipped; quiet hours → rescheduled; otherwise sent;
  2. one statement stores the skips (a notification row each, with its reason);
  3. members in quiet hours get their own SendNotification at the end of their window (as
     SendNotification reschedules itself; key new_prompt:<user_id>:<prompt_id> or
     quiet:<record_id>:<user_id>, so a re-run adds nothing and later finds them handed off);
  4. one transaction opens the pending notifications, plans every device, takes the FCM budget and
     marks the deliveries sending (broseph.notify.delivery);
  5. one `send_each` of every member's message to their devices (≤ 500 per send_each_async);
  6. one transaction records every answer (dead tokens disabled) and every notification's outcome.

A retry (some devices answered retry) re-runs it all: members whose notification is finished are
left alone, pending ones are not asked about quiet hours again and resend only to devices not yet
answered; a crash between 5 and 6 resends a device at most once more (the bound of
broseph.notify.delivery). The job raises to retry while any device is to be retried; on the last
attempt those notifications give up as SendNotification's do. Without FCM budget nothing is
marked and the job snoozes; the re-run finds the notifications pending and delivers them.
"""

from __future__ import annotations

import datetime
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import psycopg

from broseph import db, enqueue, idempotency, sql
from broseph.errors import RetryableJobError
from broseph.jobs import send_notification
from broseph.jobs.base import Id, JobPayload, JobRun, JobType, Requires
from broseph.jobs.send_notification import (
    NotificationData,
    SendNotification,
    conclude,
    refusal,
    take_push_budget,
)
from broseph.notify import content, delivery, quiet_hours
from broseph.providers.push import PushItem, PushMessage


class DeliverGroupEvent(JobPayload):
    job_type: ClassVar[str] = "DeliverGroupEvent"

    # friend_joined names the friend, new_prompt the prompt (both faces: JobPayload.requires).
    requires: ClassVar[Requires] = {
        "type": {"friend_joined": ("friend_id",), "new_prompt": ("prompt_id",)}
    }

    group_id: Id
    type: Literal["new_message", "friend_joined", "new_prompt"]
    prompt_id: Id | None = None
    friend_id: Id | None = None


@dataclass(frozen=True)
class _Open:
    """
    A member's notification to store: skipped with a reason, or pending with its content.
    """

    user_id: uuid.UUID
    decision: content.Content | content.Skip


async def handle(run: JobRun, payload: DeliverGroupEvent) -> None:
    now = run.services.clock()
    stale_after = datetime.timedelta(minutes=run.services.settings.new_message_stale_after_minutes)
    async with db.statements(run.pool) as conn:  # one statement
        members = await sql.rows(
            conn,
            "group_event_members",
            {
                "group_id": payload.group_id,
                "type": payload.type,
                "prompt_id": payload.prompt_id,
                "friend_id": payload.friend_id,
                "record_id": run.record_id,
                "quiet_key": own_key_pattern(run.record_id, payload),
            },
        )
    skips: list[_Open] = []
    sends: list[_Open] = []
    quiet: dict[datetime.datetime, list[uuid.UUID]] = defaultdict(list)
    finished = handed_off = 0
    for member in members:
        if member["notification_status"] not in (None, "pending"):
            finished += 1  # a re-run: this member's notification is final
            continue
        under_way = member["notification_id"] is not None
        if member["handed_off"] and not under_way:
            handed_off += 1  # rescheduled to their own job by an earlier attempt
            continue
        decision = _decide(payload, member, now=now, stale_after=stale_after)
        if decision is None:
            continue  # new_message: nothing they have not heard about (e.g. the sender)
        if isinstance(decision, content.Skip):
            skips.append(_Open(member["user_id"], decision))
            continue
        until = (
            None
            if under_way
            else quiet_hours.quiet_until(
                now, member["time_zone"], member["quiet_start"], member["quiet_end"]
            )
        )
        if until is not None:
            quiet[until].append(member["user_id"])
            continue
        sends.append(_Open(member["user_id"], decision))
    if skips:
        async with db.statements(run.pool) as conn:  # one statement
            await _open(conn, run, payload, skips)
    if quiet:
        await _reschedule(run, payload, quiet)
    run.result = {
        "members": len(members),
        "skipped": len(skips),
        "rescheduled": sum(len(users) for users in quiet.values()),
        "handed_off": handed_off,
        "already_finished": finished,
    }
    await _deliver(run, payload, sends)
    run.log.info("group_event_delivered", type=payload.type, **run.result)


_PLACEHOLDER = uuid.UUID(int=0)


def own_key(record_id: uuid.UUID, payload: DeliverGroupEvent, user_id: uuid.UUID) -> str:
    """
    The idempotency key of a member's own delivery (quiet hours) from the job `record_id`.
    """
    if payload.type == "new_prompt":
        assert payload.prompt_id is not None  # `requires`: validation refused it otherwise
        return idempotency.new_prompt(user_id, payload.prompt_id)  # as the per-user path's
    return idempotency.quiet_member(record_id, user_id)


def own_key_pattern(record_id: uuid.UUID, payload: DeliverGroupEvent) -> str:
    """
    `own_key` with '{user_id}' in the member's place: the decision query fills it per member.
    """
    return own_key(record_id, payload, _PLACEHOLDER).replace(str(_PLACEHOLDER), "{user_id}")


def _decide(
    payload: DeliverGroupEvent,
    member: dict[str, Any],
    *,
    now: datetime.datetime,
    stale_after: datetime.timedelta,
) -> content.Content | content.Skip | None:
    """
    One member's notification from their row of `group_event_members`; None: not theirs to get.
    """
    if payload.type == "new_message" and member["message_count"] == 0:
        return None
    refused = refusal(payload.type, enabled=member["enabled"], is_member=True, muted=False)
    if refused is not None:
        return content.Skip(refused)
    name = member["group_name"]
    if payload.type == "new_message":
        return content.new_message(payload.group_id, name, member, now=now, stale_after=stale_after)
    if payload.type == "new_prompt":
        assert payload.prompt_id is not None
        return content.new_prompt(payload.group_id, name, payload.prompt_id, member["prompt_text"])
    assert payload.friend_id is not None
    return content.friend_joined(
        payload.group_id,
        name,
        payload.friend_id,
        member["friend_name"],
        member["friend_is_member"],
    )


async def _open(
    conn: psycopg.AsyncConnection[Any],
    run: JobRun,
    payload: DeliverGroupEvent,
    opens: list[_Open],
) -> dict[uuid.UUID, uuid.UUID]:
    """
    Store these members' notifications in one statement; user id → notification id of those
    written (a member whose notification was already final is left out).
    """
    return await delivery.open_notifications(
        conn,
        record_id=run.record_id,
        type=payload.type,
        group_id=payload.group_id,
        decisions=[(o.user_id, o.decision) for o in opens],
    )


async def _reschedule(
    run: JobRun, payload: DeliverGroupEvent, quiet: dict[datetime.datetime, list[uuid.UUID]]
) -> None:
    """
    Each member in quiet hours gets their own SendNotification at the end of their window.
    """
    data = NotificationData(
        group_id=payload.group_id, prompt_id=payload.prompt_id, friend_id=payload.friend_id
    )
    async with run.pool.connection() as conn, conn.transaction():
        # One enqueue per distinct window end (members share few time zones and windows).
        for until, users in sorted(quiet.items()):
            await enqueue.enqueue_many(
                conn,
                [SendNotification(user_id=u, type=payload.type, data=data) for u in users],
                idempotency_keys=[own_key(run.record_id, payload, u) for u in users],
                run_at=until,
                source="quiet_hours",
            )
    run.log.info(
        "notifications_rescheduled",
        type=payload.type,
        members=sum(len(u) for u in quiet.values()),
        until=[until.isoformat() for until in sorted(quiet)],
    )


async def _deliver(run: JobRun, payload: DeliverGroupEvent, opens: list[_Open]) -> None:
    if not opens:
        return
    decisions = {o.user_id: o.decision for o in opens}
    refused = None
    async with run.pool.connection() as conn, conn.transaction():
        opened = await _open(conn, run, payload, opens)
        owners = {nid: uid for uid, nid in opened.items()}
        sends = await delivery.plan(conn, owners)
        if sends:
            # One FCM message per device from the shared budget, taken with the marking; refused,
            # nothing is marked and the job snoozes once the notifications (pending) are
            # committed — the re-run finds and finishes them.
            refused = await take_push_budget(conn, run, len(sends))
            if refused is None:
                await delivery.mark_sending(conn, sends)
        # Members without a device to send to now are concluded here.
        planned = {s.notification_id for s in sends}
        idle = [nid for nid in owners if nid not in planned]
        if idle:
            await conclude(conn, run, await delivery.summaries(conn, idle))
    if refused is not None:
        raise refused
    if not sends:
        run.result.update(notified=len(opened), devices=0)
        return
    items = []
    for send in sends:
        decision = decisions[owners[send.notification_id]]
        assert isinstance(decision, content.Content)
        items.append(
            PushItem(
                PushMessage(
                    title=decision.title,
                    body=decision.body,
                    data={
                        "type": payload.type,
                        "notification_id": str(send.notification_id),
                        **decision.data,
                    },
                    collapse_key=f"group-{payload.group_id}",
                    kind=payload.type,
                ),
                send.target,
            )
        )
    results = await run.services.push.send_each(items)
    # A worker dying here (FCM answered, answers not stored) costs each device one duplicate at
    # most: tests/test_notification_crash.py kills one here, through its app's push sender.
    sent_to = list(dict.fromkeys(s.notification_id for s in sends))
    async with run.pool.connection() as conn, conn.transaction():
        await delivery.record(conn, sends, results)
        outcomes = await conclude(conn, run, await delivery.summaries(conn, sent_to))
    statuses = [status for status, _, _ in outcomes]
    retry = [error for _, _, error in outcomes if error is not None]
    run.result.update(
        notified=len(opened),
        devices=len(sends),
        sent=statuses.count("sent"),
        failed=statuses.count("failed"),
        pending=statuses.count("pending"),
    )
    if retry:
        raise RetryableJobError(f"{len(retry)} member(s) with devices to retry: {retry[0]}")


JOB = JobType(
    payload=DeliverGroupEvent,
    handle=handle,
    queue="notifications",
    # SendNotification's policy: about ten minutes of FCM quota or outage before giving up.
    max_attempts=send_notification.JOB.max_attempts,
    backoff_base_seconds=send_notification.JOB.backoff_base_seconds,
    backoff_cap_seconds=send_notification.JOB.backoff_cap_seconds,
    uses=frozenset({"push"}),
    description="The push notifications of one group event (new messages, a member joining, a"
    " new prompt) to every member at once: one decision query, one send_each per 500 devices,"
    " preferences, muted groups and quiet hours honoured per member.",
    # new_message carries the group only: a burst leaves one pending delivery per group.
    coalesce_fields=("group_id", "type", "prompt_id", "friend_id"),
    coalesce_delay=datetime.timedelta(seconds=5),
    # Two deliveries of the same group and type never run at once: each counts what its members
    # have not heard about, and two at once would count the same messages twice.
    lock_fields=("group_id", "type"),
)
