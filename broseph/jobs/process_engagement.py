"""
ProcessEngagement: one group's message and engagement analytics for one local day.

Natural key: (group_id, local_date) in public.group_engagement_daily — a re-run recomputes the
same numbers and leaves the row untouched. Enqueued by the messages trigger (coalesced per group
and day, migrations/0005), by the hourly `engagement_nightly` periodic task below, and by the
NestJS publisher's `ProcessEngagement { groupId }` (through the ingress) or any producer that only
knows the group: enqueue then fills `local_date` in with the group's local date at enqueue time
(migrations/0021), before the coalesce key and lock are built, so such a job coalesces with the
trigger's job for the same group and day.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import ClassVar

from broseph import enqueue, idempotency, sql
from broseph.errors import PermanentJobError
from broseph.jobs.base import Day, Id, JobPayload, JobRun, JobType, Periodic
from broseph.services import Services


class ProcessEngagement(JobPayload):
    job_type: ClassVar[str] = "ProcessEngagement"

    # Filled in by enqueue when absent (`defaults`): the group's current local date, its stored
    # zone read through broseph.usable_time_zone() — an unknown zone, or no such group, is UTC.
    defaults: ClassVar[Mapping[str, str]] = {"local_date": "group_local_date"}

    group_id: Id
    local_date: Day | None = None


async def handle(run: JobRun, payload: ProcessEngagement) -> None:
    if payload.local_date is None:
        # Only a row written around broseph.enqueue (which always fills it in) lacks the date.
        raise PermanentJobError(
            "local_date missing from the stored params: enqueue with broseph.enqueue, "
            "which fills it in"
        )
    params = {"group_id": payload.group_id, "local_date": payload.local_date}
    async with run.pool.connection() as conn:
        if await sql.row(conn, "engagement_group", params) is None:
            raise PermanentJobError(f"group {payload.group_id} not found")
        await run.progress(30, "group loaded")
        written = await sql.row(conn, "upsert_engagement", params)
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
        targets = await sql.rows(conn, "engagement_yesterday_targets", {"now": now})
        payloads = [
            ProcessEngagement(group_id=t["group_id"], local_date=t["local_date"]) for t in targets
        ]
        keys = [idempotency.engagement(t["group_id"], t["local_date"]) for t in targets]
        ids = await enqueue.enqueue_many(conn, payloads, idempotency_keys=keys, source="schedule")
    return len(ids)


JOB = JobType(
    payload=ProcessEngagement,
    handle=handle,
    queue="engagement",
    max_attempts=5,
    description="Message count, active members, messages per member and prompt response rate of"
    " one group for one local day, upserted into public.group_engagement_daily.",
    coalesce_fields=("group_id", "local_date"),
    coalesce_delay=datetime.timedelta(seconds=10),
    lock_fields=("group_id", "local_date"),
)

PERIODIC = (
    Periodic(name="engagement_nightly", cron=lambda s: str(s.engagement_cron), run=nightly),
)
