"""
The `broseph` command. Sync at the edge; everything below is async.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from broseph import db, logs
from broseph.dashboard.cli import dashboard_command
from broseph.ingress.cli import ingress_cli
from broseph.ops.cli import health_command, jobs_cli
from broseph.settings import get_settings

cli = typer.Typer(
    name="broseph",
    help="Broseph jobs: the Postgres-native background job service of Broseph.",
    no_args_is_help=True,
    add_completion=False,
)
cli.add_typer(ingress_cli, name="ingress")
cli.add_typer(jobs_cli, name="jobs")
cli.command("health")(health_command)
cli.command("dashboard")(dashboard_command)


def _setup_logging() -> None:
    settings = get_settings()
    logs.configure(settings.log_format, settings.log_level)


@cli.command()
def migrate() -> None:
    """
    Apply procrastinate's schema (when absent) and broseph's migrations, adopting the app's own
    tables where they exist, and re-apply the lock-down of the queue; safe to run twice.
    """
    from broseph import migrate as migrations

    _setup_logging()
    try:
        applied = asyncio.run(
            migrations.migrate(db.database_url(get_settings()), report=typer.echo)
        )
    except migrations.MigrationError as exc:
        typer.echo(f"broseph migrate: {exc}", err=True)
        raise typer.Exit(1) from None
    if not applied:
        typer.echo("database is up to date")


@cli.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Jobs run at once.")] = None,
    queue: Annotated[list[str] | None, typer.Option(help="Queue to serve (repeatable).")] = None,
) -> None:
    """
    Run a worker (same as `procrastinate --app broseph.worker.app worker`, with our logging).
    """
    from broseph import engine

    try:
        # Importing the app builds the seam, which checks the installed procrastinate; a
        # starting worker checks the database's procrastinate schema (broseph/engine.py).
        from broseph.worker import app, worker_options

        _setup_logging()
        settings = get_settings()
        db.database_url(settings)
        options = worker_options(settings)
        if concurrency is not None:
            options["concurrency"] = concurrency
        if queue:
            options["queues"] = queue
        asyncio.run(_run_worker(app, options))
    except (engine.IncompatibleProcrastinate, engine.SchemaMismatch) as exc:
        typer.echo(f"broseph worker: {exc}", err=True)
        raise typer.Exit(1) from None


async def _run_worker(app: object, options: dict[str, object]) -> None:
    import procrastinate

    assert isinstance(app, procrastinate.App)
    async with app.open_async():
        await app.run_worker_async(**options)  # type: ignore[arg-type]


@cli.command()
def enqueue(
    job_type: Annotated[str, typer.Argument(help="Job type, e.g. ProcessEngagement.")],
    params: Annotated[str, typer.Argument(help='Params as JSON, e.g. \'{"group_id": "…"}\'.')],
    idempotency_key: Annotated[str | None, typer.Option(help="Deduplication key.")] = None,
) -> None:
    """
    Enqueue one job through the transactional contract and print its record id.
    """
    from broseph import enqueue as enqueuing

    async def run() -> str:
        payload = enqueuing.payload_for(job_type, json.loads(params))
        async with await db.connect(get_settings()) as conn:
            record_id = await enqueuing.enqueue(
                conn, payload, idempotency_key=idempotency_key, source="cli"
            )
            await conn.commit()
        return str(record_id)

    typer.echo(asyncio.run(run()))


@cli.command()
def demo(
    groups: Annotated[int, typer.Option(help="Groups to seed.")] = 6,
    data_dir: Annotated[
        str, typer.Option(help="Embedded Postgres data directory (without DATABASE_URL).")
    ] = ".broseph/demo-pg",
) -> None:
    """
    Seed a small Broseph world, run the worker until its jobs are done, and show what happened.
    Without DATABASE_URL it starts an embedded Postgres (the `demo` extra).
    """
    from broseph import demo as demo_module

    raise typer.Exit(demo_module.main(groups=groups, data_dir=data_dir))


def main() -> None:
    cli()
