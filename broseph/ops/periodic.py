"""
The operations periodic tasks every worker schedules: `ops_rescue` and `ops_retention`.

They are registered here rather than through the job catalogue's `Periodic` because rescue must
jump the queue: with thousands of jobs waiting, a tick at priority 0 would wait behind all of
them while a lost worker's jobs stay stuck. procrastinate defers each tick once across workers.
"""

from __future__ import annotations

import datetime

import procrastinate
from procrastinate import job_context

from broseph import services
from broseph.ops import rescue, retention
from broseph.settings import Settings

QUEUE = "ops"
# procrastinate fetches by priority, highest first.
RESCUE_PRIORITY = 1000


def register(app: procrastinate.App, settings: Settings, *, schedule: bool = True) -> None:
    """
    Register the rescue and retention tasks on a worker app, and (unless `schedule` is False)
    their cron ticks.
    """

    @app.task(name="ops_rescue", queue=QUEUE, pass_context=True, priority=RESCUE_PRIORITY)
    async def ops_rescue(context: job_context.JobContext, timestamp: int) -> int:
        svc = services.for_app(context.app)
        rescued = await rescue.rescue_lost_jobs(
            svc.pool, lost_after_seconds=svc.settings.rescue_after_seconds
        )
        return len(rescued)

    @app.task(name="ops_retention", queue=QUEUE, pass_context=True)
    async def ops_retention(context: job_context.JobContext, timestamp: int) -> dict[str, int]:
        svc = services.for_app(context.app)
        pruned = await retention.prune(
            svc.pool,
            older_than=datetime.timedelta(days=svc.settings.retention_days),
            batch_size=svc.settings.prune_batch_size,
        )
        return {"jobs": pruned.jobs, "records": pruned.records}

    if schedule:
        app.periodic(cron=settings.rescue_cron, periodic_id="ops_rescue")(ops_rescue)
        app.periodic(cron=settings.retention_cron, periodic_id="ops_retention")(ops_retention)
