"""
The one job lifecycle every job type runs through — and every periodic task, in its short form
(`register_periodic`: no record, no params, the same log events and metrics).

    load the record → validate its params → run the handler with a progress reporter → done

Status changes are NOT written here: the queue row moves (procrastinate fetch / finish / retry)
and the trigger in migrations/0003 moves the record in the same transaction. This module writes
only what the queue row cannot carry — the reason of a failure, progress, a result — and logs
`job_start`, `job_complete` (duration_ms) and `job_failed` (attempt, error, retrying).

With tracing on, each attempt is a `run <JobType>` span (CONSUMER) whose parent is the trace
context stored with the record (migrations/0024): the enqueue's span, in the producer's trace
(broseph/tracing.py). Every log line of the attempt carries its trace_id.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from typing import Any

import procrastinate
import structlog
from opentelemetry.trace import SpanKind
from procrastinate import exceptions, job_context
from procrastinate.retry import RetryDecision
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from broseph import engine, error_reports, metrics, records, services, tracing
from broseph.errors import PermanentJobError, Snooze
from broseph.jobs.base import JobRun, JobType, Periodic
from broseph.logs import scrub
from broseph.retry import JobRetry, budget
from broseph.settings import Settings

logger = structlog.get_logger("broseph.job")


def register(app: procrastinate.App, job_type: JobType) -> None:
    """
    Register one job type as a procrastinate task running the shared lifecycle.
    """
    strategy = JobRetry(job_type)

    async def task(context: job_context.JobContext, /, **kwargs: Any) -> None:
        await run(job_type, strategy, context, kwargs)

    task.__name__ = task.__qualname__ = job_type.name
    app.task(name=job_type.name, queue=job_type.queue, pass_context=True, retry=strategy)(task)


async def run(
    job_type: JobType,
    strategy: JobRetry,
    context: job_context.JobContext,
    kwargs: dict[str, Any],
) -> None:
    if not tracing.on():
        await _run(job_type, strategy, context, kwargs)
        return
    # The record the worker's fetch read with the job carries the producer's trace context.
    record = engine.record_of(context.job)
    parent = tracing.context_from(
        {"traceparent": record.traceparent, "tracestate": record.tracestate} if record else None
    )
    with tracing.span(
        f"run {job_type.name}",
        kind=SpanKind.CONSUMER,
        parent=parent,
        attributes={
            "messaging.system": "broseph",
            "messaging.operation.type": "process",
            "messaging.destination.name": job_type.queue,
            "messaging.message.id": str(context.job.id),
            "broseph.job_type": job_type.name,
            "broseph.attempt": context.job.attempts + 1,
            **({"broseph.record_id": str(record.id)} if record else {}),
        },
    ):
        await _run(job_type, strategy, context, kwargs)


async def _run(
    job_type: JobType,
    strategy: JobRetry,
    context: job_context.JobContext,
    kwargs: dict[str, Any],
) -> None:
    job = context.job
    log = logger.bind(job_type=job_type.name, job_id=job.id, attempt=job.attempts + 1)
    started = time.perf_counter()
    record_id: uuid.UUID | None = None
    reporter: records.ProgressReporter | None = None
    try:
        record_id = _record_id(kwargs)
        log = log.bind(record_id=str(record_id))
        # Inside the try: whatever fails, even getting the services, reaches the record.
        svc = services.for_app(context.app)
        reporter = records.progress_reporter(svc.pool, record_id)
        run_ = await _prepare(job_type, svc, record_id, context, log, reporter)
        payload = _payload(job_type, run_, kwargs)
        log.info("job_start", source=run_.source, max_attempts=run_.max_attempts)
        await job_type.handle(run_, payload)
        # The last write of the attempt carries the result and any coalesced progress update.
        last_progress = await reporter.settle()
        if run_.result or last_progress:
            note = engine.Note(record_id, result=run_.result or None, progress=last_progress)
            # Written by the job's finish, in its statement (the seam), when it goes that way.
            if not engine.note_outcome(job, context.app, note):
                result = Jsonb(run_.result) if run_.result else None
                await records.note_result(svc.pool, record_id, result, progress=last_progress)
    except Snooze as snooze:
        # Nothing failed: the worker's finish puts the job back without spending the attempt.
        if reporter is not None:
            await reporter.settle()
        engine.snooze(context.app, job, snooze.seconds, snooze.reason)
        metrics.JOBS.labels(job_type.name, "snoozed").inc()
        log.info("job_snoozed", reason=snooze.reason, seconds=round(snooze.seconds, 3))
        return
    except BaseException as exc:
        failure = _as_abort(exc, context)
        last_progress = await reporter.settle() if reporter is not None else None
        await _failed(job_type, strategy, context, record_id, failure, log, started, last_progress)
        if failure is exc:
            raise
        raise failure from None
    elapsed = time.perf_counter() - started
    metrics.JOBS.labels(job_type.name, "completed").inc()
    metrics.JOB_DURATION.labels(job_type.name).observe(elapsed)
    log.info("job_complete", duration_ms=round(elapsed * 1000, 1))


def _as_abort(exc: BaseException, context: job_context.JobContext) -> BaseException:
    """
    An abort (a cancel request, or a shutdown past its timeout) reaches an async handler as
    CancelledError, but procrastinate treats only JobAborted as an abort — a CancelledError would
    be retried, and a cancelled job would end `failed`. Translate it.
    """
    reason = context.abort_reason()
    if not isinstance(exc, asyncio.CancelledError) or reason is None:
        return exc
    if reason == job_context.AbortReason.SHUTDOWN:
        return exceptions.JobAborted("worker shut down before the job finished")
    return exceptions.JobAborted("cancelled on request")


def _record_id(kwargs: dict[str, Any]) -> uuid.UUID:
    raw = kwargs.get("record_id")
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        raise PermanentJobError(
            f"queue row has no valid record_id ({raw!r}); enqueue through broseph.enqueue"
        ) from None


async def _prepare(
    job_type: JobType,
    svc: services.Services,
    record_id: uuid.UUID,
    context: job_context.JobContext,
    log: structlog.stdlib.BoundLogger,
    reporter: records.ProgressReporter,
) -> JobRun:
    # Read with the queue row by the worker's fetch (broseph/engine.py); loaded otherwise.
    record = engine.record_of(context.job)
    if record is None or record.id != record_id:
        record = await records.load(svc.pool, record_id)
    if record is None:
        raise PermanentJobError(f"job record {record_id} not found (deleted?)")
    return JobRun(
        record_id=record_id,
        job_type=job_type.name,
        attempt=context.job.attempts + 1,
        max_attempts=budget(job_type, context.job.task_kwargs).max_attempts,
        source=record.source,
        services=svc,
        log=log,
        progress=reporter,
        should_abort=context.should_abort,
        params=record.params,
    )


def _payload(job_type: JobType, run_: JobRun, kwargs: dict[str, Any]) -> Any:
    # The database is the source of truth: the record's params, not the queue copy, are used.
    try:
        return job_type.payload.model_validate(run_.params)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'params'}: {err['msg']}"
            for err in exc.errors()
        )
        raise PermanentJobError(f"invalid params: {problems}") from None


async def _failed(
    job_type: JobType,
    strategy: JobRetry,
    context: job_context.JobContext,
    record_id: uuid.UUID | None,
    exc: BaseException,
    log: structlog.stdlib.BoundLogger,
    started: float,
    last_progress: tuple[int, str] | None,
) -> None:
    error = describe(exc)
    aborted = isinstance(exc, exceptions.JobAborted)
    decision = (
        strategy.get_retry_decision(exception=exc, job=context.job)
        if not aborted or context.abort_reason() == job_context.AbortReason.SHUTDOWN
        else None
    )
    note = engine.Note(record_id, error=error, progress=last_progress) if record_id else None
    if note is not None and not engine.note_outcome(context.job, context.app, note):
        assert record_id is not None
        try:
            pool = services.pool_of(context.app)
            await records.note_error(pool, record_id, error, progress=last_progress)
        except Exception as note_exc:  # the database may be the very thing that failed
            log.warning("job_error_not_recorded", error=scrub(str(note_exc))[:500])
    elapsed = time.perf_counter() - started
    outcome = "retrying" if decision else ("cancelled" if aborted else "failed")
    if outcome == "failed":  # the job's last attempt: reported once (SENTRY_DSN)
        error_reports.final_failure(job_type.name, record_id, context.job, exc)
    metrics.JOBS.labels(job_type.name, outcome).inc()
    metrics.JOB_DURATION.labels(job_type.name).observe(elapsed)
    log.warning(
        "job_failed",
        error=error,
        retrying=decision is not None,
        retry_in_seconds=_retry_seconds(decision),
        permanent=isinstance(exc, PermanentJobError),
        aborted=aborted,
        duration_ms=round(elapsed * 1000, 1),
    )


def describe(exc: BaseException) -> str:
    """
    An attempt's failure for the record and the log: never empty (at least the exception's
    type), scrubbed (before it is cut: a cut could split a secret the scrubber then misses), at
    most 2,000 characters.
    """
    message = str(exc).strip()
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return scrub(text)[:2000]


def _retry_seconds(decision: RetryDecision | None) -> float | None:
    if decision is None or decision.retry_at is None:
        return None
    delta = decision.retry_at - datetime.datetime.now(datetime.UTC)
    return round(max(delta.total_seconds(), 0.0), 1)


def register_periodic(
    app: procrastinate.App, settings: Settings, periodic: Periodic, *, schedule: bool = True
) -> None:
    """
    Register one periodic task (the catalogue's and the operations ticks alike) and, unless
    `schedule` is False, its cron tick. A tick is not retried: the next one comes.
    """

    cron = periodic.cron(settings)

    async def task(context: job_context.JobContext, timestamp: int) -> Any:
        if not periodic.monitored:
            return await run_periodic(periodic, context, timestamp)
        # With SENTRY_DSN, check-ins on the tick's own schedule: a tick that never runs is a
        # missed check-in (an alert), one that raises an `error` check-in.
        with error_reports.check_ins(periodic.name, cron):
            return await run_periodic(periodic, context, timestamp)

    task.__name__ = task.__qualname__ = periodic.name
    registered = app.task(
        name=periodic.name, queue=periodic.queue, pass_context=True, priority=periodic.priority
    )(task)
    if schedule:
        app.periodic(cron=cron, periodic_id=periodic.name)(registered)


async def run_periodic(periodic: Periodic, context: job_context.JobContext, timestamp: int) -> Any:
    """
    One tick: `job_start`, then `job_complete` or `job_failed`, and the job metrics, labelled
    with the task's name.
    """
    log = logger.bind(
        job_type=periodic.name, job_id=context.job.id, attempt=context.job.attempts + 1
    )
    started = time.perf_counter()
    log.info("job_start", source="periodic", timestamp=timestamp)
    try:
        result = await periodic.run(services.for_app(context.app), timestamp)
    except BaseException as exc:
        failure = _as_abort(exc, context)
        aborted = isinstance(failure, exceptions.JobAborted)
        elapsed = _observe(periodic.name, "cancelled" if aborted else "failed", started)
        log.warning(
            "job_failed",
            error=describe(failure),
            retrying=False,
            aborted=aborted,
            duration_ms=round(elapsed * 1000, 1),
        )
        if failure is exc:
            raise
        raise failure from None
    elapsed = _observe(periodic.name, "completed", started)
    log.info("job_complete", duration_ms=round(elapsed * 1000, 1))
    return result


def _observe(name: str, outcome: str, started: float) -> float:
    elapsed = time.perf_counter() - started
    metrics.JOBS.labels(name, outcome).inc()
    metrics.JOB_DURATION.labels(name).observe(elapsed)
    return elapsed
