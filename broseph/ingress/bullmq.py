"""
BullMQ ingress: the Node producers' `broseph-jobs` queue (or several) moved into Postgres.

For each BullMQ job: map and validate it (`mapping`), commit the job record and its receipt in
Postgres (`sink`, batched with the jobs other processors have ready: `batcher`), and only then
return from the processor — which is BullMQ's ack. A crash
between commit and ack makes BullMQ redeliver the job (stalled-job check); the receipt turns the
redelivery into a no-op, so every job yields exactly one record. Bad input is quarantined and the
BullMQ job failed as unrecoverable with the same reason.

Only the `bullmq` package touches BullMQ's Redis keys (Worker); the one direct Redis call is
`CONFIG GET maxmemory-policy` at (re)connect, to warn when Redis may evict queue data.
Needs the `broseph[bullmq]` extra; nothing in the core imports this module.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import bullmq
import redis.asyncio as aioredis
import structlog
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind
from psycopg_pool import AsyncConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from broseph import db, jobs, metrics, tracing
from broseph.ingress import IngressHealth, batcher, mapping, sink
from broseph.logs import scrub
from broseph.settings import Settings, reveal

logger = structlog.get_logger("broseph.ingress")

# A job whose processor vanished (crash, kill -9) is given back by the stalled-job check; after
# this many stalls BullMQ fails it instead. Above BullMQ's default of 1 so two crashes in a row
# (a restart loop during an incident) cannot strand a job in BullMQ's failed set.
MAX_STALLED_COUNT = 5
# After a Redis error the worker loop waits this long before fetching again (BullMQ: 15 s).
RUN_RETRY_DELAY_MS = 1000
# Completed jobs are in Postgres; keep an hour of them in Redis for operators' tools. Failed
# (quarantined) ones are in the quarantine table; keep a week for cross-checking.
KEEP_COMPLETED = {"age": 3600, "count": 1000}
KEEP_FAILED = {"age": 7 * 86400}
# A job's Postgres connection wait; a longer database outage retries the job later instead.
POOL_TIMEOUT_SECONDS = 10.0
# Waits between connection attempts while Redis is unreachable (seconds, doubling).
CONNECT_BACKOFF = (0.5, 10.0)
# Delay of a job that met a database outage on its producer's last attempt (ms, doubling).
OUTAGE_DELAY_MS = (1000, 60000)
_BUILTIN_BACKOFFS = frozenset({"fixed", "exponential"})
# bullmq blocks on Redis (BZPOPMIN) for up to 10 s while waiting for a delayed job; redis-py 8
# times sockets out after 5 s by default and then retries the same wait with backoff, so a job
# delayed by more than ~10 s was never fetched. Worker connections get a longer socket timeout.
WORKER_SOCKET_TIMEOUT = 20.0


class _Quarantined(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BullMQIngress:
    """
    The `Ingress` for BullMQ: one bullmq Worker per queue, supervised and reconnected.
    """

    source = "bullmq"

    def __init__(
        self,
        settings: Settings,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
    ) -> None:
        self.settings = settings
        self.queues = tuple(queues or settings.ingress_queues)
        self.concurrency = concurrency or settings.ingress_concurrency
        self.routes = mapping.routes_from(settings)
        self._pool: AsyncConnectionPool[Any] | None = None
        self._batcher: batcher.Batcher | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._consuming = False
        self._in_flight = 0
        self._outcomes: collections.Counter[str] = collections.Counter()
        self._last_error: str | None = None

    # --- Ingress ---------------------------------------------------------------------------

    async def start(self) -> None:
        """
        Open the database pool and start consuming in the background (returns at once; an
        unreachable Redis is retried until it answers).
        """
        if self._supervisor is not None:
            raise RuntimeError("ingress already started")
        self._pool = AsyncConnectionPool(
            db.database_url(self.settings),
            min_size=1,
            max_size=self.concurrency * len(self.queues) + 1,
            # Autocommit: each job's one statement (record + receipt, or quarantine row) is
            # committed when it returns — before the processor returns, i.e. before the ack.
            kwargs={**db.connection_kwargs(self.settings), "autocommit": True},
            timeout=POOL_TIMEOUT_SECONDS,
            open=False,
            name="broseph-ingress",
        )
        await self._pool.open(wait=False)
        self._batcher = batcher.Batcher(self._pool, max_batch=self.concurrency * len(self.queues))
        # The catalogue is loaded by now (imported above), not on the first job: a slow import
        # inside a processor would stall the event loop past the job's lock.
        unavailable = sorted(n for n, r in self.routes.items() if r.job_type not in jobs.CATALOGUE)
        if unavailable:
            # Jobs with these names will be quarantined until the job type exists.
            logger.warning("ingress_unmapped_job_types", job_names=unavailable)
        self._stopping.clear()
        self._supervisor = asyncio.create_task(self._supervise(), name="broseph-ingress")

    async def stop(self) -> None:
        """
        Stop taking jobs, let in-flight ones commit and ack, then close Redis and the pool.
        """
        self._stopping.set()
        if self._supervisor is not None:
            await self._supervisor
            self._supervisor = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        logger.info("ingress_stopped", outcomes=dict(self._outcomes))

    async def health(self) -> IngressHealth:
        return IngressHealth(
            source=self.source,
            consuming=self._consuming,
            queues=self.queues,
            in_flight=self._in_flight,
            outcomes=dict(self._outcomes),
            last_error=self._last_error,
        )

    # --- supervision -----------------------------------------------------------------------

    async def _supervise(self) -> None:
        wait = CONNECT_BACKOFF[0]
        while not self._stopping.is_set():
            if not await self._redis_ready():
                await self._sleep(wait)
                wait = min(wait * 2, CONNECT_BACKOFF[1])
                continue
            wait = CONNECT_BACKOFF[0]
            try:
                await self._consume()
            except Exception as exc:  # keep supervising: a dead supervisor would consume nothing
                self._last_error = scrub(repr(exc))
                logger.error("ingress_consume_failed", error=self._last_error)
            if not self._stopping.is_set():
                # A worker loop ended on its own (an error it could not recover from): start
                # over with fresh connections rather than consume with fewer workers.
                logger.error("ingress_worker_exited", queues=self.queues)
                await self._sleep(1.0)

    async def _consume(self) -> None:
        workers = [self._worker(queue) for queue in self.queues]
        runs = [asyncio.create_task(w.run(), name=f"bullmq-worker:{w.name}") for w in workers]
        stop = asyncio.create_task(self._stopping.wait())
        self._consuming = True
        logger.info("ingress_started", queues=self.queues, concurrency=self.concurrency)
        try:
            await asyncio.wait([*runs, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._consuming = False
            stop.cancel()
            logger.info("ingress_stopping", in_flight=self._in_flight)
            # pause() stops fetching and waits for in-flight jobs (they commit, then ack) while
            # their locks are still renewed; close() alone stops renewing as soon as the fetch
            # loop ends, so a job outliving its lock would be redelivered.
            await asyncio.gather(*(w.pause() for w in workers), return_exceptions=True)
            await asyncio.gather(*(w.close() for w in workers), return_exceptions=True)
            for run in await asyncio.gather(*runs, return_exceptions=True):
                if isinstance(run, BaseException):
                    logger.error("ingress_worker_error", error=scrub(repr(run)))
            # A last stalled-check tick can reopen a connection between close() and the end of
            # run(); closing again once run() is over leaves nothing open.
            await asyncio.gather(*(w.close() for w in workers), return_exceptions=True)

    def _worker(self, queue: str) -> Any:
        options = {
            "connection": worker_redis_url(reveal(self.settings.redis_url) or ""),
            "concurrency": self.concurrency,
            "autorun": False,
            "name": "broseph-ingress",
            "lockDuration": self.settings.ingress_lock_duration_ms,
            "stalledInterval": self.settings.ingress_stalled_interval_ms,
            "maxStalledCount": MAX_STALLED_COUNT,
            "runRetryDelay": RUN_RETRY_DELAY_MS,
            "removeOnComplete": KEEP_COMPLETED,
            "removeOnFail": KEEP_FAILED,
        }
        worker = bullmq.Worker(queue, self._processor(queue), options)
        worker.on("error", lambda err, *_: self._worker_error(queue, err))
        return worker

    def _worker_error(self, queue: str, err: Any) -> None:
        self._last_error = scrub(str(err))
        logger.warning("ingress_redis_error", queue=queue, error=self._last_error)

    async def _redis_ready(self) -> bool:
        """
        Redis answers (PING); warn when its eviction policy could drop queue data.
        """
        client = aioredis.from_url(
            reveal(self.settings.redis_url) or "",
            socket_connect_timeout=2,
            socket_timeout=2,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        try:
            await client.ping()
            try:
                policy = (await client.config_get("maxmemory-policy")).get("maxmemory-policy")
            except ResponseError as exc:  # CONFIG disabled (some managed Redis services)
                logger.info("ingress_redis_policy_unknown", error=str(exc))
                policy = None
        except (RedisError, OSError) as exc:
            self._last_error = scrub(str(exc))
            logger.warning("ingress_redis_unavailable", error=self._last_error)
            return False
        finally:
            await client.aclose()
        if policy is not None and policy != "noeviction":
            logger.warning(
                "ingress_redis_eviction_policy",
                policy=policy,
                hint="BullMQ needs maxmemory-policy noeviction; Redis may drop queued jobs",
            )
        return True

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass

    # --- one job ---------------------------------------------------------------------------

    def _processor(self, queue: str) -> Callable[[Any, str], Awaitable[dict[str, Any]]]:
        # Two parameters: bullmq passes an abort signal only to processors that take three.
        async def process(job: Any, token: str) -> dict[str, Any]:
            return await self._take(queue, job, token)

        return process

    async def _take(self, queue: str, job: Any, token: str) -> dict[str, Any]:
        delivery = mapping.Delivery(
            source=self.source,
            queue=queue,
            job_id=str(job.id),
            name=str(job.name),
            data=job.data,
            options=dict(job.opts or {}),
            timestamp_ms=int(job.timestamp),
        )
        log = logger.bind(queue=queue, job_id=delivery.job_id, job_name=sink.pg_text(job.name))
        self._in_flight += 1
        try:
            with tracing.span(
                f"ingress {sink.pg_text(job.name)[:100]}",
                kind=SpanKind.CONSUMER,
                parent=producer_context(delivery.options),
                attributes={
                    "messaging.system": "bullmq",
                    "messaging.operation.type": "process",
                    "messaging.destination.name": sink.pg_text(queue),
                    "messaging.message.id": sink.pg_text(delivery.job_id),
                },
            ):
                return await self._take_traced(queue, job, token, delivery, log)
        finally:
            self._in_flight -= 1

    async def _take_traced(
        self,
        queue: str,
        job: Any,
        token: str,
        delivery: mapping.Delivery,
        log: structlog.stdlib.BoundLogger,
    ) -> dict[str, Any]:
        try:
            outcome = await self._move(delivery)
        except _Quarantined as exc:
            self._count(queue, "quarantined")
            log.warning("ingress_quarantined", reason=exc.reason)
            raise bullmq.UnrecoverableError(exc.reason) from None
        except Exception as exc:
            self._count(queue, "error")
            self._last_error = scrub(str(exc))
            await self._after_error(job, token, delivery, exc, log)
            raise
        self._count(queue, "duplicate" if outcome.duplicate else "enqueued")
        log.info(
            "ingress_duplicate" if outcome.duplicate else "ingress_enqueued",
            record_id=str(outcome.record_id),
        )
        return await self.acknowledge(delivery, outcome)

    async def acknowledge(
        self, delivery: mapping.Delivery, outcome: sink.Outcome
    ) -> dict[str, Any]:
        """
        The processor's return value for a committed delivery (BullMQ stores it on the job).
        Called after the Postgres commit; returning it is BullMQ's ack, so a crash before this
        returns makes BullMQ redeliver the job and the receipt turns that into a duplicate.
        """
        return {"record_id": str(outcome.record_id), "duplicate": outcome.duplicate}

    async def _move(self, delivery: mapping.Delivery) -> sink.Outcome:
        """
        Commit the delivery to Postgres: a job record, or a quarantine row (`_Quarantined`).
        """
        assert self._pool is not None
        try:
            planned = mapping.plan(
                delivery, self.routes, max_payload_bytes=self.settings.ingress_max_payload_bytes
            )
            traceparent, tracestate = tracing.current_context()  # this delivery's ingress span
            if traceparent is not None:
                planned = dataclasses.replace(
                    planned, traceparent=traceparent, tracestate=tracestate
                )
            assert self._batcher is not None
            return await self._batcher.ingest(planned)
        except (mapping.Rejected, sink.Refused) as exc:
            # The text Postgres stores is also BullMQ's failedReason: the two say the same.
            reason = sink.pg_text(exc.reason)
        await self._quarantine(delivery, reason)
        raise _Quarantined(reason)

    async def _quarantine(self, delivery: mapping.Delivery, reason: str) -> None:
        assert self._pool is not None
        async with self._pool.connection() as conn:
            await sink.quarantine(conn, delivery, reason)

    async def _after_error(
        self,
        job: Any,
        token: str,
        delivery: mapping.Delivery,
        exc: Exception,
        log: structlog.stdlib.BoundLogger,
    ) -> None:
        """
        A job that could not be committed. Returns to let BullMQ retry it with the producer's
        own attempts / backoff; otherwise raises DelayedError or UnrecoverableError.
        """
        backoff = mapping.backoff_type(delivery.options)
        attempts_left = job.attemptsMade + 1 < int(delivery.options.get("attempts") or 0)
        bullmq_can_retry = attempts_left and (backoff is None or backoff in _BUILTIN_BACKOFFS)
        transient = sink.is_transient(exc)
        log.warning(
            "ingress_failed",
            error=scrub(str(exc)),
            transient=transient,
            retry="bullmq" if bullmq_can_retry else ("delayed" if transient else "none"),
        )
        if bullmq_can_retry:
            return
        if transient:
            # Never spend the producer's last attempt on our own outage: come back later.
            delay = min(OUTAGE_DELAY_MS[0] * 2 ** min(job.attemptsStarted, 8), OUTAGE_DELAY_MS[1])
            await job.moveToDelayed(int(time.time() * 1000) + delay, token)
            raise bullmq.DelayedError()
        # Not transient and out of attempts: keep it in Postgres rather than only in Redis.
        reason = f"ingest failed: {type(exc).__name__}: {scrub(str(exc))}"
        await self._quarantine(delivery, reason)
        self._count(delivery.queue, "quarantined")
        raise bullmq.UnrecoverableError(reason) from exc

    def _count(self, queue: str, outcome: str) -> None:
        self._outcomes[outcome] += 1
        metrics.INGRESS.labels(queue, outcome).inc()


def worker_redis_url(url: str) -> str:
    """
    REDIS_URL with a socket timeout longer than bullmq's longest blocking wait.
    """
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    timeout = max(float(query.get("socket_timeout") or 0), WORKER_SOCKET_TIMEOUT)
    query["socket_timeout"] = f"{timeout:g}"
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


# BullMQ's telemetry (a Queue given a `telemetry`, e.g. bullmq-otel's BullMQOtel in a NestJS
# producer) stores the producer span's propagation carrier in the job's options, under `tm`
# (telemetryMetadata) in Redis: {"traceparent": …, "tracestate": …}, or that object as JSON text.
_CARRIER_MAX_CHARS = 4096


def producer_context(options: Mapping[str, Any]) -> Context | None:
    """
    The BullMQ producer's trace context carried by a job's options, for the ingress span to
    continue; None when tracing is off or the job carries none (or nothing valid: ignored).
    """
    if not tracing.on():
        return None
    carrier = options.get("tm", options.get("telemetryMetadata"))
    if isinstance(carrier, str) and len(carrier) <= _CARRIER_MAX_CHARS:
        try:
            carrier = json.loads(carrier)
        except ValueError:
            return None
    return tracing.context_from(carrier if isinstance(carrier, Mapping) else None)
