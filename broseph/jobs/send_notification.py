"""
SendNotification: one push notification to every live device of one user.

Producers: the `prompt_reminders` periodic task below; a group delivery
(broseph/jobs/deliver_group_event.py) rescheduling a member in quiet hours to the end of their
window; NotifyMembers jobs still queued from before migrations/0040 (the triggers now enqueue one
DeliverGroupEvent per group event instead of a SendNotification per member); and anything else
through `broseph.enqueue`. The
payload names the user, the type and the subjects' ids; everything the push says is read from
the database when the job runs.

The decision, in order (each skip is stored on the notification with its reason):
  user gone → nothing to store (the job's result says so); group gone → likewise;
  the type switched off in the user's preferences → skipped; not a member → skipped;
  group muted → skipped; the type's own reasons (no new messages, stale, prompt answered or
  over, friend gone) → skipped; quiet hours → rescheduled (below); otherwise sent.

Quiet hours: a job that lands in the user's quiet window (their time zone) enqueues a fresh
SendNotification with the same payload and run_at = the end of the window (idempotency key
quiet:<record_id>, so a re-run of this job adds nothing) and completes with a result naming it.
A fresh job rather than a retry because nothing failed: a retry would spend one of the
delivery's attempts, log `job_failed` and show the record as `retrying` for a whole night. The
rescheduled job shares the coalesce key, so new messages arriving overnight fold into it.

Budget: with FCM_MESSAGES_PER_MINUTE set, the devices to push to take their share of the shared
budget (broseph/budgets.py) in the transaction that marks them sending; without it nothing is
marked and the job snoozes — no attempt spent, the record says why; its re-run finds the
notification pending and delivers it (quiet hours are not asked again: it is under way).

Delivery: `broseph.notify.delivery` (rows per (notification, device), at most two copies per
device even across crashes). FCM answers per device: delivered; dead token → the device is
disabled; retryable (quota, unavailable, internal) → the job raises and the lifecycle retries it
with backoff, resending only those devices; the last attempt gives up and the job fails.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal
from zoneinfo import ZoneInfo

import psycopg
from pydantic import BaseModel, ConfigDict

from broseph import budgets, db, enqueue, idempotency, sql
from broseph.errors import RetryableJobError, Snooze
from broseph.jobs.base import Id, JobPayload, JobRun, JobType, Periodic, Requires
from broseph.notify import content, delivery, quiet_hours, reminders
from broseph.providers.push import PushMessage
from broseph.services import Services

NotificationType = Literal["new_message", "prompt_reminder", "friend_joined", "new_prompt"]

# The ids each type must name. Others may be present (producers send what they have); the
# handler ignores those its type does not use.
REQUIRED_IDS: Final[dict[str, tuple[str, ...]]] = {
    "new_message": ("group_id",),
    "prompt_reminder": ("group_id", "prompt_id"),
    "friend_joined": ("group_id", "friend_id"),
    "new_prompt": ("group_id", "prompt_id"),
}


class NotificationData(BaseModel):
    """
    The subjects of a notification, ids only; they become the push's deep-link data.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    group_id: Id | None = None
    message_id: Id | None = None
    prompt_id: Id | None = None
    friend_id: Id | None = None


class SendNotification(JobPayload):
    job_type: ClassVar[str] = "SendNotification"

    # Both faces enforce REQUIRED_IDS through JobPayload.requires (and the SQL field spec).
    requires: ClassVar[Requires] = {
        "type": {kind: tuple(f"data.{name}" for name in ids) for kind, ids in REQUIRED_IDS.items()}
    }

    user_id: Id
    type: NotificationType
    data: NotificationData


@dataclass(frozen=True)
class _Context:
    time_zone: str
    enabled: bool
    quiet_start: datetime.time | None
    quiet_end: datetime.time | None
    group_exists: bool
    group_name: str | None
    is_member: bool
    muted: bool
    notification_id: uuid.UUID | None
    notification_status: str | None


