"""
The `broseph` command. Sync at the edge; everything below is async.

Every command ends the same way when something goes wrong: one line on stderr naming the cause
and the fix (`broseph.problems`) and a non-zero exit — 2 when the configuration or the input
must change, 1 otherwise. `broseph --debug …` prints the traceback before that line.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import psycopg
import pydantic
import typer

from broseph import db, logs, problems, tracing
from broseph.dashboard.cli import dashboard_command
from broseph.ingress.cli import ingress_cli
from broseph.ops.cli import health_command, jobs_cli
from broseph.settings import get_settings

if TYPE_CHECKING:
    from broseph.jobs.base import JobPayload

cli = typer.Typer(
    name="broseph",
    help="Broseph jobs: the Postgres-native background job service of Broseph.",
    no_args_is_help=True,
    add_completion=False,
    # Errors are reported by main() as one line; a pretty traceback would show local variables.
    pretty_exceptions_enable=False,
)
cli.add_typer(ingress_cli, name="ingress")
cli.add_typer(jobs_cli, name="jobs")
cli.command("health")(health_command)
cli.command("dashboard")(dashboard_command)

# Set by the --debug option of the callback, read by main() when a command fails.
_debug = False


@cli.callback()
def options(
    debug: Annotated[
        bool, typer.Option("--debug", help="On an error, print the traceback too.")
    ] = False,
) -> None:
    """
    Broseph jobs: the Postgres-native background job service of Broseph.
    """
    global _debug
    _debug = debug


def _setup_logging() -> None:
    settings = get_settings()
    logs.configure(settings.log_format, settings.log_level)
    tracing.configure()  # OTEL_TRACES_EXPORTER unset: tracing stays off


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

    settings = get_settings()
    db.database_url(settings)
    try:
        # Importing the app builds the seam, which checks the installed procrastinate; a
        # starting worker checks the database's procrastinate schema (broseph/engine.py).
        from broseph.worker import app, worker_options

        _setup_logging()  # after the import: building the app logs every registration at INFO
        options = worker_options(settings)
        if concurrency is not None:
            options["concurrency"] = concurrency
        if queue:
            options["queues"] = queue
        asyncio.run(_run_worker(app, options))
    except (engine.IncompatibleProcrastinate, engine.SchemaMismatch) as exc:
        typer.echo(f"error: {exc}", err=True)
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

    payload = _payload(job_type, _json_object(params))

    async def run() -> str:
        async with await db.connect(get_settings()) as conn:
            record_id = await enqueuing.enqueue(
                conn, payload, idempotency_key=idempotency_key, source="cli"
            )
            await conn.commit()
        return str(record_id)

    refused: problems.Problem | None = None
    try:
        typer.echo(asyncio.run(run()))
        return
    except psycopg.errors.DataException as exc:  # broseph.enqueue's own checks (SQLSTATE 22…)
        refused = problems.Problem(
            f"enqueue refused: {exc.diag.message_primary}",
            "fix the params or options",
            exit_code=problems.FIX_CONFIG,
        )
    raise refused


def _payload(job_type: str, params: dict[str, Any]) -> JobPayload:
    from broseph import jobs

    problem: problems.Problem | None = None
    try:
        return jobs.payload_for(job_type, params)
    except jobs.UnknownJobType as exc:
        problem = problems.Problem(
            f"unknown job type {job_type!r}",
            f"use one of {', '.join(sorted(jobs.CATALOGUE))}",
            exit_code=problems.FIX_CONFIG,
        )
        problem.origin = exc
    except pydantic.ValidationError as exc:
        found = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'params'}: {err['msg']}"
            for err in exc.errors(include_input=False)[:5]
        )
        problem = problems.Problem(
            f"invalid params for {job_type}: {found}", "fix PARAMS", exit_code=problems.FIX_CONFIG
        )
        problem.origin = exc
    raise problem


def _json_object(text: str) -> dict[str, Any]:
    problem: problems.Problem | None = None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        problem = problems.Problem(
            f"PARAMS is not valid JSON ({exc.msg} at column {exc.colno})",
            'pass one JSON object in single quotes, e.g. \'{"group_id": "…"}\'',
            exit_code=problems.FIX_CONFIG,
        )
    else:
        if isinstance(value, dict):
            return value
        problem = problems.Problem(
            f"PARAMS is a JSON {type(value).__name__}, not an object",
            'pass one JSON object, e.g. \'{"group_id": "…"}\'',
            exit_code=problems.FIX_CONFIG,
        )
    raise problem


@cli.command()
def demo(
    groups: Annotated[
        int, typer.Option(min=1, max=100, help="Small groups to seed (plus one large group).")
    ] = 6,
    data_dir: Annotated[
        str, typer.Option(help="Embedded Postgres data directory (without DATABASE_URL).")
    ] = ".broseph/demo-pg",
    keep: Annotated[
        bool,
        typer.Option(
            "--keep",
            help="Keep the embedded Postgres running after the demo and print its URL and the"
            " commands to inspect it; Ctrl-C stops it.",
        ),
    ] = False,
) -> None:
    """
    Seed a small Broseph world, run the worker until its jobs are done, and show what each job
    type did. Without DATABASE_URL it starts an embedded Postgres (the `demo` extra) with a
    fresh demo database.
    """
    from broseph import demo as demo_module

    raise typer.Exit(demo_module.main(groups=groups, data_dir=data_dir, keep=keep))


def main() -> None:
    """
    The console script: run the command; an error becomes one line (problems.report), and so
    does a mistake in the command line itself (`_usage`).
    """
    try:
        # Not standalone: typer would print a usage error as a framed box over several lines.
        code = cli(standalone_mode=False)
    except KeyboardInterrupt:
        sys.exit(130)
    except typer.Abort:
        sys.stderr.write("error: aborted\n")
        sys.exit(1)
    except Exception as exc:
        sys.exit(_usage(exc) if _is_usage_error(exc) else problems.report(exc, debug=_debug))
    sys.exit(code if isinstance(code, int) else 0)


def _is_usage_error(exc: Exception) -> bool:
    # Click's ClickException, which newer typer releases vendor under a private module name.
    return any(kind.__name__ == "ClickException" for kind in type(exc).__mro__)


def _usage(exc: Any) -> int:
    """
    `error: <what is wrong> — see 'broseph … --help'`, exit 2 (the input must change). A
    command group run without a command has printed its help already.
    """
    if type(exc).__name__ == "NoArgsIsHelpError":  # click ≥ 8.2; its help is printed
        return int(exc.exit_code)
    message = " ".join(str(exc.format_message()).split())
    ctx = getattr(exc, "ctx", None)
    fix = f" — see '{ctx.command_path} --help'" if ctx is not None else ""
    sys.stderr.write(f"error: {message}{fix}\n")
    return int(exc.exit_code)
