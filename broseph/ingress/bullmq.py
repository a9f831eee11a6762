"""
BullMQ ingress: the Node producers' `broseph-jobs` queue (or several) moved into Postgres.

Jobs are taken in batches (`consumer`: up to INGRESS_CONCURRENCY held per queue, in lanes of up
to INGRESS_BATCH_SIZE). For each batch: map and validate every job (`mapping`), commit the job
records and their receipts in Postgres in one statement (`batcher`, `sink`), and only then ack
the jobs in BullMQ — each ack a `moveToFinished` that also takes the next job. A crash between
commit and ack makes BullMQ redeliver the jobs (stalled-job check); the receipts turn the
redeliveries into no-ops, so every job yields exactly one record. Bad input is quarantined and
the BullMQ job failed as unrecoverable with the same reason.

No log line per job: the receipt row (`broseph.ingress_receipts`) is the audit trail of each
job moved, the quarantine row of each refused (logged as a warning), and a redelivery that
found its receipt is logged (`ingress_duplicate`). Only bullmq's code touches BullMQ's Redis
keys (through `consumer`, the one module that uses bullmq beyond its documented API); the one
direct Redis call is `CONFIG GET maxmemory-policy` at (re)connect, to warn when Redis may evict
queue data. Needs the `broseph[bullmq]` extra; nothing in the core imports this module.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import time
import urllib.parse
from collections.abc import Mapping, Sequence
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
from broseph.ingress import IngressHealth, batcher, consumer, mapping, sink
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
        # bullmq's internals the consumer relies on: checked before anything starts.
        consumer.check_internals()
        self.batch_size = min(settings.ingress_batch_size, self.concurrency)
        self._pool: AsyncConnectionPool[Any] | None = None
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
            # One connection per lane (a batch in flight), and one for quarantine rows.
            max_size=len(consumer.lane_sizes(self.concurrency, self.batch_size)) * len(self.queues)
            + 1,
            # Autocommit: a batch's one statement (records + receipts), or a quarantine row, is
            # committed when it returns — before the batch's jobs are acked.
            kwargs={**db.connection_kwargs(self.settings), "autocommit": True},
            timeout=POOL_TIMEOUT_SECONDS,
            open=False,
            name="broseph-ingress",
        )
        await self._pool.open(wait=False)
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
        consumers = [self._consumer(queue) for queue in self.queues]
        runs = [asyncio.create_task(c.run(), name=f"bullmq-consumer:{c.name}") for c in consumers]
        stop = asyncio.create_task(self._stopping.wait())
        self._consuming = True
        logger.info(
            "ingress_started",
            queues=self.queues,
            concurrency=self.concurrency,
            batch_size=self.batch_size,
        )
        try:
            await asyncio.wait([*runs, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._consuming = False
            stop.cancel()
            logger.info("ingress_stopping", in_flight=self._in_flight)
            # stop() ends the waiting for new jobs; the batches held finish — committed, then
            # acked, without taking more — while their locks are still renewed.
            await asyncio.gather(*(c.stop() for c in consumers), return_exceptions=True)
            for run in await asyncio.gather(*runs, return_exceptions=True):
                if isinstance(run, BaseException):
                    logger.error("ingress_worker_error", error=scrub(repr(run)))
            await asyncio.gather(*(c.close() for c in consumers), return_exceptions=True)

    def _consumer(self, queue: str) -> consumer.BatchConsumer:
        options = {
            "connection": worker_redis_url(reveal(self.settings.redis_url) or ""),
            "name": "broseph-ingress",
            "lockDuration": self.settings.ingress_lock_duration_ms,
            "stalledInterval": self.settings.ingress_stalled_interval_ms,
            "maxStalledCount": MAX_STALLED_COUNT,
            "removeOnComplete": KEEP_COMPLETED,
            "removeOnFail": KEEP_FAILED,
        }

        async def handle(jobs: list[Any]) -> list[consumer.Verdict]:
            return await self._take(queue, jobs)

        taker = consumer.BatchConsumer(
            queue,
            options,
            handle,
            held=self.concurrency,
            batch_size=self.batch_size,
            retry_delay=RUN_RETRY_DELAY_MS / 1000,
        )
        taker.on("error", lambda err, *_: self._worker_error(queue, err))
        return taker

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

    # --- one batch -------------------------------------------------------------------------

    async def _take(self, queue: str, jobs: list[Any]) -> list[consumer.Verdict]:
        """
        Commit a batch of BullMQ jobs to Postgres; per job, what its BullMQ ack is to be: a
        return value (complete it), or an exception (fail it, retry it, or it was delayed).
        """
        self._in_flight += len(jobs)
        counts: collections.Counter[str] = collections.Counter()
        try:
            deliveries = [self._delivery(queue, job) for job in jobs]
            verdicts: list[consumer.Verdict | None] = [None] * len(jobs)
            planned: list[tuple[int, mapping.Plan]] = []
            for i, delivery in enumerate(deliveries):
                try:
                    planned.append((i, self._plan(delivery)))
                except mapping.Rejected as exc:
                    verdicts[i] = await self._refused(jobs[i], delivery, exc.reason, counts)
            outcomes = await batcher.write(self._connections(), [p for _, p in planned])
            for (i, _), outcome in zip(planned, outcomes, strict=True):
                job, delivery = jobs[i], deliveries[i]
                if isinstance(outcome, sink.Refused):
                    verdicts[i] = await self._refused(job, delivery, outcome.reason, counts)
                elif isinstance(outcome, Exception):
                    verdicts[i] = await self._failed(job, delivery, outcome, counts)
                else:
                    counts["duplicate" if outcome.duplicate else "enqueued"] += 1
                    if outcome.duplicate:
                        # A redelivery (the ingress stopped between commit and ack before).
                        logger.info(
                            "ingress_duplicate",
                            queue=queue,
                            job_id=delivery.job_id,
                            record_id=str(outcome.record_id),
                        )
                    verdicts[i] = await self.acknowledge(delivery, outcome)
            logger.debug("ingress_batch", queue=queue, jobs=len(jobs), outcomes=dict(counts))
            decided = [v for v in verdicts if v is not None]
            assert len(decided) == len(jobs)
            return decided
        finally:
            self._in_flight -= len(jobs)
            for name, n in counts.items():
                self._count(queue, name, n)

    def _delivery(self, queue: str, job: Any) -> mapping.Delivery:
        return mapping.Delivery(
            source=self.source,
            queue=queue,
            job_id=str(job.id),
            name=str(job.name),
            data=job.data,
            options=dict(job.opts or {}),
            timestamp_ms=int(job.timestamp),
        )

    def _plan(self, delivery: mapping.Delivery) -> mapping.Plan:
        # One CONSUMER span per delivery, continuing the BullMQ producer's trace when the job
        # carries one; its context is stored with the record, so the job's attempts continue it.
        # (The commit is the batch's, one statement for many deliveries: not inside this span.)
        with tracing.span(
            f"ingress {sink.pg_text(delivery.name)[:100]}",
            kind=SpanKind.CONSUMER,
            parent=producer_context(delivery.options),
            attributes={
                "messaging.system": "bullmq",
                "messaging.operation.type": "process",
                "messaging.destination.name": sink.pg_text(delivery.queue),
                "messaging.message.id": sink.pg_text(delivery.job_id),
            },
        ):
            planned = mapping.plan(
                delivery, self.routes, max_payload_bytes=self.settings.ingress_max_payload_bytes
            )
            traceparent, tracestate = tracing.current_context()
        if traceparent is None:
            return planned
        return dataclasses.replace(planned, traceparent=traceparent, tracestate=tracestate)

    def _connections(self) -> AsyncConnectionPool[Any]:
        assert self._pool is not None
        return self._pool

    async def acknowledge(
        self, delivery: mapping.Delivery, outcome: sink.Outcome
    ) -> dict[str, Any]:
        """
        The return value BullMQ stores on a committed job. Called after the Postgres commit and
        before the ack, so a crash before the batch is acked makes BullMQ redeliver the job and
        the receipt turns that into a duplicate.
        """
        return {"record_id": str(outcome.record_id), "duplicate": outcome.duplicate}

    async def _refused(
        self,
        job: Any,
        delivery: mapping.Delivery,
        reason: str,
        counts: collections.Counter[str],
    ) -> BaseException:
        """
        Quarantine a delivery that can never become a job; BullMQ fails it with the same reason.
        """
        # The text Postgres stores is also BullMQ's failedReason: the two say the same.
        reason = sink.pg_text(reason)
        try:
            await self._quarantine(delivery, reason)
        except Exception as exc:  # the quarantine row could not be written: an ingest error
            return await self._failed(job, delivery, exc, counts)
        counts["quarantined"] += 1
        logger.warning(
            "ingress_quarantined",
            queue=delivery.queue,
            job_id=delivery.job_id,
            job_name=sink.pg_text(delivery.name),
            reason=reason,
        )
        unrecoverable: BaseException = bullmq.UnrecoverableError(reason)
        return unrecoverable

    async def _quarantine(self, delivery: mapping.Delivery, reason: str) -> None:
        assert self._pool is not None
        async with self._pool.connection() as conn:
            await sink.quarantine(conn, delivery, reason)

    async def _failed(
        self,
        job: Any,
        delivery: mapping.Delivery,
        exc: Exception,
        counts: collections.Counter[str],
    ) -> BaseException:
        """
        A job that could not be committed: the error itself lets BullMQ retry it with the
        producer's own attempts / backoff; otherwise DelayedError or UnrecoverableError.
        """
        counts["error"] += 1
        self._last_error = scrub(str(exc))
        try:
            verdict = await self._after_error(job, delivery, exc)
        except Exception as again:  # Redis or Postgres failed too: BullMQ retries or fails it
            return again
        if isinstance(verdict, bullmq.UnrecoverableError):
            counts["quarantined"] += 1  # kept in Postgres by _after_error
        return verdict

    async def _after_error(
        self, job: Any, delivery: mapping.Delivery, exc: Exception
    ) -> BaseException:
        backoff = mapping.backoff_type(delivery.options)
        attempts_left = job.attemptsMade + 1 < int(delivery.options.get("attempts") or 0)
        bullmq_can_retry = attempts_left and (backoff is None or backoff in _BUILTIN_BACKOFFS)
        transient = sink.is_transient(exc)
        logger.warning(
            "ingress_failed",
            queue=delivery.queue,
            job_id=delivery.job_id,
            job_name=sink.pg_text(delivery.name),
            error=scrub(str(exc)),
            transient=transient,
            retry="bullmq" if bullmq_can_retry else ("delayed" if transient else "none"),
        )
        if bullmq_can_retry:
            return exc
        if transient:
            # Never spend the producer's last attempt on our own outage: come back later.
            delay = min(OUTAGE_DELAY_MS[0] * 2 ** min(job.attemptsStarted, 8), OUTAGE_DELAY_MS[1])
            await job.moveToDelayed(int(time.time() * 1000) + delay, job.token)
            delayed: BaseException = bullmq.DelayedError()
            return delayed
        # Not transient and out of attempts: keep it in Postgres rather than only in Redis.
        reason = f"ingest failed: {type(exc).__name__}: {scrub(str(exc))}"
        await self._quarantine(delivery, reason)
        unrecoverable: BaseException = bullmq.UnrecoverableError(reason)
        return unrecoverable

    def _count(self, queue: str, outcome: str, n: int = 1) -> None:
        self._outcomes[outcome] += n
        metrics.INGRESS.labels(queue, outcome).inc(n)


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
