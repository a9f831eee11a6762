"""
What `broseph ingress bullmq` serves beside its work (broseph/ops/probes.py): /readyz checks the
database and migrations, Redis (`redis`: PING answers) and that its BullMQ workers are running
(`consuming`); /metrics carries `broseph_ingress_jobs_total` and the backlog of its queues,
sampled every METRICS_SAMPLE_SECONDS through the bullmq package's Queue API (never by reading
BullMQ's Redis keys):

- `broseph_ingress_backlog_jobs{queue,state}`: `getJobCounts` of waiting, prioritized, delayed
  and active jobs;
- `broseph_ingress_lag_seconds{queue}`: how long the jobs next in line have waited since they
  were due (timestamp + delay) — the oldest of the waiting list (first in, first out: how far
  behind the ingress is) or the first of the prioritized set, whichever waited longer; 0 when
  nothing waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import bullmq
import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from broseph import metrics
from broseph.ingress import Ingress
from broseph.logs import scrub
from broseph.ops import probes, readiness
from broseph.settings import Settings, reveal

logger = structlog.get_logger("broseph.ingress")
STATES = ("waiting", "prioritized", "delayed", "active")


class Redis:
    """
    The `redis` check: PING answers within two seconds.
    """

    def __init__(self, url: str) -> None:
        self._client = aioredis.from_url(
            url, socket_connect_timeout=2, socket_timeout=2, retry=Retry(NoBackoff(), 0)
        )

    async def reachable(self) -> None:
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise probes.NotReady(f"Redis unreachable: {exc}") from None

    async def close(self) -> None:
        await self._client.aclose()


async def consuming(ingress: Ingress) -> None:
    """
    The `consuming` check: the ingress's BullMQ workers are running (not reconnecting).
    """
    health = await ingress.health()
    if not health.consuming:
        why = f" (last error: {health.last_error})" if health.last_error else ""
        raise probes.NotReady(f"not consuming {', '.join(health.queues)}{why}")


class Backlog:
    """
    The backlog gauges of some BullMQ queues, from one Queue object each.
    """

    def __init__(self, url: str, queues: Iterable[str]) -> None:
        self._queues = {name: bullmq.Queue(name, {"connection": url}) for name in queues}

    async def sample(self) -> None:
        now_ms = time.time() * 1000
        for name, queue in self._queues.items():
            counts = await queue.getJobCounts(*STATES)
            for state in STATES:
                metrics.INGRESS_BACKLOG.labels(name, state).set(counts.get(state, 0))
            heads = [*await queue.getWaiting(0, 0), *await queue.getPrioritized(0, 0)]
            waited = [now_ms - (_ms(job.timestamp) + _ms(job.delay)) for job in heads]
            metrics.INGRESS_LAG.labels(name).set(max([0.0, *waited]) / 1000)

    async def run(self, interval: float) -> None:
        while True:
            try:
                await self.sample()
            except Exception as exc:  # Redis may be restarting; /readyz says so
                logger.warning("ingress_backlog_sample_failed", error=scrub(str(exc))[:300])
            await asyncio.sleep(interval)

    async def close(self) -> None:
        for queue in self._queues.values():
            with contextlib.suppress(Exception):
                await queue.close()


def _ms(value: Any) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):  # a producer's odd job: count it as due now
        return 0.0


@contextlib.asynccontextmanager
async def serving(
    settings: Settings, ingress: Ingress, queues: Iterable[str]
) -> AsyncIterator[None]:
    """
    The ingress's probes, metrics and backlog sampler (METRICS_PORT), and systemd's watchdog.
    """
    url = reveal(settings.redis_url) or ""
    database = readiness.Database(settings)
    redis = Redis(url)
    backlog = Backlog(url, queues)
    checks: dict[str, probes.Check] = {
        "database": database.reachable,
        "migrations": database.migrated,
        "redis": redis.reachable,
        "consuming": functools.partial(consuming, ingress),
    }
    sampler = probes.background(
        lambda: backlog.run(settings.metrics_sample_seconds), "ingress backlog sampler"
    )
    try:
        async with probes.running(settings, checks, beside=[sampler]):
            yield
    finally:
        await backlog.close()
        await redis.close()
        await database.close()
