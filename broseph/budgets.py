"""
Shared rate budgets: OPENAI_RPM, OPENAI_TPM and FCM_MESSAGES_PER_MINUTE, one token bucket each
in Postgres (migrations/0034), shared by every worker of the database.

A handler takes what its next outside call will spend before making it (`take`); without budget it
raises the `Snooze` it gets, and the job waits for the time the buckets name without spending an
attempt. A
real 429 closes the bucket for the server's wait (`tighten`). An unset setting means no limit: no
bucket is read or written for it.

Each take is one statement (no session state), so it works on a direct connection and behind a
transaction pooler alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Final

import psycopg
from psycopg_pool import AsyncConnectionPool

from broseph import db, sql
from broseph.errors import Snooze

__all__ = ["FCM_MESSAGES", "OPENAI_REQUESTS", "OPENAI_TOKENS", "Take", "take", "tighten"]

# Bucket names (broseph.rate_budgets.name), one per setting.
OPENAI_REQUESTS: Final = "openai_requests"
OPENAI_TOKENS: Final = "openai_tokens"
FCM_MESSAGES: Final = "fcm_messages"

_SETTING: Final = {
    OPENAI_REQUESTS: "OPENAI_RPM",
    OPENAI_TOKENS: "OPENAI_TPM",
    FCM_MESSAGES: "FCM_MESSAGES_PER_MINUTE",
}


@dataclasses.dataclass(frozen=True)
class Take:
    """
    `amount` from the bucket `name`, whose limit is `per_minute` (None: unlimited, not taken).
    """

    name: str
    amount: float
    per_minute: float | None


async def take(conn: psycopg.AsyncConnection[Any], takes: Sequence[Take]) -> Snooze | None:
    """
    Take every amount, all or none, on `conn` (in the caller's transaction, if it has one: a
    rollback gives the amounts back). None when taken; else the `Snooze` (for as long as the
    buckets need) for the caller to raise — once its transaction has committed, since a refused
    take also books the job's place in the line.
    """
    limited = [t for t in takes if t.per_minute is not None]
    if not limited:
        return None
    wait = await sql.value(
        conn,
        "take_budget",
        {
            "names": [t.name for t in limited],
            "amounts": [float(t.amount) for t in limited],
            "per_minute": [float(t.per_minute or 0) for t in limited],
        },
    )
    if wait <= 0:
        return None
    names = ", ".join(_SETTING.get(t.name, t.name) for t in limited)
    return Snooze(float(wait), f"rate budget ({names}) used up; next share in {wait:.1f} s")


async def tighten(pool: AsyncConnectionPool[Any], name: str, seconds: float) -> None:
    """
    The outside service answered 429 and asked for `seconds`: the bucket gives nothing until then.
    """
    async with db.statements(pool) as conn:
        await conn.execute(sql.query("tighten_budget"), {"name": name, "seconds": seconds})