async def handle(run: JobRun, payload: SendNotification) -> None:
    now = run.services.clock()
    # Reads only: each statement stands alone (no BEGIN / COMMIT round trips).
    async with db.statements(run.pool) as conn:
        ctx = await _context(conn, run, payload)
        if ctx is None or not ctx.group_exists:
            # Deleted while the job waited; nothing to store a notification against.
            _result(run, "skipped", "user not found" if ctx is None else "group not found")
            return
        if ctx.notification_status not in (None, "pending"):
            run.result = {
                "status": ctx.notification_status,
                "notification_id": str(ctx.notification_id),
                "reason": "already finished (a re-run)",
            }
            return
        decision = await _decide(conn, run, payload, ctx, now)
    if isinstance(decision, content.Skip):
        await _skip(run, payload, decision)
        return
    if ctx.notification_id is None:
        # Quiet hours hold back a new notification; one already being delivered is finished.
        until = quiet_hours.quiet_until(now, ctx.time_zone, ctx.quiet_start, ctx.quiet_end)
        if until is not None:
            await _reschedule(run, payload, ctx, until)
            return
    await _deliver(run, payload, decision)


async def _context(
    conn: psycopg.AsyncConnection[Any], run: JobRun, payload: SendNotification
) -> _Context | None:
    row = await sql.row(
        conn,
        "notification_context",
        {
            "user_id": payload.user_id,
            "type": payload.type,
            "group_id": payload.data.group_id,
            "record_id": run.record_id,
        },
    )
    return _Context(**row) if row else None


async def _decide(
    conn: psycopg.AsyncConnection[Any],
    run: JobRun,
    payload: SendNotification,
    ctx: _Context,
    now: datetime.datetime,
) -> content.Content | content.Skip:
    refused = refusal(payload.type, enabled=ctx.enabled, is_member=ctx.is_member, muted=ctx.muted)
    if refused is not None:
        return content.Skip(refused)
    assert payload.data.group_id is not None and ctx.group_name is not None
    subject = content.Subject(
        record_id=run.record_id,
        user_id=payload.user_id,
        type=payload.type,
        group_id=payload.data.group_id,
        prompt_id=payload.data.prompt_id,
        friend_id=payload.data.friend_id,
        group_name=ctx.group_name,
    )
    stale_after = datetime.timedelta(minutes=run.services.settings.new_message_stale_after_minutes)
    return await content.build(conn, subject, now=now, stale_after=stale_after)


def refusal(kind: str, *, enabled: bool, is_member: bool, muted: bool) -> str | None:
    """
    Why the user does not want this notification (preferences, membership, mute), if they don't.
    """
    if not enabled:
        return f"{kind} notifications are off in the user's preferences"
    if not is_member:
        return "the user is not a member of the group"
    if muted:
        return "group muted"
    return None


async def _open(
    conn: psycopg.AsyncConnection[Any],
    run: JobRun,
    payload: SendNotification,
    decision: content.Content | content.Skip,
) -> uuid.UUID | None:
    """
    This job's notification row (created, or updated while pending); None if already finished.
    """
    opened = await delivery.open_notifications(
        conn,
        record_id=run.record_id,
        type=payload.type,
        group_id=payload.data.group_id,
        decisions=[(payload.user_id, decision)],
    )
    return opened.get(payload.user_id)


async def _skip(run: JobRun, payload: SendNotification, decision: content.Skip) -> None:
    async with db.statements(run.pool) as conn:  # one statement
        notification_id = await _open(conn, run, payload, decision)
    _result(run, "skipped", decision.reason, notification_id)
    run.log.info("notification_skipped", type=payload.type, reason=decision.reason)


