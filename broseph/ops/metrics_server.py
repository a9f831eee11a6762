"""
The worker's Prometheus endpoint: `GET http://<METRICS_ADDR>:<METRICS_PORT>/metrics`.

The counters and the duration histogram (broseph/metrics.py) move as jobs finish; the gauges —
queue depth by queue and status, age of the oldest runnable job by queue — are sampled from the
database every METRICS_SAMPLE_SECONDS by a task beside the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import prometheus_client
import structlog
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from broseph import metrics, sql

logger = structlog.get_logger("broseph.ops")


class Sampler:
    """
    Sets the queue gauges from one database read; series that disappear drop to zero.
    """

    def __init__(self) -> None:
        self._depth: set[tuple[str, str]] = set()
        self._oldest: set[str] = set()

    async def sample(self, pool: AsyncConnectionPool[Any]) -> None:
        async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql.query("queue_depth"))
            depth = {(r["queue"], r["status"]): int(r["jobs"]) for r in await cur.fetchall()}
            await cur.execute(sql.query("oldest_pending"))
            oldest = {r["queue"]: float(r["seconds"] or 0.0) for r in await cur.fetchall()}
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
    pool: AsyncConnectionPool[Any], *, port: int, addr: str, sample_seconds: float
) -> AsyncIterator[int]:
    """
    Serve /metrics (and sample the queue gauges) while the block runs; yields the bound port
    (port 0 binds a free one).
    """
    server, thread = prometheus_client.start_http_server(port, addr=addr)
    bound = int(server.server_port)
    sampler = asyncio.create_task(Sampler().run(pool, sample_seconds), name="metrics sampler")
    logger.info("metrics_serving", port=bound, addr=addr)
    try:
        yield bound
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
