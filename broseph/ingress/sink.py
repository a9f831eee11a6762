"""
The Postgres side of every ingress: a planned delivery becomes a job record plus a receipt,
exactly once per delivery key, in one statement (`broseph.ingress_enqueue`, migrations/0008).

psycopg errors are translated here: input Postgres refuses (SQLSTATE class 22 — the contract's
22023 validation errors, \\u0000 in a string, …) becomes `Refused` (quarantine it); anything else
propagates for the caller to classify as transient or not (`is_transient`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from broseph import sql
from broseph.ingress.mapping import Delivery, Plan
from broseph.logs import scrub


@dataclass(frozen=True)
class Outcome:
    record_id: uuid.UUID
    # True when the delivery had been received before (redelivered): nothing was added.
    duplicate: bool


class Refused(Exception):
    """
    Postgres refused the delivery's content; `reason` is its message (quarantine it).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def ingest(conn: psycopg.AsyncConnection[Any], plan: Plan) -> Outcome:
    """
    Enqueue one delivery with its receipt, in one statement. On an autocommit connection (the
    ingress's pool) it is committed when this returns; otherwise it joins the caller's
    transaction (`quarantine replay`).
    """
    return (await ingest_many(conn, [plan]))[0]


async def ingest_many(conn: psycopg.AsyncConnection[Any], plans: Sequence[Plan]) -> list[Outcome]:
    """
    `ingest` for several deliveries in ONE statement (one round trip, one commit), outcomes in
    order. Refused as a whole when Postgres refuses any of them: retry those one by one.
    """
    columns: dict[str, list[Any]] = {name: [] for name in _COLUMNS}
    for plan in plans:
        for name, value in _row(plan).items():
            columns[name].append(value)
    try:
        rows = await sql.rows(conn, "ingress_enqueue_many", columns)
    except psycopg.errors.DataError as exc:
        detail = exc.diag.message_detail
        reason = exc.diag.message_primary or str(exc)
        raise Refused(scrub(f"{reason} ({detail})" if detail else reason)) from None
    except UnicodeEncodeError as exc:
        raise Refused(f"text Postgres cannot store: {exc.reason}") from None
    assert len(rows) == len(plans)
    return [Outcome(uuid.UUID(str(r["record_id"])), duplicate=bool(r["duplicate"])) for r in rows]


_COLUMNS = (
    "delivery_key", "source", "queue", "job_id", "job_name", "options", "produced_at",
    "job_type", "params", "run_at", "priority", "retry", "traceparent", "tracestate",
)  # fmt: skip


def _row(plan: Plan) -> dict[str, Any]:
    delivery = plan.delivery
    return {
        "delivery_key": pg_text(delivery.key),
        "source": delivery.source,
        "queue": pg_text(delivery.queue),
        "job_id": pg_text(delivery.job_id),
        "job_name": pg_text(delivery.name),
        "options": Jsonb(dict(delivery.options)),
        "produced_at": delivery.produced_at,
        "job_type": plan.payload.job_type,
        "params": Jsonb(plan.payload.to_params()),
        "run_at": plan.run_at,
        "priority": plan.priority,
        "retry": Jsonb(plan.retry) if plan.retry else None,
        "traceparent": plan.traceparent,
        "tracestate": plan.tracestate,
    }


async def quarantine(conn: psycopg.AsyncConnection[Any], delivery: Delivery, reason: str) -> bool:
    """
    Keep a delivery that cannot become a job; False when it was already quarantined. One
    statement: committed on return on an autocommit connection.
    """
    added = await sql.row(
        conn,
        "ingress_quarantine_add",
        {
            "delivery_key": pg_text(delivery.key),
            "source": delivery.source,
            "queue": pg_text(delivery.queue),
            "job_id": pg_text(delivery.job_id),
            "job_name": pg_text(delivery.name),
            "raw": delivery.raw(),
            "reason": pg_text(reason),
        },
    )
    return added is not None


def is_transient(exc: BaseException) -> bool:
    """
    Errors worth retrying later: the database unreachable or restarting, a pool timeout, a
    serialization failure or deadlock.
    """
    return isinstance(
        exc,
        psycopg.OperationalError
        | psycopg.InterfaceError
        | psycopg.errors.TransactionRollback
        | OSError,
    )


def pg_text(text: str) -> str:
    """
    Text Postgres can store: NUL and lone surrogates replaced (names and ids only; raw data is
    kept losslessly as escaped JSON).
    """
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
