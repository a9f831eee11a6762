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
from collections.abc import Callable
from typing import Any

from broseph.jobs.base import Periodic, PeriodicFn
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


def _tick(name: str, cron: Callable[[Any], object], run: PeriodicFn, priority: int = 0) -> Periodic:
    # On the ops queue, and no Sentry monitor (they run every few seconds: no schedule worth
    # alerting on).
    return Periodic(name, lambda s: str(cron(s)), run, QUEUE, priority, monitored=False)


PERIODIC: tuple[Periodic, ...] = (
    _tick("ops_rescue", lambda s: s.rescue_cron, rescue_tick, RESCUE_PRIORITY),
    _tick("ops_retention", lambda s: s.retention_cron, retention_tick),
)
