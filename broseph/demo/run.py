"""
`broseph demo [--groups N] [--keep]`: seed a small Broseph world, run a worker in this process
until the world's jobs are done (members answer their new prompts on the way), show what each
job type did, and say how to look around.

Without DATABASE_URL it starts an embedded Postgres (the `demo` extra) and makes a fresh
`broseph_demo` database on it — every run starts from nothing. The server stops when the demo
ends, unless `--keep`: then it stays up, its URL and the exact commands to inspect it are
printed, and Ctrl-C (or SIGTERM) stops it.
"""

from __future__ import annotations

import asyncio
import datetime
import importlib.util
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from rich.console import Console
from rich.live import Live

from broseph import db, logs, migrate, services, sql, worker
from broseph.demo import show, world
from broseph.settings import Settings, get_settings, reveal

DATABASE = "broseph_demo"
DEADLINE_SECONDS = 120
UNFINISHED = ("pending", "processing", "retrying")


def main(*, groups: int, data_dir: str, keep: bool = False) -> int:
    settings = get_settings()
    logs.configure(settings.log_format, "WARNING")
    console = show.console()
    url = reveal(settings.database_url)
    if url:
        code = _demo(settings, url, groups, console)
        _hints_for_your_database(console, keep)
        return code
    from broseph import embedded

    try:
        server, _ = embedded.start(Path(data_dir))
    except embedded.NotInstalled as exc:
        # One plain line (not rich: it would wrap), on stderr, naming the fix.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        console.print(f"No DATABASE_URL: started an embedded Postgres in {data_dir}")
        url = embedded.fresh_database(server, DATABASE)
        code = _demo(settings, url, groups, console)
        if keep:
            _keep(console, url)
        else:
            again = f"{show.script('broseph')} demo --keep"
            console.print(
                "The embedded Postgres stops now (the next demo makes a fresh demo database)."
                f" To look around after the demo, run `{again}`: the server stays up and the"
                " demo prints the commands to inspect it.",
                soft_wrap=True,
                markup=False,
                highlight=False,
            )
    finally:
        server.cleanup()
    return code


def _demo(settings: Settings, url: str, groups: int, console: Console) -> int:
    effective = settings.model_copy(update={"database_url": SecretStr(url)})
    return asyncio.run(_run(effective, groups, console))


async def _run(settings: Settings, n_groups: int, console: Console) -> int:
    url = db.database_url(settings)
    applied = await migrate.migrate(url)
    console.print(f"migrations applied: {len(applied)}")
    since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
    group_ids = await world.seed(url, n_groups)
    zones = min(n_groups, len(world.TIME_ZONES))
    name, _, members = world.CROWD
    console.print(
        f"seeded {n_groups} groups in {zones} time zones, and {name} with {members} members"
        " (one delivery job per event, like every group's)"
    )

    app = worker.create_app(settings)
    async with app.open_async():
        svc = services.build(settings, services.pool_of(app))
        services.install(app, svc)
        await world.enqueue_yesterday(svc, group_ids)
        await world.enqueue_prompts(svc, group_ids)
        await world.newcomer(url, group_ids[-1])
        console.print(f"Zoe joined {name}")
        worker_task = asyncio.create_task(
            app.run_worker_async(install_signal_handlers=False, concurrency=4, wait=True)
        )
        try:
            finished = await _watch(svc, since, console)
        finally:
            worker_task.cancel()
            await asyncio.gather(worker_task, return_exceptions=True)
        async with svc.pool.connection() as conn:
            for section in show.SECTIONS:
                shown = await section(conn, since)
                console.print(shown.table)
                for line in shown.lines:
                    console.print(line, soft_wrap=True, highlight=False, markup=False)
    return 0 if finished else 1


async def _watch(svc: services.Services, since: datetime.datetime, console: Console) -> bool:
    """
    Until every demo job has finished: the jobs table (live on a terminal), and once every
    prompt is stored, members answer them.
    """
    deadline = time.monotonic() + DEADLINE_SECONDS
    answered = False
    live = Live(console=console, refresh_per_second=4) if console.is_terminal else None
    rows: list[dict[str, Any]] = []
    try:
        if live is not None:
            live.start()
        while True:
            async with svc.pool.connection() as conn:
                rows = await sql.rows(conn, "demo_jobs_by_status", {"since": since})
            if live is not None:
                live.update(show.jobs(rows, live=True))
            unfinished = [r for r in rows if r["status"] in UNFINISHED]
            if not answered and not any(r["job_type"] == "GeneratePrompt" for r in unfinished):
                answers = await world.answer_prompts(svc, since)
                answered = True
                console.print(f"members answered their new prompts: {answers} messages")
                continue
            if answered and rows and not unfinished:
                break
            if time.monotonic() > deadline:
                console.print(f"[red]demo jobs did not finish within {DEADLINE_SECONDS} s[/]")
                return False
            await asyncio.sleep(0.25)
    finally:
        if live is not None:
            live.stop()
    if live is None:
        console.print(show.jobs(rows, live=False))
    return True


def _commands(url: str | None) -> list[str]:
    """
    The commands that inspect the demo, as this shell can run them: with DATABASE_URL exported
    first when it is the embedded server's.
    """
    broseph, procrastinate = show.script("broseph"), show.script("procrastinate")
    lines = [f"export DATABASE_URL={shlex.quote(url)}"] if url else []
    lines += [
        f"{broseph} jobs list --type DeliverGroupEvent",
        f"{broseph} jobs stats",
        f"{procrastinate} --app broseph.worker.app shell",
    ]
    dashboard = f"{broseph} dashboard        # then open http://127.0.0.1:8080/"
    if importlib.util.find_spec("uvicorn") is None:
        dashboard += " (first: pip install 'broseph[dashboard]')"
    return [*lines, dashboard]


def _hints_for_your_database(console: Console, keep: bool) -> None:
    console.print("Look around (these commands read the same DATABASE_URL):")
    for line in _commands(None):
        console.print(f"  {line}", soft_wrap=True, highlight=False, markup=False)
    if keep:
        console.print("(--keep keeps the embedded Postgres; yours is left as it is.)")


def _keep(console: Console, url: str) -> None:
    """
    Print the embedded server's URL and the commands, then wait for Ctrl-C or SIGTERM.
    """
    console.print(
        "The embedded Postgres keeps running until you press Ctrl-C here (or send SIGTERM to"
        f" pid {os.getpid()}). In another terminal, from this directory:",
        soft_wrap=True,
    )
    for line in _commands(url):
        console.print(f"  {line}", soft_wrap=True, highlight=False, markup=False)
    console.file.flush()
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in _STOP_SIGNALS}
    try:
        stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.print("stopping the embedded Postgres")


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
