"""
`broseph ingress …`: run the BullMQ ingress, and inspect / replay its quarantine.

    broseph ingress bullmq [--queue Q …] [--concurrency N]
    broseph ingress quarantine list [--all] [--limit N] [--json]
    broseph ingress quarantine replay ID

Sync at the edge, async below. bullmq and Redis are imported only by `ingress bullmq`, so the
quarantine commands work without the `broseph[bullmq]` extra.
"""

from __future__ import annotations

import asyncio
import json
import signal
from typing import TYPE_CHECKING, Annotated

import typer

from broseph import db, logs
from broseph.settings import Settings, get_settings

if TYPE_CHECKING:
    from broseph.ingress import Ingress, quarantine

# The ingress modules import the job catalogue (and its SDKs): loaded by the commands that use
# them, so `broseph --help` and unrelated commands stay quick.

ingress_cli = typer.Typer(
    help="Move jobs from outside queues (BullMQ) into the Postgres queue.",
    no_args_is_help=True,
)
quarantine_cli = typer.Typer(
    help="Outside jobs that could not become jobs, kept with the reason.",
    no_args_is_help=True,
)
ingress_cli.add_typer(quarantine_cli, name="quarantine")


def _settings() -> Settings:
    settings = get_settings()
    logs.configure(settings.log_format, settings.log_level)
    return settings


@ingress_cli.command("bullmq")
def bullmq_command(
    queue: Annotated[
        list[str] | None, typer.Option(help="BullMQ queue to consume (repeatable).")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(help="Jobs handled at once per queue.")] = None,
) -> None:
    """
    Consume BullMQ queues (INGRESS_QUEUES) until SIGTERM / Ctrl-C; in-flight jobs finish first.
    The ingress must be the ONLY consumer of these queues (stop the Node worker first).
    """
    from broseph.ingress import mapping

    settings = _settings()
    db.database_url(settings)
    try:
        from broseph.ingress.bullmq import BullMQIngress
    except ImportError as exc:
        typer.echo(f"the BullMQ ingress needs the extra: pip install 'broseph[bullmq]' ({exc})")
        raise typer.Exit(2) from None
    try:
        ingress = BullMQIngress(settings, queues=queue or None, concurrency=concurrency)
    except mapping.InvalidMapping as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    asyncio.run(serve(ingress))


async def serve(ingress: Ingress) -> None:
    """
    Run an ingress until SIGTERM or SIGINT, then stop it gracefully.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await ingress.start()
    await stop.wait()
    await ingress.stop()


@quarantine_cli.command("list")
def list_command(
    all_: Annotated[bool, typer.Option("--all", help="Include replayed jobs.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """
    Quarantined jobs, newest first: id, when, queue, job id, name, reason.
    """
    from broseph.ingress import quarantine

    settings = _settings()

    async def run() -> list[quarantine.Entry]:
        async with await db.connect(settings) as conn:
            return await quarantine.entries(conn, include_replayed=all_, limit=limit)

    found = asyncio.run(run())
    for entry in found:
        if as_json:
            typer.echo(json.dumps({k: _jsonable(v) for k, v in vars(entry).items()}))
            continue
        replayed = f"  → replayed as {entry.record_id}" if entry.replayed_at else ""
        typer.echo(
            f"{entry.id}\t{entry.received_at:%Y-%m-%d %H:%M:%S}\t{entry.queue}\t{entry.job_id}"
            f"\t{entry.job_name}\t{entry.reason}{replayed}"
        )
    if not found and not as_json:
        typer.echo("no quarantined jobs")


@quarantine_cli.command("replay")
def replay_command(
    quarantine_id: Annotated[int, typer.Argument(help="Id from `quarantine list`.")],
) -> None:
    """
    Enqueue a quarantined job with the current mapping (fix INGRESS_JOB_MAP first); prints the
    job record id. Exit 1 with the reason when it is still rejected.
    """
    from broseph.ingress import mapping, quarantine, sink

    settings = _settings()
    try:
        routes = mapping.routes_from(settings)
    except mapping.InvalidMapping as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None

    async def run() -> quarantine.Replayed:
        async with await db.connect(settings) as conn:
            return await quarantine.replay(
                conn, quarantine_id, routes, max_payload_bytes=settings.ingress_max_payload_bytes
            )

    try:
        replayed = asyncio.run(run())
    except quarantine.NotQuarantined as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    except (mapping.Rejected, sink.Refused) as exc:
        typer.echo(f"still rejected: {exc.reason}", err=True)
        raise typer.Exit(1) from None
    suffix = " (already replayed)" if replayed.already else ""
    typer.echo(f"{replayed.record_id}{suffix}")


def _jsonable(value: object) -> object:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
