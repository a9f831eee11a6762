"""
What a worker serves beside its jobs: `/livez`, `/readyz` and `/metrics` on
`http://<METRICS_ADDR>:<METRICS_PORT>` (broseph/ops/probes.py), and systemd's watchdog.

The counters and the duration histogram (broseph/metrics.py) move as jobs finish; the gauges —
queue depth by queue and status, age of the oldest runnable job by queue — are sampled from the
database every METRICS_SAMPLE_SECONDS by a task beside the worker. /readyz asks the database,
the migrations and (with LISTEN_NOTIFY) the worker's LISTEN connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from typing import Any

import procrastinate
import structlog
from psycopg_pool import AsyncConnectionPool

from broseph import metrics, services, sql
from broseph.engine import WorkerConnector
from broseph.ops import probes, readiness
from broseph.settings import Settings

logger = structlog.get_logger("broseph.ops")


class Sampler:
    """
    Sets the queue gauges from one database read; series that disappear drop to zero.
    """

    def __init__(self) -> None:
        self._depth: set[tuple[str, str]] = set()
        self._oldest: set[str] = set()

    async def sample(self, pool: AsyncConnectionPool[Any]) -> None:
        async with pool.connection() as conn:
            depth_rows = await sql.rows(conn, "queue_depth")
            oldest_rows = await sql.rows(conn, "oldest_pending")
        depth = {(r["queue"], r["status"]): int(r["jobs"]) for r in depth_rows}
        oldest = {r["queue"]: float(r["seconds"] or 0.0) for r in oldest_rows}
        for queue, status in self._depth - depth.keys():
            metrics.QUEUE_DEPTH.labels(queue, status).set(0)
        for (queue, status), jobs in depth.items():
            metrics.QUEUE_DEPTH.labels(queue, status).set(jobs)
        for queue in self._oldest - oldest.keys():
            metrics.OLDEST_PENDING.labels(queue).set(0)
        for queue, seconds in oldest.items():
            metrics.OLDEST_PENDING.labels(queue).set(seconds)
        self._depth |= depth.keys()
        self._oldest |= oldest.keys()

    async def run(self, pool: AsyncConnectionPool[Any], interval: float) -> None:
        while True:
            try:
                await self.sample(pool)
            except Exception as exc:  # the database may be restarting; try again next time
                logger.warning("metrics_sample_failed", error=str(exc)[:300])
            await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def serving(
    app: procrastinate.App, settings: Settings, *, listen: bool
) -> AsyncIterator[None]:
    """
    While the worker runs: its probes and metrics on METRICS_PORT (broseph/ops/probes.py) with
    the queue sampler, and systemd's watchdog when asked for. `listen`: the worker LISTENs, so
    /readyz requires its LISTEN connection to be up.
    """
    database = readiness.Database(settings)
    checks: dict[str, probes.Check] = {
        "database": database.reachable,
        "migrations": database.migrated,
    }
    if listen and isinstance(app.connector, WorkerConnector):
        checks["listen"] = functools.partial(readiness.listening, app.connector)
    pool = services.pool_of(app)
    sampler = probes.background(
        lambda: Sampler().run(pool, settings.metrics_sample_seconds), "metrics sampler"
    )
    try:
        async with probes.running(settings, checks, beside=[sampler]):
            yield
    finally:
        await database.close()
