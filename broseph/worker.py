"""
`broseph.worker.app` — the procrastinate App, the only import path operations need:

    procrastinate --app broseph.worker.app worker
    procrastinate --app broseph.worker.app shell      (or PROCRASTINATE_APP=broseph.worker.app)

Building the app connects to nothing; the pool opens when a worker or shell starts.
"""

from __future__ import annotations

from typing import Any

import procrastinate
from procrastinate import job_context

from broseph import jobs, lifecycle, services
from broseph.db import connection_kwargs
from broseph.jobs.base import Periodic
from broseph.settings import Settings, get_settings


def make_connector(settings: Settings, *, url: str | None = None) -> procrastinate.PsycopgConnector:
    """
    procrastinate's psycopg connector, sized for the worker's concurrency.
    """
    kwargs: dict[str, Any] = connection_kwargs(settings)
    return procrastinate.PsycopgConnector(
        conninfo=url or settings.database_url or "",
        # Handlers share this pool with procrastinate's fetch/finish; one spare for the
        # LISTEN connection and one for periodic deferral.
        min_size=1,
        max_size=max(settings.db_pool_max_size, settings.worker_concurrency + 2),
        kwargs=kwargs,
    )


def worker_options(settings: Settings) -> dict[str, Any]:
    """
    Defaults for `procrastinate worker` and `broseph worker`, from settings.
    """
    return {
        "concurrency": settings.worker_concurrency,
        "queues": settings.worker_queues or None,
        "listen_notify": settings.listen_notify,
        "fetch_job_polling_interval": settings.poll_interval,
        "abort_job_polling_interval": settings.poll_interval,
        "shutdown_graceful_timeout": settings.shutdown_timeout,
        "update_heartbeat_interval": settings.heartbeat_interval,
    }


def create_app(
    settings: Settings | None = None,
    *,
    connector: procrastinate.PsycopgConnector | None = None,
) -> procrastinate.App:
    """
    A fully registered App: every job type of the catalogue plus the periodic tasks.
    """
    settings = settings or get_settings()
    app = procrastinate.App(
        connector=connector or make_connector(settings),
        worker_defaults=worker_options(settings),  # type: ignore[arg-type]
    )
    for job_type in jobs.CATALOGUE.values():
        lifecycle.register(app, job_type)
    for periodic in jobs.PERIODIC:
        _register_periodic(app, settings, periodic)
    return app


def _register_periodic(app: procrastinate.App, settings: Settings, periodic: Periodic) -> None:
    async def task(context: job_context.JobContext, timestamp: int) -> None:
        await periodic.run(services.for_app(context.app), timestamp)

    task.__name__ = task.__qualname__ = periodic.name
    registered = app.task(name=periodic.name, queue=periodic.queue, pass_context=True)(task)
    app.periodic(cron=periodic.cron(settings), periodic_id=periodic.name)(registered)


app = create_app()
