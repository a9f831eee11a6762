"""
Job-record reads and the writes the lifecycle owns (progress, error, result).

Status is deliberately absent: it moves only with the queue row (trigger, migrations/0003).

Each of these is ONE statement, so it runs in autocommit (`db.statements`): the statement is its
own transaction, exactly as under the pool's implicit one, without the BEGIN and COMMIT round
trips around it (bench/processing.py measures the difference).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from broseph import db, sql
from broseph.logs import scrub

logger = structlog.get_logger("broseph.job")

# Progress updates closer together than this are coalesced: the first one is written after
# PROGRESS_FIRST_DELAY, the latest of the following ones when the interval has passed (or with
# the job's last write).
PROGRESS_INTERVAL = 0.5
# The first update waits this long (in the background; the handler goes on): a job that ends
# sooner carries it in its finish statement (broseph/engine.py) instead of a transaction of its
# own, and a client polling the record still sees a longer job move at once, to the eye.
PROGRESS_FIRST_DELAY = 0.05


@dataclass(frozen=True)
class Record:
    id: uuid.UUID
    job_type: str
    params: dict[str, Any]
    status: str
    attempts: int
    max_attempts: int
    source: str
    # The producer's W3C trace context (migrations/0024), the parent of each attempt's span.
    traceparent: str | None = None
    tracestate: str | None = None


async def load(pool: AsyncConnectionPool[Any], record_id: uuid.UUID) -> Record | None:
    async with db.statements(pool) as conn:
        row = await sql.row(conn, "load_record", {"record_id": record_id})
    return Record(**row) if row else None


def fetched(row: dict[str, Any]) -> Record | None:
    """
    Take the record columns (record_*) out of a row of the worker's fetch
    (`fetch_jobs_with_record`, run by broseph/engine.py): the job's record, or None for a job
    without one (a periodic tick) or no job at all.
    """
    record = {key: row.pop(f"record_{key}") for key in _FETCHED_COLUMNS}
    if row["id"] is None or record["id"] is None:
        return None
    # The fetch's trigger has just moved the record to processing, attempt n + 1: the same values
    # load() would read a moment later.
    return Record(**record, status="processing", attempts=row["attempts"] + 1)


_FETCHED_COLUMNS = (
    "id",
    "job_type",
    "params",
    "max_attempts",
    "source",
    "traceparent",
    "tracestate",
)


class ProgressReporter:
    """
    `await progress(percent, message)` for one record (a `ProgressFn`), throttled.

    The first update is written PROGRESS_FIRST_DELAY later, so a client polling the record sees
    the job move almost as soon as it reports, while a job that ends sooner writes it with its
    finish; updates that follow within PROGRESS_INTERVAL of a write are coalesced —
    the latest is written when the interval has passed, or by the lifecycle's last write of the
    attempt (`settle()` hands it over), so the record always ends with the last reported message.
    """

    def __init__(self, pool: AsyncConnectionPool[Any], record_id: uuid.UUID) -> None:
        self._pool = pool
        self._record_id = record_id
        self._pending: tuple[int, str] | None = None
        self._written_at: float | None = None
        self._timer: asyncio.Task[None] | None = None
        # Writes go out one at a time, so an older value can never commit after a newer one.
        self._lock = asyncio.Lock()

    async def __call__(self, percent: int, message: str) -> None:
        self._pending = (max(0, min(100, percent)), message)
        wait = self._wait()
        if wait <= 0:
            await self._write()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._write_later(wait))

    def _wait(self) -> float:
        if self._written_at is None:
            return PROGRESS_FIRST_DELAY
        return self._written_at + PROGRESS_INTERVAL - time.monotonic()

    async def _write_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._timer = None
        try:
            await self._write()
        except Exception as exc:  # nobody awaits this task: the next write carries the update
            logger.warning(
                "progress_not_recorded", record_id=str(self._record_id), error=scrub(str(exc))[:300]
            )

    async def _write(self) -> None:
        async with self._lock:
            if self._pending is None:
                return
            (percent, message), self._pending = self._pending, None
            self._written_at = time.monotonic()
            try:
                async with db.statements(self._pool) as conn:
                    await conn.execute(
                        sql.query("report_progress"),
                        {"record_id": self._record_id, "progress": percent, "message": message},
                    )
            except BaseException:
                if self._pending is None:  # unless a newer update is waiting, keep this one
                    self._pending = (percent, message)
                raise

    async def settle(self) -> tuple[int, str] | None:
        """
        Stop the timer; the update not yet written (None: all written), for the last write.
        """
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        async with self._lock:
            pending, self._pending = self._pending, None
        return pending


def progress_reporter(pool: AsyncConnectionPool[Any], record_id: uuid.UUID) -> ProgressReporter:
    """
    A throttled `progress(percent, message)` callable bound to one record.
    """
    return ProgressReporter(pool, record_id)


def _progress_params(progress: tuple[int, str] | None) -> dict[str, Any]:
    percent, message = progress if progress is not None else (None, None)
    return {"progress": percent, "message": message}


async def note_error(
    pool: AsyncConnectionPool[Any],
    record_id: uuid.UUID,
    error: str,
    *,
    progress: tuple[int, str] | None = None,
) -> None:
    """
    The reason of a failed attempt, with the last progress update not yet written (if any).
    """
    await _note_outcome(pool, record_id, error=error, result=None, progress=progress)


async def note_result(
    pool: AsyncConnectionPool[Any],
    record_id: uuid.UUID,
    result: Jsonb | None,
    *,
    progress: tuple[int, str] | None = None,
) -> None:
    """
    The handler's result and/or the last progress update not yet written, in one statement.
    """
    await _note_outcome(pool, record_id, error=None, result=result, progress=progress)


async def _note_outcome(
    pool: AsyncConnectionPool[Any],
    record_id: uuid.UUID,
    *,
    error: str | None,
    result: Jsonb | None,
    progress: tuple[int, str] | None,
) -> None:
    async with db.statements(pool) as conn:
        await conn.execute(
            sql.query("note_outcome"),
            {
                "record_id": record_id,
                "error": error,
                "result": result,
                **_progress_params(progress),
            },
        )