async def _reschedule(
    run: JobRun, payload: SendNotification, ctx: _Context, until: datetime.datetime
) -> None:
    async with run.pool.connection() as conn, conn.transaction():
        next_id = await enqueue.enqueue(
            conn,
            payload,
            idempotency_key=idempotency.quiet(run.record_id),
            run_at=until,
            source="quiet_hours",
        )
    local_end = until.astimezone(ZoneInfo(ctx.time_zone))
    run.result = {
        "status": "rescheduled",
        "reason": "quiet hours",
        "run_at": until.isoformat(),
        "local_end": f"{local_end:%Y-%m-%d %H:%M} {ctx.time_zone}",
        "record_id": str(next_id),
    }
    run.log.info(
        "notification_rescheduled", type=payload.type, run_at=until.isoformat(), record=str(next_id)
    )


async def _deliver(run: JobRun, payload: SendNotification, decision: content.Content) -> None:
    refused: Snooze | None = None
    async with run.pool.connection() as conn, conn.transaction():
        notification_id = await _open(conn, run, payload, decision)
        if notification_id is None:
            _result(run, "skipped", "already finished (a re-run)")
            return
        sends = await delivery.plan(conn, {notification_id: payload.user_id})
        if sends:
            # One FCM message per device from the shared FCM_MESSAGES_PER_MINUTE budget, taken
            # with the marking; refused, nothing is marked and the job snoozes once the
            # notification (pending) is committed — the re-run finds and finishes it.
            refused = await take_push_budget(conn, run, len(sends))
            if refused is None:
                await delivery.mark_sending(conn, sends)
        else:
            await _conclude(conn, run, notification_id)
    if refused is not None:
        raise refused
    if not sends:
        return
    message = PushMessage(
        title=decision.title,
        body=decision.body,
        data={"type": payload.type, "notification_id": str(notification_id), **decision.data},
        collapse_key=f"group-{payload.data.group_id}",
        kind=payload.type,
    )
    results = await run.services.push.send(message, [s.target for s in sends])
    # A worker dying here (FCM answered, answers not stored) costs each device one duplicate at
    # most: tests/test_notification_crash.py kills one here, through its app's push sender.
    async with run.pool.connection() as conn, conn.transaction():
        await delivery.record(conn, sends, results)
        retry_error = await _conclude(conn, run, notification_id)
    if retry_error is not None:
        raise RetryableJobError(retry_error)


async def take_push_budget(
    conn: psycopg.AsyncConnection[Any], run: JobRun, messages: int
) -> Snooze | None:
    """
    `messages` FCM messages from the shared FCM_MESSAGES_PER_MINUTE budget, in the caller's
    transaction; the Snooze to raise (after committing) when there is not enough.
    """
    return await budgets.take(
        conn,
        [
            budgets.Take(
                budgets.FCM_MESSAGES, messages, run.services.settings.fcm_messages_per_minute
            )
        ],
    )


async def _conclude(
    conn: psycopg.AsyncConnection[Any], run: JobRun, notification_id: uuid.UUID
) -> str | None:
    """
    Store the notification's outcome; returns the error to retry with, if devices remain.
    """
    summary = (await delivery.summaries(conn, [notification_id]))[notification_id]
    [(status, reason, retry_error)] = await conclude(conn, run, {notification_id: summary})
    _result(run, status, reason, notification_id)
    run.result.update(
        delivered=summary.delivered,
        unconfirmed=summary.unconfirmed,
        dead_token=summary.dead_token,
        failed=summary.failed,
        retry=summary.retry,
    )
    run.log.info(
        "notification_pushed",
        notification_id=str(notification_id),
        status=status,
        delivered=summary.delivered,
        unconfirmed=summary.unconfirmed,
        dead_token=summary.dead_token,
        failed=summary.failed,
        retry=summary.retry,
    )
    return retry_error


