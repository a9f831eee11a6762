"""
The App class of `broseph.worker.app`: procrastinate's App, plus what a starting worker checks
and what a running worker serves beside its jobs (probes, metrics and their sampler, systemd's
watchdog: broseph/ops/metrics_server.py) —
however the worker is started: `broseph worker`, `procrastinate --app broseph.worker.app worker`,
or `app.run_worker_async()`.

Before the first job, a worker refuses what would break the job records (`--delete-jobs`), an
unmigrated database, and invalid outside-service configuration — each with one line naming the
cause and the fix (`broseph.problems`) — and builds the services its jobs share, once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import procrastinate
import psycopg
from procrastinate import jobs as procrastinate_jobs
from procrastinate import utils

from broseph import engine, error_reports, jobs, logs, migrate, problems, services, tracing
from broseph.ops import metrics_server
from broseph.ops.connector import DatabaseUnavailable
from broseph.problems import FIX_CONFIG, Problem
from broseph.settings import Settings


class WorkerApp(procrastinate.App):
    """
    A procrastinate App that knows its settings. With `owns_logging`, opening it configures the
    process's logging (LOG_FORMAT, LOG_LEVEL) — for processes started with it, such as
    `procrastinate --app broseph.worker.app …`, whose own logging would skip the scrubber.
    """

    def __init__(self, *, settings: Settings, owns_logging: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.owns_logging = owns_logging

    def open_async(self, pool: Any = None) -> utils.AwaitableContext[procrastinate.App]:
        if self.owns_logging:
            logs.configure(self.settings.log_format, self.settings.log_level)
            tracing.configure()  # OTEL_TRACES_EXPORTER unset: tracing stays off
        return super().open_async(pool)

    async def run_worker_async(self, **kwargs: Any) -> None:
        failure: Problem | None = None
        built: services.Services | None = None
        reporting = False
        try:
            options = {**self.worker_defaults, **kwargs}
            _refuse_deleting_jobs(options)
            await _require_migrated(self)
            # SENTRY_DSN: final failures and periodic check-ins from here on (error_reports.py).
            reporting = error_reports.start(self.settings)
            # Built from this app's settings, once, before any job: a broken FCM credentials
            # file stops the worker here instead of failing every job it would run (a worker
            # whose queues hold no job type that pushes does not need it at all).
            built = services.start(self, uses=_uses(options.get("queues")))
        except Problem as problem:
            failure = problem
        if failure is not None:
            if reporting:
                error_reports.stop()
            raise failure.alone()  # one line, even where procrastinate prints the whole chain
        try:
            await self._serve(**kwargs)
        finally:
            if built is not None:
                await services.stop(self, built)
            if reporting:
                error_reports.stop()  # flushes: a final failure just before the stop is sent
        if getattr(self.connector, "gave_up", False):
            # procrastinate stops "cleanly" when a side task (heartbeat, LISTEN) fails; after a
            # long outage that must read as a failure, so the supervisor restarts the worker.
            raise DatabaseUnavailable(
                f"the database was unavailable for more than {self.settings.db_outage_timeout:g}"
                " s (DB_OUTAGE_TIMEOUT); exiting so the supervisor restarts this worker"
            )

    async def _serve(self, **kwargs: Any) -> None:
        listen = bool({**self.worker_defaults, **kwargs}.get("listen_notify", True))
        async with metrics_server.serving(self, self.settings, listen=listen):
            # The seam's batch fetch: its concurrency and the middleware starting buffered jobs.
            await super().run_worker_async(**engine.worker_options(self, kwargs))


def _uses(queues: Iterable[str] | None) -> frozenset[str]:
    """
    The outside services the job types on these queues (None: all queues) use.
    """
    served = [t for t in jobs.CATALOGUE.values() if queues is None or t.queue in set(queues)]
    return frozenset().union(*(t.uses for t in served))


def _refuse_deleting_jobs(options: dict[str, Any]) -> None:
    """
    procrastinate's `--delete-jobs` deletes a finished job's queue row, and the record trigger
    (migrations/0003) reads a deleted unfinished row as a cancel: a completed job would say
    `cancelled`. Retention (RETENTION_DAYS) removes finished jobs with their records instead.
    """
    value = options.get("delete_jobs")
    condition = procrastinate_jobs.DeleteJobCondition(value) if isinstance(value, str) else value
    if condition is None or condition == procrastinate_jobs.DeleteJobCondition.NEVER:
        return
    raise Problem(
        f"--delete-jobs={condition.value} would delete finished jobs' queue rows and leave their"
        " job records saying 'cancelled'",
        "drop it (or use --delete-jobs=never); finished jobs are pruned with their records after"
        " RETENTION_DAYS",
        exit_code=FIX_CONFIG,
    )


async def _require_migrated(app: procrastinate.App) -> None:
    try:
        async with services.pool_of(app).connection() as conn:
            missing = await migrate.pending(conn)
    except psycopg.Error as exc:
        raise problems.database_problem(exc) from exc
    if missing:
        shown = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        raise Problem(
            f"the database is not migrated ({len(missing)} migration(s) pending: {shown})",
            "run `broseph migrate`",
        )
