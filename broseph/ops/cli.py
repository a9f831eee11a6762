"""
`broseph jobs …` and `broseph health`: what an operator types.

    broseph jobs list [--status S] [--type T] [--since 2h] [--until 1h] [--group G] [--user U]
                      [--key K] [--limit N] [--after CURSOR] [--json]
    broseph jobs retry-all [filters] [--yes]     every matching failed job, counted and confirmed
    broseph jobs cancel-all [filters] [--yes]    every matching unfinished job, likewise
    broseph jobs show ID [--json]        record, queue row and the procrastinate event timeline
    broseph jobs retry ID                a failed job runs again (one more attempt)
    broseph jobs cancel ID               pending → cancelled; running → abort requested
    broseph jobs stats [--json]
    broseph health [--min-workers N] [--max-pending-age S] [--json]   exit 1 when unhealthy

ID is a job record id (uuid) or a procrastinate queue row id (integer). Exit codes: 0 done,
1 not possible / unhealthy, 2 bad input. `procrastinate --app broseph.worker.app shell` works
alongside for procrastinate's own view.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import inspect as pyinspect
import json
import math
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import psycopg
import typer
from psycopg.rows import DictRow
from rich.console import Console
from rich.table import Table

from broseph import db
from broseph.ops import bulk, inspect
from broseph.ops import health as health_module
from broseph.settings import get_settings

T = TypeVar("T")

jobs_cli = typer.Typer(
    help="Inspect and steer jobs: list, show, retry, cancel, stats, retry-all, cancel-all.",
    no_args_is_help=True,
)
# Piped output (no terminal) would be cut at 80 columns and lose the ids: give it room.
console = Console() if sys.stdout.isatty() else Console(width=200)

RECORD_STATUSES = inspect.RECORD_STATUSES
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
Ident = Annotated[str, typer.Argument(help="Job record id (uuid) or queue row id (integer).")]


def _run(action: Callable[[psycopg.AsyncConnection[DictRow]], Awaitable[T]]) -> T:
    async def main() -> T:
        # A connection that fails raises a one-line Problem, which `broseph` prints (cli.main).
        async with await db.connect(get_settings(), autocommit=True) as conn:
            return await action(conn)

    try:
        return asyncio.run(main())
    except (inspect.JobNotFound, inspect.NotPossible) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _json(data: Any) -> None:
    typer.echo(json.dumps(data, default=_plain, indent=2))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return db.time_text(value) or value.isoformat()
    return str(value)


def _when(value: datetime.datetime | None) -> str:
    return "" if value is None else db.utc_text(value)


def _cell(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return _when(value)
    if isinstance(value, dict | list):
        return json.dumps(value, default=_plain)
    return value


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*["" if cell is None else str(cell) for cell in row])
    return table


# The filter of `jobs list`, `jobs retry-all` and `jobs cancel-all` (and the dashboard's).
Status = Annotated[
    str | None,
    typer.Option(help="pending, processing, retrying, completed, failed or cancelled (a,b: any)."),
]
JobType = Annotated[str | None, typer.Option("--type", help="Job type.")]
Since = Annotated[str | None, typer.Option(help="Created since: 30m, 2h, 7d or ISO.")]
Until = Annotated[str | None, typer.Option(help="Created before: 30m, 2h, 7d (ago) or ISO.")]
Group = Annotated[str | None, typer.Option(help="Group id the job is about.")]
User = Annotated[str | None, typer.Option(help="User id the job is about.")]
Key = Annotated[str | None, typer.Option(help="Idempotency key.")]


def _filter(**fields: str | None) -> inspect.Filter:
    try:
        return inspect.parse_filter(**fields)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


_FILTER_OPTIONS: dict[str, Any] = {
    "status": Status,
    "job_type": JobType,
    "since": Since,
    "until": Until,
    "group": Group,
    "user": User,
    "key": Key,
}


def _filtered(status: str | None = None) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """
    Gives a command the filter options (all of `_FILTER_OPTIONS`, less --status when the command
    fixes it) and calls it with them parsed, as `flt`: one declaration of the filter for every
    command that selects jobs. typer reads the options from the wrapper's signature.
    """

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        names = [name for name in _FILTER_OPTIONS if not (status and name == "status")]
        own = pyinspect.signature(command, eval_str=True)
        rest = [p for p in own.parameters.values() if p.name != "flt"]
        options = [
            pyinspect.Parameter(
                n, pyinspect.Parameter.KEYWORD_ONLY, default=None, annotation=_FILTER_OPTIONS[n]
            )
            for n in names
        ]

        @functools.wraps(command)
        def run(**values: Any) -> None:
            fields = {name: values.pop(name) for name in names}
            command(flt=_filter(**fields, **({"status": status} if status else {})), **values)

        keyword_only = [p.replace(kind=pyinspect.Parameter.KEYWORD_ONLY) for p in rest]
        run.__signature__ = own.replace(parameters=options + keyword_only)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in options + rest} | {"return": None}
        return run

    return decorate


@jobs_cli.command("list")
@_filtered()
def list_command(
    flt: inspect.Filter,
    limit: Annotated[int, typer.Option(help="At most this many (≤ 500), newest first.")] = 50,
    after: Annotated[
        str | None, typer.Option(help="Continue after this cursor (printed under a full page).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """
    Job records, newest first; filters combine. A full page ends with the cursor of the next.
    """
    try:
        cursor = inspect.Cursor.parse(after) if after else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    page = _run(lambda c: inspect.find(c, flt, after=cursor, limit=limit))
    rows = page.rows
    if as_json:
        _json(rows)
        return
    console.print(
        _table(
            f"{len(rows)} job(s)",
            ["id", "type", "status", "attempts", "progress", "created", "finished", "last error"],
            [
                [
                    r["id"],
                    r["job_type"],
                    r["status"],
                    f"{r['attempts']}/{r['max_attempts']}",
                    f"{r['progress']}%",
                    _when(r["created_at"]),
                    _when(r["finished_at"]),
                    (r["last_error"] or "")[:60],
                ]
                for r in rows
            ],
        )
    )
    if page.next:
        typer.echo(f"more: --after {page.next.token()}")


@jobs_cli.command("show")
def show_command(ident: Ident, as_json: JsonFlag = False) -> None:
    """
    One job: its record, its queue row and the procrastinate events as a timeline.
    """
    view = _run(lambda c: inspect.show(c, ident))
    _print_view(view, as_json)


def _print_view(view: inspect.JobView, as_json: bool) -> None:
    if as_json:
        _json({"record": view.record, "queue_row": view.queue_row, "events": view.events})
        return
    if view.record:
        record = {k: v for k, v in view.record.items() if v is not None}
        console.print(
            _table(
                "job record",
                ["field", "value"],
                [[k, _cell(v)] for k, v in record.items()],
            )
        )
    if view.queue_row:
        console.print(
            _table(
                "queue row (procrastinate_jobs)",
                ["field", "value"],
                [[k, _cell(v)] for k, v in view.queue_row.items()],
            )
        )
    else:
        console.print("queue row: gone (pruned or deleted)")
    # Seconds from the first event with a real time ('infinity' ones: refused at enqueue since
    # migrations/0015, but stored rows may hold them).
    first = next((e["at"] for e in view.events if not db.time_text(e["at"])), None)
    console.print(
        _table(
            "timeline (procrastinate_events)",
            ["at", "+seconds", "event"],
            [
                [
                    _when(e["at"]),
                    ""
                    if first is None or db.time_text(e["at"])
                    else f"{(e['at'] - first).total_seconds():.3f}",
                    e["type"],
                ]
                for e in view.events
            ],
        )
    )


@jobs_cli.command("retry")
def retry_command(ident: Ident, as_json: JsonFlag = False) -> None:
    """
    Run a failed job again now (one more attempt).
    """
    view = _run(lambda c: inspect.retry(c, ident))
    if not as_json:
        typer.echo(f"retrying job {view.job_id}")
    _print_view(view, as_json)


@jobs_cli.command("cancel")
def cancel_command(ident: Ident, as_json: JsonFlag = False) -> None:
    """
    Cancel a job: pending → cancelled now; running → abort requested (the record ends cancelled
    when its worker stops it; long handlers check between steps).
    """
    outcome, view = _run(lambda c: inspect.cancel(c, ident))
    if as_json:
        _json({"outcome": outcome, "record": view.record, "queue_row": view.queue_row})
        return
    if outcome == "cancelled":
        typer.echo(f"cancelled job {view.job_id}")
    else:
        worker = view.queue_row["worker_id"] if view.queue_row else None
        typer.echo(f"abort requested for job {view.job_id} (running on worker {worker})")


@jobs_cli.command("stats")
def stats_command(as_json: JsonFlag = False) -> None:
    """
    Records by type and status, queue depth, backlog age and workers.
    """
    data = _run(inspect.stats)
    if as_json:
        _json(data)
        return
    console.print(
        _table(
            "job records",
            ["type", "status", "jobs"],
            [[r["job_type"], r["status"], r["jobs"]] for r in data["records"]],
        )
    )
    console.print(
        _table(
            "queue rows",
            ["queue", "status", "jobs"],
            [[r["queue"], r["status"], r["jobs"]] for r in data["queues"]],
        )
    )
    console.print(
        _table(
            "runnable now",
            ["queue", "jobs", "oldest waiting (s)"],
            [[r["queue"], r["jobs"], f"{r['seconds'] or 0:.1f}"] for r in data["pending"]],
        )
    )
    console.print(
        _table(
            "workers",
            ["id", "last heartbeat", "age (s)", "running"],
            [
                [w["id"], _when(w["last_heartbeat"]), f"{w['heartbeat_age']:.1f}", w["running"]]
                for w in data["workers"]
            ],
        )
    )


def _bulk(action: bulk.Action, flt: inspect.Filter, yes: bool) -> None:
    preview = _run(lambda c: bulk.preview(c, action, flt))
    statuses = ", ".join(preview.filter.statuses)
    typer.echo(f"{preview.count} job(s) match ({statuses}, created before {_when(preview.as_of)})")
    if not preview.count:
        return
    if not yes and not typer.confirm(f"{action} {preview.count} job(s)?"):
        raise typer.Exit(1)
    outcome = _run(lambda c: bulk.apply(c, action, flt, as_of=preview.as_of))
    verb = "retried" if action == "retry" else "cancelled"
    extra = f", abort requested for {outcome.abort_requested}" if outcome.abort_requested else ""
    typer.echo(f"{verb} {outcome.done}{extra}; skipped {outcome.skipped} (changed meanwhile)")


Yes = Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")]


@jobs_cli.command("retry-all")
@_filtered(status="failed")
def retry_all_command(flt: inspect.Filter, yes: Yes = False) -> None:
    """
    Retry every failed job matching the filter: counts them, asks, then retries them.
    """
    _bulk("retry", flt, yes)


@jobs_cli.command("cancel-all")
@_filtered()
def cancel_all_command(flt: inspect.Filter, yes: Yes = False) -> None:
    """
    Cancel every unfinished job matching the filter (pending, retrying; running ones are asked
    to abort): counts them, asks, then cancels them.
    """
    _bulk("cancel", flt, yes)


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a number of seconds")
    return value


def health_command(
    min_workers: Annotated[int, typer.Option(min=0, help="Live workers required (0: none).")] = 1,
    max_pending_age: Annotated[
        float | None,
        typer.Option(
            min=0,
            callback=_finite,
            help="Unhealthy when a runnable job waited longer (seconds).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """
    Database reachable, migrations current, live workers, queue depth, oldest pending job.
    Exits 1 when unhealthy.
    """
    settings = get_settings()
    db.database_url(settings)  # none: a misconfiguration (exit 2), said by `broseph` in one line
    report = asyncio.run(
        health_module.check(settings, min_workers=min_workers, max_pending_age=max_pending_age)
    )
    if as_json:
        _json(report.as_dict())
    else:
        _print_health(report)
    raise typer.Exit(0 if report.healthy else 1)


def _print_health(report: health_module.Health) -> None:
    state = "[green]healthy[/green]" if report.healthy else "[red]UNHEALTHY[/red]"
    console.print(f"broseph jobs: {state}")
    for problem in report.problems:
        console.print(f"  [red]✗[/red] {problem}")
    if not report.database:
        return
    console.print(
        f"  database reachable; migrations pending: {len(report.pending_migrations)};"
        f" live workers: {report.live_workers} (lost: {report.lost_workers})"
    )
    if report.procrastinate_schema:
        console.print(f"  procrastinate schema: {report.procrastinate_schema}")
    console.print(
        _table(
            "queue rows",
            ["queue", "status", "jobs"],
            [[r["queue"], r["status"], r["jobs"]] for r in report.depth],
        )
    )
    console.print(
        _table(
            "runnable now",
            ["queue", "jobs", "oldest waiting (s)"],
            [[r["queue"], r["jobs"], f"{r['seconds'] or 0:.1f}"] for r in report.pending],
        )
    )
