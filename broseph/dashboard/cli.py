"""
`broseph dashboard [--host 127.0.0.1] [--port 8080] [--read-only]`: the dashboard under uvicorn
(and, with METRICS_PORT, its probes and metrics: broseph/ops/probes.py).

Without DASHBOARD_USER and DASHBOARD_PASSWORD it refuses to listen on anything but a loopback
address. Imports Starlette and uvicorn only when run, so the rest of `broseph` works without the
`broseph[dashboard]` extra.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from broseph import db, logs, tracing
from broseph.settings import Settings, get_settings


def dashboard_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Show everything, change nothing: no actions.")
    ] = False,
) -> None:
    """
    Serve the operator dashboard: overview, jobs (search, retry, cancel, bulk), workers,
    ingress quarantine — live.
    """
    settings = get_settings()
    logs.configure(settings.log_format, settings.log_level)
    tracing.configure()  # OTEL_TRACES_EXPORTER unset: tracing stays off
    try:
        import uvicorn

        from broseph.dashboard import security
        from broseph.dashboard.app import create_app
    except ImportError as exc:
        typer.echo(
            f"error: the dashboard needs the extra: pip install 'broseph[dashboard]' ({exc.name})",
            err=True,
        )
        raise typer.Exit(2) from None
    try:
        db.database_url(settings)
    except db.DatabaseNotConfigured as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    has_password = bool(settings.dashboard_user and settings.dashboard_password)
    if not has_password and not security.is_loopback(host):
        typer.echo(
            f"error: refusing to listen on {host} without a password: set DASHBOARD_USER and"
            " DASHBOARD_PASSWORD, or listen on 127.0.0.1",
            err=True,
        )
        raise typer.Exit(2)
    app = create_app(settings, read_only=read_only)
    where = f"[{host}]" if ":" in host else host
    typer.echo(
        f"broseph dashboard on http://{where}:{port}/"
        + (" (read-only)" if read_only else "")
        + ("" if has_password else " (no password: loopback only)")
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        # Open event streams must not hold a stopping server for long.
        timeout_graceful_shutdown=2,
    )
    asyncio.run(_serve(uvicorn.Server(config), settings))


async def _serve(server: Any, settings: Settings) -> None:
    """
    The dashboard under uvicorn, with its probes and metrics on METRICS_PORT (its pages' port
    serves neither: behind its password, and meant for people) and systemd's watchdog.
    """
    from broseph.ops import probes, readiness

    database = readiness.Database(settings)
    checks: dict[str, probes.Check] = {
        "database": database.reachable,
        "migrations": database.migrated,
    }
    try:
        async with probes.running(settings, checks):
            await server.serve()
    finally:
        await database.close()
