"""
A job's record as the tests read it: the broseph.job_records row with its queue row's state.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from tests import pg
from tests.conftest import wait_until

# LEFT JOIN: a record whose queue row was deleted is still read (queue_status is then None).
RECORD = (
    "SELECT r.*, r.procrastinate_job_id AS job_id, j.scheduled_at, j.status AS queue_status,"
    " j.worker_id FROM broseph.job_records r"
    " LEFT JOIN procrastinate_jobs j ON j.id = r.procrastinate_job_id WHERE r.id = %s"
)


async def record(conn: psycopg.AsyncConnection[Any], record_id: uuid.UUID) -> dict[str, Any]:
    """
    The record `record_id` (the test fails if there is none), on a dict-row connection.
    """
    return dict(await pg.one(conn, RECORD, (record_id,)))


async def wait_status(
    conn: psycopg.AsyncConnection[Any], record_id: uuid.UUID, *statuses: str, within: float = 20.0
) -> dict[str, Any]:
    """
    The record once its status is one of `statuses` (the test fails after `within` seconds).
    """

    async def reached() -> bool:
        return (await record(conn, record_id))["status"] in statuses

    await wait_until(reached, within=within)
    return await record(conn, record_id)
