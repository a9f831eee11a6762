"""
The Python face of transactional enqueue.

Both functions run on the CALLER's psycopg connection and never commit: the job record and the
procrastinate job become visible when the caller commits, together with its own rows, and vanish
if it rolls back. They call the same SQL contract as every other producer (migrations/0004).
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from broseph import jobs, sql
from broseph.jobs.base import JobPayload

# Large fan-outs are sent in slices so one statement's arrays stay a few MB at most.
CHUNK_SIZE = 5000


async def enqueue(
    conn: psycopg.AsyncConnection[Any],
    payload: JobPayload,
    *,
    idempotency_key: str | None = None,
    run_at: datetime.datetime | None = None,
    priority: int = 0,
    source: str = "api",
    retry: Mapping[str, Any] | None = None,
) -> uuid.UUID:
    """
    Enqueue one job in the caller's transaction; return its record id (the existing one for a
    repeated idempotency key or a coalesced pending job).
    """
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(
            sql.query("enqueue"),
            {
                "job_type": payload.job_type,
                "params": Jsonb(payload.to_params()),
                "idempotency_key": idempotency_key,
                "run_at": run_at,
                "priority": priority,
                "source": source,
                "retry": Jsonb(dict(retry)) if retry else None,
            },
        )
        row = await cur.fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


async def enqueue_many(
    conn: psycopg.AsyncConnection[Any],
    payloads: Sequence[JobPayload],
    *,
    idempotency_keys: Sequence[str | None] | None = None,
    run_at: datetime.datetime | None = None,
    priority: int = 0,
    source: str = "api",
    retry: Mapping[str, Any] | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> list[uuid.UUID]:
    """
    Enqueue many jobs of ONE type in the caller's transaction (fan-out); record ids in order.
    """
    if not payloads:
        return []
    job_type = payloads[0].job_type
    if any(p.job_type != job_type for p in payloads):
        raise ValueError("enqueue_many takes payloads of one job type per call")
    if idempotency_keys is not None and len(idempotency_keys) != len(payloads):
        raise ValueError("idempotency_keys must be as long as payloads")
    ids: list[uuid.UUID] = []
    async with conn.cursor(row_factory=tuple_row) as cur:
        for start in range(0, len(payloads), chunk_size):
            chunk = payloads[start : start + chunk_size]
            keys = idempotency_keys[start : start + chunk_size] if idempotency_keys else None
            await cur.execute(
                sql.query("enqueue_many"),
                {
                    "job_type": job_type,
                    "params": [Jsonb(p.to_params()) for p in chunk],
                    "idempotency_keys": list(keys) if keys is not None else None,
                    "run_at": run_at,
                    "priority": priority,
                    "source": source,
                    "retry": Jsonb(dict(retry)) if retry else None,
                },
            )
            row = await cur.fetchone()
            assert row is not None
            ids.extend(uuid.UUID(str(v)) for v in row[0])
    return ids


def payload_for(job_type: str, params: Mapping[str, Any]) -> JobPayload:
    """
    Validate raw params (CLI, ingress) with the job type's model; raises ValueError subclasses.
    """
    return jobs.get(job_type).payload.model_validate(dict(params))
