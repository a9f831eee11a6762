"""
Retention: finished jobs older than RETENTION_DAYS leave the database, a bounded batch at a time.

Each batch (PRUNE_BATCH_SIZE jobs) is one short transaction deleting the queue rows, their
procrastinate events (ON DELETE CASCADE) and their job records; rows locked by a worker are
skipped, never waited for; no table is rewritten or locked as a whole. Between batches the
pruner yields, so a running worker keeps fetching and finishing jobs (tests/test_ops_retention.py).
Queue rows still `todo` or `doing` are never touched, however old.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from psycopg_pool import AsyncConnectionPool

from broseph import sql

logger = structlog.get_logger("broseph.ops")

_NO_UUID = uuid.UUID(int=0)


@dataclass
class Pruned:
    jobs: int = 0
    records: int = 0
    batches: int = 0
    # The longest single batch (one transaction): how long rows stayed locked at most.
    longest_batch_seconds: float = 0.0


async def prune(
    pool: AsyncConnectionPool[Any],
    *,
    older_than: datetime.timedelta,
    batch_size: int,
    now: datetime.datetime | None = None,
    pause: float = 0.01,
) -> Pruned:
    """
    Delete finished jobs (queue rows, events, records) whose last event is older than
    `older_than`; returns the counts.
    """
    cutoff = (now or datetime.datetime.now(datetime.UTC)) - older_than
    pruned = Pruned()
    # Keyset walks: each batch starts after the previous one's last row, so rows that must
    # stay (a job retried by hand, a record whose queue row is still there) are passed once.
    after: dict[str, Any] = {"after_at": "-infinity", "after_id": 0}
    while True:
        row = await _batch(pool, "prune_finished_jobs", cutoff, batch_size, after, pruned)
        pruned.jobs += int(row["jobs"])
        pruned.records += int(row["records"])
        if int(row["examined"]) < batch_size:
            break
        after = {"after_at": row["last_at"], "after_id": row["last_id"]}
        await asyncio.sleep(pause)
    after = {"after_at": "-infinity", "after_id": _NO_UUID}
    while True:
        row = await _batch(pool, "prune_orphan_records", cutoff, batch_size, after, pruned)
        pruned.records += int(row["records"])
        if int(row["examined"]) < batch_size:
            break
        after = {"after_at": row["last_at"], "after_id": row["last_id"]}
        await asyncio.sleep(pause)
    logger.info(
        "pruned",
        jobs=pruned.jobs,
        records=pruned.records,
        batches=pruned.batches,
        longest_batch_seconds=round(pruned.longest_batch_seconds, 3),
        cutoff=cutoff.isoformat(),
    )
    return pruned


async def _batch(
    pool: AsyncConnectionPool[Any],
    query: str,
    cutoff: datetime.datetime,
    batch_size: int,
    after: dict[str, Any],
    pruned: Pruned,
) -> Any:
    started = time.perf_counter()
    params = {"cutoff": cutoff, "batch": batch_size, **after}
    # One transaction per batch: the pool commits when the block exits.
    async with pool.connection() as conn:
        row = await sql.row(conn, query, params)
    pruned.batches += 1
    pruned.longest_batch_seconds = max(pruned.longest_batch_seconds, time.perf_counter() - started)
    return row
