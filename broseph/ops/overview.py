"""
The state of the job service at a glance: what waits and runs, what the last day brought (per
hour, so the 08:00 fan-out stands out), failures, queues, workers and the periodic ticks.

Every query is bounded by the unfinished jobs or by the time window, never by the size of the
tables (broseph/queries/overview.sql; `python -m bench --only 10` checks the plans at 1,000,000
records). The dashboard's overview page renders it; `inspect` answers the rest.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from broseph import engine, sql
from broseph.ops import inspect

Row = dict[str, Any]
ACTIVE = ("pending", "processing", "retrying")
WINDOW = datetime.timedelta(hours=24)


# A periodic task as registered on the worker app: its name, id and cron are known without a
# database (read from procrastinate's registry by the seam, broseph/engine.py).
Schedule = engine.Schedule


@dataclass
class Tick:
    task_name: str
    periodic_id: str
    cron: str | None
    # When the last tick was due, its queue row (None once pruned) and that row's state.
    last_due: datetime.datetime | None = None
    job_id: int | None = None
    status: str | None = None
    changed_at: datetime.datetime | None = None
    next_due: datetime.datetime | None = None


@dataclass
class Overview:
    now: datetime.datetime
    since: datetime.datetime
    # job_type → status → count: every waiting / running record.
    active: dict[str, dict[str, int]]
    # job_type → status → count: records created since `since`.
    recent: dict[str, dict[str, int]]
    # job_type → [count per hour, oldest hour first], for `hours`.
    hourly: dict[str, list[int]]
    hours: list[datetime.datetime]
    queues: list[Row]
    pending: list[Row]
    workers: list[Row]
    ticks: list[Tick]
    failures: list[Row]
    quarantined: int
    job_types: list[str] = field(default_factory=list)

    def failed_recently(self) -> int:
        return sum(by_status.get("failed", 0) for by_status in self.recent.values())


async def load(conn: inspect.Conn, schedules: Iterable[Schedule] = ()) -> Overview:
    """
    Read the overview (a handful of bounded queries).
    """
    cur = await conn.execute("SELECT now() AS now")
    row = await cur.fetchone()
    assert row is not None
    now: datetime.datetime = row["now"]
    since = now - WINDOW
    active: dict[str, dict[str, int]] = {}
    for r in await _rows(conn, "overview_active"):
        counts = {status: int(r[status]) for status in ACTIVE if r[status]}
        if counts:
            active[r["job_type"]] = counts
    recent: dict[str, dict[str, int]] = {}
    hours = _hours(since, now)
    hourly: dict[str, list[int]] = {}
    for r in await _rows(conn, "overview_recent", since=since):
        by_status = recent.setdefault(r["job_type"], {})
        by_status[r["status"]] = by_status.get(r["status"], 0) + int(r["jobs"])
        bars = hourly.setdefault(r["job_type"], [0] * len(hours))
        index = hours.index(r["hour"]) if r["hour"] in hours else None
        if index is not None:
            bars[index] += int(r["jobs"])
    failures = await inspect.find(conn, inspect.Filter(statuses=("failed",), since=since), limit=5)
    quarantined = await _rows(conn, "quarantine_open")
    return Overview(
        now=now,
        since=since,
        active=active,
        recent=recent,
        hourly=hourly,
        hours=hours,
        queues=await _rows(conn, "queue_active_depth"),
        pending=await _rows(conn, "oldest_pending"),
        workers=await _rows(conn, "workers"),
        ticks=ticks(await _rows(conn, "periodic_ticks"), schedules, now),
        failures=failures.rows,
        quarantined=int(quarantined[0]["n"]),
        job_types=sorted(set(active) | set(recent)),
    )


def ticks(rows: list[Row], schedules: Iterable[Schedule], now: datetime.datetime) -> list[Tick]:
    """
    One line per periodic task: the registered ones (with their next due time) and any other
    task the database has ticks of (a task no longer registered, another app's).
    """
    found: dict[tuple[str, str], Tick] = {}
    for schedule in schedules:
        found[(schedule.task_name, schedule.periodic_id)] = Tick(
            schedule.task_name,
            schedule.periodic_id,
            schedule.cron,
            next_due=next_due(schedule, now),
        )
    for row in rows:
        key = (row["task_name"], row["periodic_id"])
        tick = found.setdefault(key, Tick(row["task_name"], row["periodic_id"], None))
        if tick.last_due is not None:
            continue  # an older tick of the same task (rows come newest first)
        if row["defer_timestamp"] is not None:
            tick.last_due = datetime.datetime.fromtimestamp(row["defer_timestamp"], datetime.UTC)
        tick.job_id = row["job_id"]
        tick.status = row["status"]
        tick.changed_at = row["changed_at"]
    return sorted(found.values(), key=lambda t: (t.task_name, t.periodic_id))


def next_due(schedule: Schedule, now: datetime.datetime) -> datetime.datetime:
    """
    The next time the task is due after `now`, computed as procrastinate's worker computes it.
    """
    return schedule.next_due(now)


def _hours(since: datetime.datetime, now: datetime.datetime) -> list[datetime.datetime]:
    first = since.astimezone(datetime.UTC).replace(minute=0, second=0, microsecond=0)
    hours = []
    hour = first
    while hour <= now:
        hours.append(hour)
        hour += datetime.timedelta(hours=1)
    return hours


async def _rows(conn: inspect.Conn, name: str, **params: Any) -> list[Row]:
    cur = await conn.execute(sql.query(name), params or None)
    return list(await cur.fetchall())