async def conclude(
    conn: psycopg.AsyncConnection[Any],
    run: JobRun,
    summaries: Mapping[uuid.UUID, delivery.Summary],
) -> list[tuple[str, str | None, str | None]]:
    """
    Store every notification's outcome from its deliveries in one statement; each one's
    (status, reason, error to retry with), in the order of `summaries`.
    """
    outcomes = [
        outcome(s, attempt=run.attempt, last_attempt=run.is_last_attempt)
        for s in summaries.values()
    ]
    await conn.execute(
        sql.query("notification_finish"),
        {
            "notification_ids": list(summaries),
            "statuses": [status for status, _, _ in outcomes],
            "reasons": [reason for _, reason, _ in outcomes],
            "delivered": [s.reached > 0 for s in summaries.values()],
        },
    )
    return outcomes


def outcome(
    summary: delivery.Summary, *, attempt: int, last_attempt: bool
) -> tuple[str, str | None, str | None]:
    """
    (notification status, reason, error to retry with) from the deliveries so far, on the job's
    `attempt`-th attempt.
    """
    codes = summary.error_codes or "unknown error"
    if summary.retry:
        if not last_attempt:
            reason = f"retrying {summary.retry} device(s): {codes}"
            return "pending", reason, f"push to {summary.retry} device(s) to be retried: {codes}"
        reason = f"{summary.retry} device(s) not reached after {attempt} attempts: {codes}"
        return ("sent" if summary.reached else "failed"), reason, reason
    if summary.reached:
        notes = [f"{summary.dead_token} dead device(s) disabled"] if summary.dead_token else []
        notes += [f"{summary.failed} device(s) failed: {codes}"] if summary.failed else []
        return "sent", "; ".join(notes) or None, None
    if summary.dead_token and not summary.failed:
        return "failed", f"all devices dead ({summary.dead_token} disabled)", None
    if summary.dead_token or summary.failed:
        return "failed", f"no device reached: {summary.dead_token} dead, {codes}", None
    return "skipped", "no live devices", None


def _result(
    run: JobRun, status: str, reason: str | None, notification_id: uuid.UUID | None = None
) -> None:
    run.result = {"status": status, "reason": reason}
    if notification_id is not None:
        run.result["notification_id"] = str(notification_id)


JOB = JobType(
    payload=SendNotification,
    handle=handle,
    queue="notifications",
    # 5, 10, 20, 40, 80, 160, 300 s between attempts: about ten minutes of FCM quota or outage
    # before the job gives up. Two extra attempts are spent only if a worker dies mid-send.
    max_attempts=8,
    backoff_base_seconds=5.0,
    backoff_cap_seconds=300.0,
    uses=frozenset({"push"}),
    description="One push notification to every live device of one user, built from current"
    " database state, honouring preferences, muted groups and quiet hours; FCM through"
    " firebase-admin, or the development outbox without credentials.",
    coalesce_fields=("user_id", "type", "data"),
    coalesce_delay=datetime.timedelta(seconds=5),
    lock_fields=("user_id", "type", "data"),
)


async def remind(services: Services, timestamp: int) -> int:
    """
    The `prompt_reminders` tick: a prompt_reminder for every member due one (see
    `broseph.notify.reminders`); returns how many it enqueued. Ticks are idempotent: the key
    reminder:<user_id>:<prompt_id> makes a second tick, or a second worker's, add nothing.
    """
    now = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    async with services.pool.connection() as conn:
        due = await reminders.due(conn, now=now, hour=services.settings.reminder_hour)
        payloads = [
            SendNotification(
                user_id=d.user_id,
                type="prompt_reminder",
                data=NotificationData(group_id=d.group_id, prompt_id=d.prompt_id),
            )
            for d in due
        ]
        keys = [idempotency.reminder(d.user_id, d.prompt_id) for d in due]
        async with conn.transaction():
            await enqueue.enqueue_many(conn, payloads, idempotency_keys=keys, source="schedule")
    return len(payloads)


PERIODIC = (Periodic(name="prompt_reminders", cron=lambda s: str(s.reminder_cron), run=remind),)
