"""
`broseph.worker.app` — the procrastinate App, the only import path operations need:

    procrastinate --app broseph.worker.app worker
    procrastinate --app broseph.worker.app shell      (or PROCRASTINATE_APP=broseph.worker.app)

Building the app connects to nothing; the pool opens when a worker or shell starts.
"""

from __future__ import annotations

import select
import sys
from typing import Any

import procrastinate
import psycopg
import psycopg_pool
import pydantic

from broseph import engine, jobs, lifecycle, problems
from broseph.db import connection_kwargs
from broseph.ops import periodic as ops_periodic
from broseph.ops.worker_app import WorkerApp
from broseph.settings import Settings, get_settings, reveal


def _pool(**kwargs: Any) -> psycopg_pool.AsyncConnectionPool[Any]:
    """
    procrastinate's pool, with a liveness check that costs no round trip. procrastinate asks
    for `check_connection`, an empty query on every checkout — one more round trip for each of
    its statements and each handler query. A connection the server closed (restart, terminated
    backend) has something to read on its idle socket; that is what is checked instead.
    """
    kwargs["check"] = _check_alive
    return psycopg_pool.AsyncConnectionPool(**kwargs)


async def _check_alive(conn: psycopg.AsyncConnection[Any]) -> None:
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the connection is closed")
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    if readable:
        # An idle connection is never sent anything unasked but an error before it is closed
        # ("terminating connection …") or the end of the stream itself. Close it: the pool
        # replaces closed connections, while one libpq still thinks idle would be handed out
        # again.
        await conn.close()
        raise psycopg.OperationalError("the server closed the connection")


def make_connector(settings: Settings, *, url: str | None = None) -> procrastinate.PsycopgConnector:
    """
    The seam's connector (broseph/engine.py), sized for the worker's concurrency: it rides out
    database restarts and spends one round trip per statement (with `_pool`).
    """
    kwargs: dict[str, Any] = connection_kwargs(settings)
    return engine.WorkerConnector(
        pool_factory=_pool,
        outage_timeout=settings.db_outage_timeout,
        conninfo=url or reveal(settings.database_url) or "",
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
        # A starting worker deletes workers silent for this long; same threshold as rescue.
        "stalled_worker_timeout": settings.rescue_after_seconds,
    }


def create_app(
    settings: Settings | None = None,
    *,
    connector: procrastinate.PsycopgConnector | None = None,
    periodic: bool = True,
    owns_logging: bool = False,
) -> procrastinate.App:
    """
    A fully registered App: every job type of the catalogue plus (unless `periodic` is False,
    as in tests that must control every job) the periodic tasks. `owns_logging`: opening the
    app configures the process's logging from the settings (an app a process is started with,
    e.g. by `procrastinate --app …`); an app embedded in a program leaves that to the program.
    """
    settings = settings or get_settings()
    app = WorkerApp(
        settings=settings,
        owns_logging=owns_logging,
        connector=connector or make_connector(settings),
        worker_defaults=worker_options(settings),  # type: ignore[arg-type]
    )
    engine.install(app)  # the seam's fetch, finish and start-up check
    for job_type in jobs.CATALOGUE.values():
        lifecycle.register(app, job_type)
    if periodic:
        for entry in (*jobs.PERIODIC, *ops_periodic.PERIODIC):
            lifecycle.register_periodic(app, settings, entry)
    return app


def _operators_app() -> procrastinate.App:
    try:
        settings = get_settings()
    except pydantic.ValidationError as exc:
        # procrastinate's CLI reports a failed import as "invalid load_app value" and its usage,
        # never why: say why, and stop there.
        sys.stderr.write(f"error: {problems.settings_problem(exc)}\n")
        raise SystemExit(problems.FIX_CONFIG) from None
    return create_app(settings, owns_logging=True)


app = _operators_app()
