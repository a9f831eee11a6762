"""
Job-record reads and the writes the lifecycle owns (progress, error, result).

Status is deliberately absent: it moves only with the queue row (trigger, migrations/0003).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from broseph import sql
from broseph.jobs.base import ProgressFn


@dataclass(frozen=True)
class Record:
    id: uuid.UUID
    job_type: str
    params: dict[str, Any]
    status: str
    attempts: int
    max_attempts: int
    source: str


async def load(pool: AsyncConnectionPool[Any], record_id: uuid.UUID) -> Record | None:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.query("load_record"), {"record_id": record_id})
        row = await cur.fetchone()
    return Record(**row) if row else None


def progress_reporter(pool: AsyncConnectionPool[Any], record_id: uuid.UUID) -> ProgressFn:
    """
    A `progress(percent, message)` callable bound to one record.
    """

    async def progress(percent: int, message: str) -> None:
        async with pool.connection() as conn:
            await conn.execute(
                sql.query("report_progress"),
                {"record_id": record_id, "progress": max(0, min(100, percent)), "message": message},
            )

    return progress


async def note_error(pool: AsyncConnectionPool[Any], record_id: uuid.UUID, error: str) -> None:
    async with pool.connection() as conn:
        await conn.execute(sql.query("note_error"), {"record_id": record_id, "error": error})


async def note_result(pool: AsyncConnectionPool[Any], record_id: uuid.UUID, result: Jsonb) -> None:
    async with pool.connection() as conn:
        await conn.execute(sql.query("note_result"), {"record_id": record_id, "result": result})
