"""
Quarantined outside jobs: list them, and replay one after a fix (INGRESS_JOB_MAP, a new job type,
a larger INGRESS_MAX_PAYLOAD_BYTES). Needs Postgres only — no Redis.

A replay runs the current mapping over the job exactly as it was received and enqueues it with
the delivery key it arrived with, in one transaction with marking the row replayed: replaying
twice, or a late redelivery from BullMQ, still yields one job record.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from broseph import sql
from broseph.ingress import mapping, sink


@dataclass(frozen=True)
class Entry:
    id: int
    delivery_key: str
    source: str
    queue: str
    job_id: str
    job_name: str
    reason: str
    received_at: datetime.datetime
    replayed_at: datetime.datetime | None
    record_id: uuid.UUID | None


class NotQuarantined(LookupError):
    pass


@dataclass(frozen=True)
class Replayed:
    record_id: uuid.UUID
    # True when it had been replayed (or received) before: nothing new was enqueued.
    already: bool


async def entries(
    conn: psycopg.AsyncConnection[Any], *, include_replayed: bool = False, limit: int = 100
) -> list[Entry]:
    found = await sql.rows(
        conn, "ingress_quarantine_list", {"include_replayed": include_replayed, "limit": limit}
    )
    return [Entry(**row) for row in found]


async def replay(
    conn: psycopg.AsyncConnection[Any],
    quarantine_id: int,
    routes: Mapping[str, mapping.Route],
    *,
    max_payload_bytes: int,
) -> Replayed:
    """
    Enqueue a quarantined job with today's mapping; commits. Raises `NotQuarantined`,
    `mapping.Rejected` or `sink.Refused` (the row is then left as it was).
    """
    async with conn.transaction():
        row = await sql.row(conn, "ingress_quarantine_get", {"id": quarantine_id})
        if row is None:
            raise NotQuarantined(f"no quarantined job with id {quarantine_id}")
        if row["replayed_at"] is not None:
            return Replayed(record_id=row["record_id"], already=True)
        try:
            delivery = mapping.Delivery.from_raw(
                source=row["source"], queue=row["queue"], job_id=row["job_id"], raw=row["raw"]
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # A row not written by this version (by hand, by an older ingress): say so.
            raise mapping.Rejected(
                f"the stored job cannot be read ({type(exc).__name__}: {str(exc)[:200]})"
            ) from None
        plan = mapping.plan(delivery, routes, max_payload_bytes=max_payload_bytes)
        outcome = await sink.ingest(conn, plan)
        await conn.execute(
            sql.query("ingress_quarantine_replayed"),
            {"id": quarantine_id, "record_id": outcome.record_id},
        )
    return Replayed(record_id=outcome.record_id, already=outcome.duplicate)
