"""
Per-device delivery bookkeeping: which devices to send to, and what FCM answered.

One row per (notification, device) in broseph.notification_deliveries (migrations/0007). The
protocol around the FCM call:

    1. `plan`          live devices without a final row (and within the duplicate bound)
    2. `mark_sending`  COMMITTED before the call: status sending, unanswered + 1
    3. the FCM call
    4. `record`        one transaction: each answer, dead tokens disabled, unanswered - 1

Each step is one statement for any number of notifications: SendNotification passes one, a
DeliverGroupEvent (broseph/jobs/deliver_group_event.py) every member's of a group event.

A retry (step 1 again) resends only devices whose row is `retry`, or `sending` — the worker died
between 3 and 4, so FCM may or may not have delivered. The duplicate bound: a device is sent to
only while `unanswered < MAX_COPIES`, so however many times workers die at that point a device
receives a notification at most MAX_COPIES (2) times; once the bound is reached its row becomes
`unconfirmed` and it is left alone. Without a crash every device gets it exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg.types.json import Jsonb

from broseph import sql
from broseph.notify import content
from broseph.providers.push import DeviceResult, Outcome, PushTarget

# At most this many copies of one notification reach one device, crashes included.
MAX_COPIES: Final = 2
# Rows in these states are never sent to again.
FINAL: Final = frozenset({"delivered", "dead_token", "failed", "unconfirmed"})


@dataclass(frozen=True)
class Send:
    """
    One request to make: a notification to one of its user's devices.
    """

    notification_id: uuid.UUID
    target: PushTarget


@dataclass(frozen=True)
class Summary:
    """
    Where all of a notification's deliveries stand.
    """

    delivered: int
    unconfirmed: int
    dead_token: int
    failed: int
    retry: int
    error_codes: str

    @property
    def reached(self) -> int:
        """
        Devices that have (or, unconfirmed, very probably have) the notification.
        """
        return self.delivered + self.unconfirmed


async def open_notifications(
    conn: psycopg.AsyncConnection[Any],
    *,
    record_id: uuid.UUID,
    type: str,
    group_id: uuid.UUID | None,
    decisions: Sequence[tuple[uuid.UUID, content.Content | content.Skip]],
) -> dict[uuid.UUID, uuid.UUID]:
    """
    The job's notifications of these users (user id, decision) in one statement: skipped with
    the reason, or pending with the content's data; created on the first decision, updated by
    later attempts while pending. User id → notification id of those written (a user whose
    notification was already final, a re-run, is left out).
    """
    rows = await sql.rows(
        conn,
        "notifications_open",
        {
            "type": type,
            "group_id": group_id,
            "record_id": record_id,
            "user_ids": [user for user, _ in decisions],
            "datas": [
                Jsonb(d.data if isinstance(d, content.Content) else {}) for _, d in decisions
            ],
            "statuses": [
                "skipped" if isinstance(d, content.Skip) else "pending" for _, d in decisions
            ],
            "reasons": [d.reason if isinstance(d, content.Skip) else None for _, d in decisions],
            "message_counts": [d.message_count for _, d in decisions],
            "covered_untils": [d.covered_until for _, d in decisions],
        },
    )
    return {row["user_id"]: row["id"] for row in rows}


async def plan(
    conn: psycopg.AsyncConnection[Any], notifications: Mapping[uuid.UUID, uuid.UUID]
) -> list[Send]:
    """
    Step 1: who gets a request now, for every notification (id → its user id) at once. Runs in
    the caller's transaction.
    """
    if not notifications:
        return []
    devices = await sql.rows(
        conn,
        "delivery_devices",
        {"notification_ids": list(notifications), "user_ids": list(notifications.values())},
    )
    sends: list[Send] = []
    unconfirmed: list[tuple[uuid.UUID, uuid.UUID]] = []
    for device in devices:
        if device["status"] in FINAL:
            continue
        if device["unanswered"] >= MAX_COPIES:
            # The duplicate bound, reached without an answer: marked final, never sent again.
            unconfirmed.append((device["notification_id"], device["device_id"]))
            continue
        target = PushTarget(device["device_id"], device["kind"], device["identifier"])
        sends.append(Send(device["notification_id"], target))
    if unconfirmed:
        await conn.execute(
            sql.query("deliveries_unconfirmed"),
            {
                "notification_ids": [n for n, _ in unconfirmed],
                "device_ids": [d for _, d in unconfirmed],
            },
        )
    return sends


async def mark_sending(conn: psycopg.AsyncConnection[Any], sends: Sequence[Send]) -> None:
    """
    Step 2: the requests about to be made. The caller commits before calling FCM.
    """
    await conn.execute(
        sql.query("deliveries_sending"),
        {
            "notification_ids": [s.notification_id for s in sends],
            "device_ids": [s.target.device_id for s in sends],
        },
    )


_STATUS: Final = {
    Outcome.DELIVERED: "delivered",
    Outcome.DEAD_TOKEN: "dead_token",
    Outcome.RETRY: "retry",
    Outcome.FAILED: "failed",
}


async def record(
    conn: psycopg.AsyncConnection[Any],
    sends: Sequence[Send],
    results: Sequence[DeviceResult],
) -> None:
    """
    Step 4: FCM's answers (`results[i]` answers `sends[i]`), dead tokens disabled. Runs in the
    caller's transaction; `summaries` then gives each notification's whole picture.
    """
    if results:
        await conn.execute(
            sql.query("deliveries_outcome"),
            {
                "notification_ids": [s.notification_id for s in sends],
                "device_ids": [r.device_id for r in results],
                "statuses": [_STATUS[r.outcome] for r in results],
                "message_ids": [r.message_id for r in results],
                "error_codes": [r.error_code for r in results],
                "reasons": [r.reason for r in results],
            },
        )
    dead = [r for r in results if r.outcome is Outcome.DEAD_TOKEN]
    if dead:
        await conn.execute(
            sql.query("devices_disable"),
            {
                "device_ids": [r.device_id for r in dead],
                "reasons": [f"FCM: {r.error_code or 'dead token'}" for r in dead],
            },
        )


async def summaries(
    conn: psycopg.AsyncConnection[Any], notification_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Summary]:
    """
    Where each notification's deliveries stand (one statement for all of them).
    """
    rows = await sql.rows(conn, "delivery_summary", {"notification_ids": list(notification_ids)})
    return {row.pop("notification_id"): Summary(**row) for row in (dict(r) for r in rows)}
