"""
What `broseph demo` prints: its jobs by type and status (live on a terminal, once when the
output is a file or a pipe), then what each job type did — one section each.

Nothing is ever cut short: ids, time zones, dates and numbers are never wrapped or shortened;
free text wraps (a word too long for its column folds). Output that is not a terminal gets 200
columns, so a file holds every table at its natural width.
"""

from __future__ import annotations

import datetime
import shlex
import shutil
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psycopg
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from broseph import sql


@dataclass
class Shown:
    """
    A section: its table, and whole lines to print after it (commands: never wrapped by us, so
    an id stays in one piece).
    """

    table: Table
    lines: list[str] = field(default_factory=list)


Section = Callable[[psycopg.AsyncConnection[Any], datetime.datetime], Awaitable[Shown]]
# A value that must stay whole (an id, a zone, a date, a number), or text that may wrap.
Kind = Literal["key", "number", "text"]
# Pushes shown per notification type (the caption counts them all).
OUTBOX_PER_TYPE = 3


def console() -> Console:
    """
    The terminal's width on a terminal; room for every table anywhere else.
    """
    return Console() if sys.stdout.isatty() else Console(width=200)


def script(name: str) -> str:
    """
    A console script of this installation as the user can type it: its bare name when PATH
    finds this very one, else its path as `broseph` was started (e.g. .venv/bin/procrastinate).
    """
    started = Path(sys.argv[0])
    beside = started.parent / name
    if started.name != "broseph" or not beside.exists():
        return name
    found = shutil.which(name)
    if found and Path(found).resolve() == beside.resolve():
        return name
    return shlex.quote(str(beside))


def table(title: str, columns: Sequence[tuple[str, Kind]], caption: str | None = None) -> Table:
    found = Table(
        title=title,
        title_justify="left",
        caption=caption,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        header_style="bold",
    )
    for name, kind in columns:
        # Values stay whole; free text wraps (and a word too long for its column folds). The
        # tables are laid out to fit 80 columns with every value whole.
        if kind == "text":
            found.add_column(name, overflow="fold")
        else:
            found.add_column(name, no_wrap=True, justify="right" if kind == "number" else "left")
    return found


def jobs(rows: Sequence[dict[str, Any]], *, live: bool) -> Table:
    """
    The demo's job records by type and status: how many, the most attempts one of them has made
    so far, and the most it may make.
    """
    shown = table(
        "Jobs (live)" if live else "Jobs",
        [
            ("job type", "key"),
            ("status", "key"),
            ("jobs", "number"),
            ("attempts", "number"),
            ("max attempts", "number"),
        ],
    )
    for row in rows:
        shown.add_row(
            row["job_type"],
            row["status"],
            str(row["jobs"]),
            str(row["attempts"]),
            "—" if row["max_attempts"] is None else str(row["max_attempts"]),
        )
    return shown


# The first columns of every per-group, per-local-day table.
_GROUP_DAY: list[tuple[str, Kind]] = [("group\ntime zone", "key"), ("local day", "key")]


async def prompts(conn: psycopg.AsyncConnection[Any], since: datetime.datetime) -> Shown:
    shown = table(
        "GeneratePrompt: each group's prompt of its local day, stored in public.prompts",
        [
            *_GROUP_DAY,
            ("source", "key"),
            ("prompt (category)", "text"),
        ],
    )
    for row in await sql.rows(conn, "demo_prompts", {"since": since}):
        shown.add_row(
            _group(row),
            str(row["local_date"]),
            row["source"],
            f"{escape(row['text'])} [dim]({row['category']})[/]",
        )
    return Shown(shown)


async def notifications(conn: psycopg.AsyncConnection[Any], since: datetime.datetime) -> Shown:
    """
    What the development outbox received (no FIREBASE_CREDENTIALS_FILE), and every outcome.
    """
    shown = table(
        "Pushes delivered to the development outbox (broseph.push_outbox),"
        f" the newest {OUTBOX_PER_TYPE} of each type",
        [("type", "key"), ("to", "key"), ("device", "key"), ("title", "text"), ("body", "text")],
    )
    totals: dict[str, int] = {}
    for row in await sql.rows(conn, "demo_outbox", {"since": since, "per_type": OUTBOX_PER_TYPE}):
        totals[row["notification_type"]] = int(row["of_type"])
        shown.add_row(
            row["notification_type"],
            row["display_name"],
            row["target_kind"],
            escape(row["title"]),
            escape(row["body"]),
        )
    outcomes = await sql.rows(conn, "demo_notification_outcomes", {"since": since})
    pushes = ", ".join(f"{kind} {n}" for kind, n in sorted(totals.items()))
    results = "; ".join(
        f"{r['type']} {r['status']}" + (f" ({r['reason']})" if r["reason"] else "") + f": {r['n']}"
        for r in outcomes
    )
    shown.caption = f"Pushes in the outbox: {pushes or 'none'}.\nNotifications: {results}."
    return Shown(shown)


async def fanouts(conn: psycopg.AsyncConnection[Any], since: datetime.datetime) -> Shown:
    """
    The group deliveries, and for each kind the command that shows its first one.
    """
    shown = table(
        "DeliverGroupEvent: one delivery job per group event, every member decided in it",
        [
            ("group", "key"),
            ("type", "key"),
            ("jobs", "number"),
            ("members", "number"),
            ("status", "key"),
        ],
    )
    commands = []
    for row in await sql.rows(conn, "demo_fanouts", {"since": since}):
        shown.add_row(
            row["group_name"],
            row["type"],
            str(row["fanouts"]),
            "—" if row["members"] is None else str(row["members"]),
            row["statuses"],
        )
        commands.append(f"  {script('broseph')} jobs show {row['first_id']}  # {row['type']}")
    return Shown(shown, ["Look at one:", *commands] if commands else [])


async def engagement(conn: psycopg.AsyncConnection[Any], since: datetime.datetime) -> Shown:
    shown = table(
        "ProcessEngagement: each group's day in numbers, stored in public.group_engagement_daily",
        [
            *_GROUP_DAY,
            ("msgs", "number"),
            ("active", "number"),
            ("members", "number"),
            ("per\nmember", "number"),
            ("answered\nprompt", "number"),
        ],
        caption="msgs: messages that local day; active: members who wrote; answered prompt:"
        " the share of members who answered that day's prompt (—: no prompt that day).",
    )
    for row in await sql.rows(conn, "demo_engagement", {"since": since}):
        rate = row["prompt_response_rate"]
        shown.add_row(
            _group(row),
            str(row["local_date"]),
            str(row["message_count"]),
            str(row["active_members"]),
            str(row["member_count"]),
            str(row["messages_per_member"]),
            "—" if rate is None else f"{rate:.0%}",
        )
    return Shown(shown)


def _group(row: dict[str, Any]) -> str:
    return f"{escape(row['group_name'])}\n[dim]{escape(row['time_zone'])}[/]"


# What each job type did, in the order of the story: prompts, their pushes, the fan-outs of the
# large group, the day's numbers (which count the answers to the prompts).
SECTIONS: list[Section] = [prompts, notifications, fanouts, engagement]
