"""
Prompt reminders: who is due one, and the key that makes it once per member per prompt.

Every REMINDER_CRON tick (15 minutes) the `prompt_reminders` periodic task
(broseph/jobs/send_notification.py) asks `due()` for members who have not answered their group's
latest prompt although it is past REMINDER_HOUR today in THEIR time zone and the prompt arrived in
the 24 hours before that moment, and enqueues one prompt_reminder each under the key
`idempotency.reminder()` builds. The key is per prompt, and each day's reminder moment looks at a
different 24-hour window, so a member is reminded at most once per prompt — once a day per group
— however many ticks (or workers) run.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from broseph import sql


@dataclass(frozen=True)
class Due:
    user_id: uuid.UUID
    group_id: uuid.UUID
    prompt_id: uuid.UUID


async def due(
    conn: psycopg.AsyncConnection[Any], *, now: datetime.datetime, hour: int
) -> list[Due]:
    """
    Members due a reminder at `now` with no reminder job yet (migrations' reminder_targets).
    """
    return [
        Due(**row) for row in await sql.rows(conn, "reminder_targets", {"now": now, "hour": hour})
    ]
