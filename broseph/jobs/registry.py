"""
The SQL registry of job types (`broseph.job_types`), written from the Python catalogue.

The SQL face of enqueue (migrations/0004, 0015, 0021) reads a job type's row: its field spec, the
queue and task it goes to, its coalesce and lock fields and the attempt budget a record starts
with. Every row is made here from its `JobType` and written at each `broseph migrate`, so the
catalogue is the one authority (the retry strategy reads the same `JobType`, broseph/retry.py)
and a new job type needs no SQL of its own.

Rows of job types no longer in the catalogue are left alone: their records still reference them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from broseph import sql
from broseph.jobs.base import JobType, field_spec


def row(job_type: JobType) -> dict[str, Any]:
    """
    The `broseph.job_types` row of one job type, as the query `job_types` reads it back.
    """
    return {
        "name": job_type.name,
        "task_name": job_type.name,
        "queue": job_type.queue,
        "fields": field_spec(job_type.payload),
        "coalesce_fields": _listed(job_type.coalesce_fields),
        "coalesce_delay": job_type.coalesce_delay,
        "lock_fields": _listed(job_type.lock_fields),
        "max_attempts": job_type.max_attempts,
        "description": job_type.description,
    }


def _listed(fields: tuple[str, ...] | None) -> list[str] | None:
    return None if fields is None else list(fields)


async def write(conn: psycopg.AsyncConnection[Any], job_types: Iterable[JobType]) -> list[str]:
    """
    Insert or update the rows of these job types; the names of those that changed (in the
    caller's transaction, if any).
    """
    changed: list[str] = []
    for job_type in job_types:
        params = row(job_type)
        params["fields"] = Jsonb(params["fields"])
        if await sql.value(conn, "write_job_type", params):
            changed.append(job_type.name)
    return changed
