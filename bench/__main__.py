"""
`python -m bench` — every benchmark, then one markdown report (machine, versions, command, table).

    python -m bench                 the full run (about 25 minutes on 2 cores)
    python -m bench --smoke         small N: checks every benchmark runs and reports (CI)
    python -m bench --only 1,3      some of them
    python -m bench --wave-groups 2000
    python -m bench --only 14 --budget-groups 10000 --budget-rpm 3000
    python -m bench --only 10       the dashboard over 1,000,000 job records (≈ 5 minutes)

BENCH_DATABASE_URL: an empty throwaway database to use (default: a fresh database created on
postgresql://postgres@127.0.0.1:5432/postgres and dropped afterwards). REDIS_URL: the Redis of
benchmark 5 (default redis://127.0.0.1:6379).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Annotated, cast

import typer

from bench import (
    budget,
    calls,
    dashboard,
    enqueue_one,
    fanout,
    harness,
    ingress,
    latency,
    machine,
    memory,
    notify_trigger,
    pgbench,
    processing,
    scrub,
    tracing_off,
    wave,
)
from bench.database import BenchDatabase
from bench.dbstats import DbStats
from broseph import logs

# Each module is a harness.Benchmark (number, title, metrics, rounds); mypy cannot check a
# module against a Protocol inside a tuple, test_bench_smoke checks the attributes instead.
BENCHMARKS: tuple[harness.Benchmark, ...] = tuple(
    cast(harness.Benchmark, module)
    for module in (
        enqueue_one,
        fanout,
        processing,
        latency,
        ingress,
        memory,
        pgbench,
        wave,
        notify_trigger,
        dashboard,
        scrub,
        tracing_off,
        calls,
        budget,
    )
)

cli = typer.Typer(add_completion=False)


@cli.command()
def main(
    smoke: Annotated[
        bool, typer.Option(help="Small N: check that each benchmark runs and reports.")
    ] = False,
    reps: Annotated[int, typer.Option(min=1, help="Repetitions per benchmark.")] = 3,
    only: Annotated[str | None, typer.Option(help="Comma-separated benchmark numbers.")] = None,
    wave_groups: Annotated[
        int | None,
        typer.Option(
            help="Groups in the 08:00 wave (default 1,000, to fit the run; the issue's"
            " size is --wave-groups 10000; smoke 40)."
        ),
    ] = None,
    budget_groups: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Prompts generated ahead of one prompt hour under the rate budget (14; default"
            " 1,000, smoke 60; the issue's size is --budget-groups 10000 --budget-rpm 3000).",
        ),
    ] = None,
    budget_rpm: Annotated[
        int | None, typer.Option(min=1, help="OPENAI_RPM of the rate-budget burst (default 600).")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write every sample as JSON here.")
    ] = None,
) -> None:
    """
    Run the benchmarks and print the report; exit 1 when one failed (or, with --smoke, when a
    row has no figure).
    """
    chosen = _choose(only)
    options = {
        "wave_groups": wave_groups or (40 if smoke else 1_000),
        "budget_groups": budget_groups or (60 if smoke else 1_000),
        "budget_rpm": budget_rpm or 600,
    }
    ok = asyncio.run(_run(chosen, smoke=smoke, reps=reps, options=options, json_out=json_out))
    raise typer.Exit(0 if ok else 1)


def _choose(only: str | None) -> list[harness.Benchmark]:
    if not only:
        return list(BENCHMARKS)
    wanted = {int(part) for part in only.split(",") if part.strip()}
    unknown = wanted - {b.number for b in BENCHMARKS}
    if unknown:
        raise typer.BadParameter(f"no benchmark numbered {sorted(unknown)}")
    return [b for b in BENCHMARKS if b.number in wanted]


async def _run(
    chosen: list[harness.Benchmark],
    *,
    smoke: bool,
    reps: int,
    options: dict[str, int],
    json_out: Path | None,
) -> bool:
    started = time.monotonic()
    db = await BenchDatabase.open(os.environ.get("BENCH_DATABASE_URL"))
    stats = await DbStats.open(db.url, db.monitor_url, db.name)
    rows: list[harness.Row] = []
    failures: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="broseph-bench-") as workdir:
            ctx = harness.Context(
                db=db,
                redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"),
                reps=reps,
                smoke=smoke,
                workdir=Path(workdir),
                options=options,
                stats=stats,
            )
            _log_to(ctx.workdir / "bench.log")
            about = await machine.describe(db.url, ctx.redis_url, stats)
            for bench in chosen:
                _progress(f"({bench.number}) {bench.title} …")
                t0 = time.monotonic()
                try:
                    found = await harness.collect(bench, ctx)
                except Exception as exc:
                    failures.append(f"({bench.number}) {bench.title}: {exc!r}")
                    traceback.print_exc(file=sys.stderr)
                    planned = harness.planned_reps(bench, ctx)
                    found = [harness.Row(bench.number, m, (), planned) for m in bench.metrics]
                rows.extend(found)
                _progress(f"({bench.number}) done in {time.monotonic() - t0:.0f} s")
        about["load_end"] = machine.load()
    finally:
        await stats.close()
        await db.close()
    if smoke:
        for row in rows:
            failures += [f"({row.number}) {row.metric.label}: {p}" for p in row.problems()]
    command = "python -m bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    print(machine.report(about, command.strip(), reps, smoke, time.monotonic() - started))
    print(harness.render(rows))
    print()
    for note in ctx.notes:
        print(f"- {note}")
    if failures:
        print("\n**Failures:**\n" + "\n".join(f"- {f}" for f in failures))
    if json_out:
        text = json.dumps([harness.as_dict(r) for r in rows], indent=2)
        await asyncio.to_thread(json_out.write_text, text)
    return not failures


def _log_to(path: Path) -> None:
    """
    Production logging (JSON at INFO) for what runs in this process (the ingress), into a file:
    the report goes to stdout, progress to stderr.
    """
    logs.configure("json", "INFO")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(path.open("a"))


def _progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    cli()
