"""
The operations periodic tasks every worker schedules: `ops_rescue` and `ops_retention`.

They are `Periodic` entries like the catalogue's, registered through the same lifecycle
(`broseph.lifecycle.register_periodic`), on a queue of their own; rescue runs at a high priority
because it must jump the queue: with thousands of jobs waiting, a tick at priority 0 would wait
behind all of them while a lost worker's jobs stay stuck. procrastinate defers each tick once
across workers.
"""

from __future__ import annotations

import datetime

from broseph.jobs.base import Periodic
from broseph.ops import rescue, retention
from broseph.services import Services

QUEUE = "ops"
# procrastinate fetches by priority, highest first.
RESCUE_PRIORITY = 1000


async def rescue_tick(svc: Services, timestamp: int) -> int:
    """
    Retry (or settle) the jobs of workers lost for `RESCUE_AFTER_SECONDS`; how many.
    """
    rescued = await rescue.rescue_lost_jobs(
        svc.pool, lost_after_seconds=svc.settings.rescue_after_seconds
    )
    return len(rescued)


async def retention_tick(svc: Services, timestamp: int) -> dict[str, int]:
    """
    Prune finished jobs and records older than `RETENTION_DAYS`; how many of each.
    """
    pruned = await retention.prune(
        svc.pool,
        older_than=datetime.timedelta(days=svc.settings.retention_days),
        batch_size=svc.settings.prune_batch_size,
    )
    return {"jobs": pruned.jobs, "records": pruned.records}


PERIODIC: tuple[Periodic, ...] = (
    Periodic(
        name="ops_rescue",
        cron=lambda s: str(s.rescue_cron),
        run=rescue_tick,
        queue=QUEUE,
        priority=RESCUE_PRIORITY,
        monitored=False,
    ),
    Periodic(
        name="ops_retention",
        cron=lambda s: str(s.retention_cron),
        run=retention_tick,
        queue=QUEUE,
        monitored=False,
    ),
)
