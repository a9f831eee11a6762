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
import contextlib
import json
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import psycopg
import typer

from broseph import db, logs, migrate, tracing
from broseph.problems import FIX_CONFIG, Problem
from broseph.settings import Settings, get_settings, reveal

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
    tracing.configure()  # OTEL_TRACES_EXPORTER unset: tracing stays off
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
    url = db.database_url(settings)
    try:
        from broseph.ingress.bullmq import BullMQIngress
    except ImportError as exc:
        raise Problem(
            f"the BullMQ ingress needs the bullmq extra ({exc})",
            "pip install 'broseph[bullmq]'",
            exit_code=FIX_CONFIG,
        ) from None
    from broseph.ingress.consumer import IncompatibleBullMQ

    try:
        ingress = BullMQIngress(settings, queues=queue or None, concurrency=concurrency)
    except mapping.InvalidMapping as exc:
        raise Problem(str(exc), "fix INGRESS_JOB_MAP", exit_code=FIX_CONFIG) from None
    except IncompatibleBullMQ as exc:
        cause, _, fix = str(exc).partition(" — ")
        raise Problem(cause, fix, exit_code=FIX_CONFIG) from None
    asyncio.run(_checked(settings, url))
    from broseph.ingress import probes

    asyncio.run(serve(ingress, lambda: probes.serving(settings, ingress, ingress.queues)))


async def _checked(settings: Settings, url: str) -> None:
    """
    Fail at once on what waiting cannot fix — a malformed URL, a wrong password, an unknown
    database — and start anyway when Postgres or Redis is merely down: the ingress waits for
    both (see README, "When things fail").
    """
    import redis.asyncio as aioredis
    from redis import exceptions as redis_errors
    from redis.connection import parse_url

    redis_url = reveal(settings.redis_url) or ""
    problem: Problem | None = None
    try:
        parse_url(redis_url)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        problem = Problem(
            f"REDIS_URL is not a valid Redis URL ({exc})",
            "expected redis://[:PASSWORD@]HOST:6379[/DB]",
            exit_code=FIX_CONFIG,
        )
    else:
        client = aioredis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=5)
        try:
            await client.ping()
        except redis_errors.AuthenticationError as exc:
            problem = Problem(
                f"Redis refused the credentials in REDIS_URL ({exc})",
                "fix the user or password in REDIS_URL",
                exit_code=FIX_CONFIG,
            )
        except (redis_errors.RedisError, OSError):
            pass  # down or starting: the ingress keeps reconnecting
        finally:
            await client.aclose()
    if problem is not None:
        raise problem
    try:
        await db.reach(url, patience=0, **db.connection_kwargs(settings))
    except Problem as unreachable:
        if not unreachable.transient:
            raise
        return
    async with await psycopg.AsyncConnection.connect(
        url, autocommit=True, **db.connection_kwargs(settings)
    ) as conn:
        missing = await migrate.pending(conn)
    if missing:
        raise Problem(
            f"the database is not migrated ({len(missing)} migration(s) pending)",
            "run `broseph migrate`",
        )


async def serve(
    ingress: Ingress,
    beside: Callable[[], contextlib.AbstractAsyncContextManager[Any]] | None = None,
) -> None:
    """
    Run an ingress until SIGTERM or SIGINT, then stop it gracefully; `beside` (its probes and
    metrics) runs from before the start until after the stop.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with beside() if beside is not None else contextlib.nullcontext():
        await ingress.start()
        try:
            await stop.wait()
        finally:
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
            f"{entry.id}\t{db.utc_text(entry.received_at)}\t{entry.queue}\t{entry.job_id}"
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
        raise Problem(str(exc), "fix INGRESS_JOB_MAP", exit_code=FIX_CONFIG) from None

    async def run() -> quarantine.Replayed:
        async with await db.connect(settings) as conn:
            return await quarantine.replay(
                conn, quarantine_id, routes, max_payload_bytes=settings.ingress_max_payload_bytes
            )

    try:
        replayed = asyncio.run(run())
    except quarantine.NotQuarantined as exc:
        raise Problem(str(exc), "see `broseph ingress quarantine list --all`") from None
    except (mapping.Rejected, sink.Refused) as exc:
        raise Problem(
            f"still rejected: {exc.reason}",
            "fix the cause (INGRESS_JOB_MAP, a job type, a limit), then replay it again",
        ) from None
    suffix = " (already replayed)" if replayed.already else ""
    typer.echo(f"{replayed.record_id}{suffix}")


def _jsonable(value: object) -> object:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
