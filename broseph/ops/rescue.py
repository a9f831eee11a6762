"""
Automatic rescue: the jobs of a lost worker go back to the queue.

procrastinate 3.10 leaves the jobs of a killed worker in `doing` forever. The `ops_rescue`
periodic task (broseph/ops/periodic.py) runs `broseph.rescue_lost_jobs` (migrations/0009): every
`doing` job whose worker's heartbeat is older than RESCUE_AFTER_SECONDS is retried at once, or
failed when its attempts are exhausted, or finished as cancelled when an abort was requested —
the record says `worker lost (…)` — and jobs queued behind its lock can run again. A job the worker
had fetched but never started (migrations/0031) is released instead: back to waiting as it was,
no attempt spent, never failed for want of attempts.

Heartbeats come every HEARTBEAT_INTERVAL seconds, so a lost worker's jobs run again after
RESCUE_AFTER_SECONDS plus at most one RESCUE_CRON tick.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from psycopg_pool import AsyncConnectionPool

from broseph import metrics, sql

logger = structlog.get_logger("broseph.ops")


@dataclass(frozen=True)
class Rescued:
    job_id: int
    record_id: uuid.UUID | None
    worker_id: int | None
    action: str  # retried | failed | cancelled | released


async def rescue_lost_jobs(
    pool: AsyncConnectionPool[Any], *, lost_after_seconds: float
) -> list[Rescued]:
    """
    Rescue every job of every lost worker, in one transaction; returns what was done.
    """
    async with pool.connection() as conn:
        found = await sql.rows(conn, "rescue_lost_jobs", {"lost_after_seconds": lost_after_seconds})
    rescued = [Rescued(**row) for row in found]
    for job in rescued:
        metrics.RESCUES.labels(job.action).inc()
        logger.warning(
            "job_rescued",
            reason="worker lost",
            job_id=job.job_id,
            record_id=str(job.record_id) if job.record_id else None,
            worker_id=job.worker_id,
            action=job.action,
        )
    return rescued
