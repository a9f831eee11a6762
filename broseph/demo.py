"""
`broseph demo`: a small Broseph world, its jobs run by an in-process worker, shown live.
"""

from __future__ import annotations

import asyncio
import datetime
import random
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from pydantic import SecretStr
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from broseph import db, enqueue, logs, migrate, services, sql, worker
from broseph.jobs import generate_prompt
from broseph.jobs.process_engagement import ProcessEngagement
from broseph.settings import Settings, get_settings, reveal

TIME_ZONES = (
    "America/Los_Angeles",
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Tokyo",
    "Australia/Sydney",
)
GROUP_NAMES = ("Climbing crew", "Book club", "Flatmates", "Uni friends", "Band", "Family")
PEOPLE = ("Ana", "Ben", "Chloé", "Dev", "Eli", "Femi", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea")

Section = Callable[[psycopg.AsyncConnection[Any], datetime.datetime], Awaitable[Table | None]]
# Later job types add their own demo tables here (prompts, notifications, …).
SECTIONS: list[Section] = []


def main(*, groups: int, data_dir: str) -> int:
    settings = get_settings()
    logs.configure(settings.log_format, "WARNING")
    console = Console()
    url = reveal(settings.database_url)
    server = None
    if not url:
        from broseph import embedded

        try:
            server, url = embedded.start(Path(data_dir))
        except embedded.NotInstalled as exc:
            # One plain line (not rich: it would wrap), on stderr, naming the fix.
            print(f"error: {exc}", file=sys.stderr)
            return 2
        console.print(f"[dim]No DATABASE_URL: started an embedded Postgres in {data_dir}[/]")
        url = _fresh_database(url, "broseph_demo")
    try:
        effective = settings.model_copy(update={"database_url": SecretStr(url)})
        return asyncio.run(_run(effective, groups, console))
    finally:
        if server is not None:
            console.print(
                "[dim]The embedded server stops now; its data stays in "
                f"{data_dir} (run the demo again to reuse it).[/]"
            )


def _fresh_database(server_url: str, name: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(server_url)
    params["dbname"] = name
    return make_conninfo(**params)  # type: ignore[arg-type]


async def _run(settings: Settings, n_groups: int, console: Console) -> int:
    url = db.database_url(settings)
    applied = await migrate.migrate(url)
    console.print(f"migrations applied: {len(applied)}")
    since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
    group_ids = await _seed(url, n_groups)
    console.print(f"seeded {len(group_ids)} groups in {min(n_groups, len(TIME_ZONES))} time zones")

    app = worker.create_app(settings)
    async with app.open_async():
        svc = services.build(settings, services.pool_of(app))
        services.install(app, svc)
        await _enqueue_from_python(svc, group_ids)
        await _enqueue_prompts(svc, group_ids)
        worker_task = asyncio.create_task(
            app.run_worker_async(install_signal_handlers=False, concurrency=4, wait=True)
        )
        try:
            finished = await _watch(svc, since, console)
        finally:
            worker_task.cancel()
            await asyncio.gather(worker_task, return_exceptions=True)
        async with svc.pool.connection() as conn:
            for table in [
                await _engagement(conn, since),
                *[await s(conn, since) for s in SECTIONS],
            ]:
                if table is not None:
                    console.print(table)
    console.print(
        "Inspect the jobs: [bold]procrastinate --app broseph.worker.app shell[/] "
        "(with DATABASE_URL set to the demo database)."
    )
    return 0 if finished else 1


async def _seed(url: str, n_groups: int) -> list[Any]:
    rng = random.Random(42)
    ids: list[Any] = []
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        await conn.execute(sql.query("demo_debounce"))
        for i in range(n_groups):
            tz = TIME_ZONES[i % len(TIME_ZONES)]
            cur = await conn.execute(
                sql.query("demo_group"),
                {"name": GROUP_NAMES[i % len(GROUP_NAMES)], "time_zone": tz},
            )
            row = await cur.fetchone()
            assert row is not None
            gid = row["id"]
            for j, person in enumerate(rng.sample(PEOPLE, rng.randint(3, 6))):
                await conn.execute(
                    sql.query("demo_member"),
                    {
                        "name": person,
                        "time_zone": tz,
                        "group_id": gid,
                        "role": "owner" if j == 0 else "member",
                    },
                )
            # One INSERT of many rows: the messages trigger enqueues once per (group, local day).
            await conn.execute(
                sql.query("demo_messages"), {"group_id": gid, "count": rng.randint(10, 40)}
            )
            ids.append(gid)
        # Push notifications: a phone per person, and one fresh message per group to announce.
        await conn.execute(sql.query("demo_devices"))
        await conn.execute(sql.query("demo_fresh_messages"))
        await conn.commit()
    return ids


async def _enqueue_from_python(svc: services.Services, group_ids: list[Any]) -> None:
    """
    The Python face: yesterday's stats for every group, in one transaction, deduplicated.
    """
    today = datetime.datetime.now(datetime.UTC).date()
    payloads = [
        ProcessEngagement(group_id=g, local_date=today - datetime.timedelta(days=1))
        for g in group_ids
    ]
    keys = [f"demo:engagement:{p.group_id}:{p.local_date}" for p in payloads]
    async with svc.pool.connection() as conn:
        await enqueue.enqueue_many(conn, payloads, idempotency_keys=keys, source="api")


async def _watch(svc: services.Services, since: datetime.datetime, console: Console) -> bool:
    deadline = time.monotonic() + 120
    with Live(console=console, refresh_per_second=4) as live:
        while True:
            async with svc.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(sql.query("demo_jobs_by_status"), {"since": since})
                rows = await cur.fetchall()
                await cur.execute(sql.query("demo_unfinished"), {"since": since})
                unfinished = await cur.fetchone()
            table = Table(title="Jobs (live)")
            for column in ("job type", "status", "jobs", "max attempts"):
                table.add_column(column)
            for row in rows:
                table.add_row(
                    row["job_type"], row["status"], str(row["jobs"]), str(row["max_attempts"])
                )
            live.update(Group(table))
            if rows and unfinished and unfinished["n"] == 0:
                return True
            if time.monotonic() > deadline:
                console.print("[red]demo jobs did not finish within 120 s[/]")
                return False
            await asyncio.sleep(0.25)


async def _engagement(conn: psycopg.AsyncConnection[Any], since: datetime.datetime) -> Table:
    table = Table(title="Daily engagement (public.group_engagement_daily)")
    for column in ("group", "time zone", "day", "msgs", "active", "members", "per member", "resp."):
        table.add_column(column)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.query("demo_engagement"), {"since": since})
        for row in await cur.fetchall():
            rate = row["prompt_response_rate"]
            table.add_row(
                row["group_name"],
                row["time_zone"],
                str(row["local_date"]),
                str(row["message_count"]),
                str(row["active_members"]),
                str(row["member_count"]),
                str(row["messages_per_member"]),
                "—" if rate is None else f"{rate:.0%}",
            )
    return table


async def _notifications(conn: psycopg.AsyncConnection[Any], since: datetime.datetime) -> Table:
    """
    What the development outbox received (no FIREBASE_CREDENTIALS_FILE), and every outcome.
    """
    table = Table(title="Push notifications (broseph.push_outbox, newest 20)")
    for column in ("type", "to", "device", "title", "body"):
        table.add_column(column)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.query("demo_outbox"), {"since": since, "limit": 20})
        for row in await cur.fetchall():
            table.add_row(
                row["notification_type"],
                row["display_name"],
                row["target_kind"],
                row["title"],
                row["body"],
            )
        await cur.execute(sql.query("demo_notification_outcomes"), {"since": since})
        outcomes = await cur.fetchall()
    table.caption = "; ".join(
        f"{r['type']} {r['status']}" + (f" ({r['reason']})" if r["reason"] else "") + f": {r['n']}"
        for r in outcomes
    )
    return table


SECTIONS.append(_notifications)


async def _enqueue_prompts(svc: services.Services, group_ids: list[Any]) -> None:
    """
    Today's prompt for every demo group now, rather than at PROMPT_HOUR (OpenAI with a key, else
    the offline bank); the schedule's own keys, so a fan-out tick during the demo adds nothing.
    """
    async with svc.pool.connection() as conn:
        await generate_prompt.enqueue_today(conn, group_ids, source="api")


async def _prompts(conn: psycopg.AsyncConnection[Any], since: datetime.datetime) -> Table:
    table = Table(title="Daily prompts (public.prompts)")
    for column in ("group", "time zone", "local day", "source"):
        table.add_column(column, no_wrap=True)
    table.add_column("prompt (category)", ratio=1)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.query("demo_prompts"), {"since": since})
        for row in await cur.fetchall():
            table.add_row(
                row["group_name"],
                row["time_zone"],
                str(row["local_date"]),
                row["source"],
                f"{escape(row['text'])} [dim]({row['category']})[/]",
            )
    return table


SECTIONS.append(_prompts)
