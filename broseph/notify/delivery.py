"""
Per-device delivery bookkeeping: which devices to send to, and what FCM answered.

One row per (notification, device) in broseph.notification_deliveries (migrations/0007). The
protocol around the FCM call:

    1. `plan`          live devices without a final row (and within the duplicate bound)
    2. `mark_sending`  COMMITTED before the call: status sending, unanswered + 1
    3. the FCM call
    4. `record`        one transaction: each answer, dead tokens disabled, unanswered - 1

A retry (step 1 again) resends only devices whose row is `retry`, or `sending` — the worker died
between 3 and 4, so FCM may or may not have delivered. The duplicate bound: a device is sent to
only while `unanswered < MAX_COPIES`, so however many times workers die at that point a device
receives a notification at most MAX_COPIES (2) times; once the bound is reached its row becomes
`unconfirmed` and it is left alone. Without a crash every device gets it exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from broseph import sql
from broseph.providers.push import DeviceResult, Outcome, PushTarget

# At most this many copies of one notification reach one device, crashes included.
MAX_COPIES: Final = 2
# Rows in these states are never sent to again.
FINAL: Final = frozenset({"delivered", "dead_token", "failed", "unconfirmed"})


@dataclass(frozen=True)
class Plan:
    """
    The devices to send to now, out of the user's live devices.
    """

    targets: list[PushTarget]


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


async def plan(
    conn: psycopg.AsyncConnection[Any], notification_id: uuid.UUID, user_id: uuid.UUID
) -> Plan:
    """
    Step 1: who gets a request now. Runs in the caller's transaction.
    """
    devices = await sql.rows(
        conn, "delivery_devices", {"notification_id": notification_id, "user_id": user_id}
    )
    targets: list[PushTarget] = []
    unconfirmed: list[uuid.UUID] = []
    for device in devices:
        if device["status"] in FINAL:
            continue
        if device["unanswered"] >= MAX_COPIES:
            # The duplicate bound, reached without an answer: marked final, never sent again.
            unconfirmed.append(device["device_id"])
            continue
        targets.append(PushTarget(device["device_id"], device["kind"], device["identifier"]))
    if unconfirmed:
        await conn.execute(
            sql.query("deliveries_unconfirmed"),
            {"notification_id": notification_id, "device_ids": unconfirmed},
        )
    return Plan(targets=targets)


async def mark_sending(
    conn: psycopg.AsyncConnection[Any], notification_id: uuid.UUID, targets: Sequence[PushTarget]
) -> None:
    """
    Step 2: the requests about to be made. The caller commits before calling FCM.
    """
    await conn.execute(
        sql.query("deliveries_sending"),
        {"notification_id": notification_id, "device_ids": [t.device_id for t in targets]},
    )


_STATUS: Final = {
    Outcome.DELIVERED: "delivered",
    Outcome.DEAD_TOKEN: "dead_token",
    Outcome.RETRY: "retry",
    Outcome.FAILED: "failed",
}


async def record(
    conn: psycopg.AsyncConnection[Any],
    notification_id: uuid.UUID,
    results: Sequence[DeviceResult],
) -> Summary:
    """
    Step 4: FCM's answers, dead tokens disabled; returns the notification's whole picture.
    Runs in the caller's transaction.
    """
    if results:
        await conn.execute(
            sql.query("deliveries_outcome"),
            {
                "notification_id": notification_id,
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
    return await summary(conn, notification_id)


async def summary(conn: psycopg.AsyncConnection[Any], notification_id: uuid.UUID) -> Summary:
    # An aggregate: always one row.
    return Summary(**await sql.one(conn, "delivery_summary", {"notification_id": notification_id}))
