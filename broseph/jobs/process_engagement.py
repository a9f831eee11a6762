"""
ProcessEngagement: one group's message and engagement analytics for one local day.

Natural key: (group_id, local_date) in public.group_engagement_daily — a re-run recomputes the
same numbers and leaves the row untouched. Enqueued by the messages trigger (coalesced per group
and day, migrations/0005) and by the hourly `engagement_nightly` periodic task below.
"""

from __future__ import annotations

import datetime
from typing import Any, ClassVar

from psycopg.rows import dict_row

from broseph import enqueue, sql
from broseph.errors import PermanentJobError
from broseph.jobs.base import Day, Id, JobPayload, JobRun, JobType, Periodic
from broseph.services import Services


class ProcessEngagement(JobPayload):
    job_type: ClassVar[str] = "ProcessEngagement"

    group_id: Id
    local_date: Day


async def handle(run: JobRun, payload: ProcessEngagement) -> None:
    params = {"group_id": payload.group_id, "local_date": payload.local_date}
    async with run.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.query("engagement_group"), params)
        if await cur.fetchone() is None:
            raise PermanentJobError(f"group {payload.group_id} not found")
        await run.progress(30, "group loaded")
        await cur.execute(sql.query("upsert_engagement"), params)
        written = await cur.fetchone()
    await run.progress(90, "stats stored" if written else "stats unchanged")
    run.result = {"changed": written is not None}
    if written:
        run.result.update(
            message_count=written["message_count"],
            active_members=written["active_members"],
            member_count=written["member_count"],
        )


async def nightly(services: Services, timestamp: int) -> int:
    """
    Enqueue every active group's local yesterday; returns how many jobs were new or existing.

    Runs hourly so each group is covered soon after ITS midnight; the idempotency key makes the
    23 other ticks of the day (and a second worker's tick) no-ops.
    """
    now = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    async with services.pool.connection() as conn:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql.query("engagement_yesterday_targets"), {"now": now})
            targets: list[dict[str, Any]] = await cur.fetchall()
        payloads = [
            ProcessEngagement(group_id=t["group_id"], local_date=t["local_date"]) for t in targets
        ]
        keys = [f"engagement:{p.group_id}:{p.local_date.isoformat()}" for p in payloads]
        ids = await enqueue.enqueue_many(conn, payloads, idempotency_keys=keys, source="schedule")
    return len(ids)


JOB = JobType(
    name=ProcessEngagement.job_type,
    payload=ProcessEngagement,
    handle=handle,
    queue="engagement",
    max_attempts=5,
)

PERIODIC = (
    Periodic(name="engagement_nightly", cron=lambda s: str(s.engagement_cron), run=nightly),
)
