"""
What `broseph jobs …` reads and does: list, show, retry, cancel, stats.

Every function takes the caller's connection (dict rows, autocommit) and returns plain data; the
CLI (broseph/ops/cli.py) renders it as tables or JSON. A job is named by its record id (uuid)
or by its procrastinate queue row id (an integer: periodic ticks have no record).
"""

from __future__ import annotations

import datetime
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import procrastinate
import psycopg
from procrastinate import manager
from psycopg.rows import DictRow

from broseph import sql

Conn = psycopg.AsyncConnection[DictRow]
Row = dict[str, Any]

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
RECORD_STATUSES = ("pending", "processing", "retrying", "completed", "failed", "cancelled")
# A page holds at most this many records; text filters at most this many characters.
MAX_PAGE = 500
MAX_TEXT = 1000


class JobNotFound(LookupError):
    pass


class NotPossible(RuntimeError):
    """
    The job exists but is in no state for the operation (retry a completed job, …).
    """


def parse_since(text: str, *, now: datetime.datetime | None = None) -> datetime.datetime:
    """
    "30m", "2h", "7d" (ago) or an ISO 8601 time ("2026-11-20T08:00:00+00:00").
    """
    match = _RELATIVE.match(text)
    if match:
        amount = float(match.group(1))
        try:
            delta = datetime.timedelta(**{_UNITS[match.group(2)]: amount})
            return (now or datetime.datetime.now(datetime.UTC)) - delta
        except OverflowError:
            raise ValueError(f"--since {text!r}: too far back") from None
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r}: use 30m, 2h, 7d or an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


async def list_records(
    conn: Conn,
    *,
    status: str | None = None,
    job_type: str | None = None,
    since: datetime.datetime | None = None,
    limit: int = 50,
) -> list[Row]:
    """
    Job records, newest first (the first page of `find`).
    """
    flt = Filter(statuses=(status,) if status else (), job_type=job_type, since=since)
    return (await find(conn, flt, limit=limit)).rows


@dataclass(frozen=True)
class Filter:
    """
    Which job records: every given field must match (empty / None: no condition). The one
    filter of `broseph jobs list`, the dashboard's jobs page and the bulk actions.
    """

    statuses: tuple[str, ...] = ()
    job_type: str | None = None
    # Created at or after `since`, and before `until`.
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None
    group_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    idempotency_key: str | None = None

    def __post_init__(self) -> None:
        unknown = [s for s in self.statuses if s not in RECORD_STATUSES]
        if unknown:
            raise ValueError(f"status {unknown[0]!r}: one of {', '.join(RECORD_STATUSES)}")
        for name in ("job_type", "idempotency_key"):
            value = getattr(self, name)
            if value is not None and ("\x00" in value or len(value) > MAX_TEXT):
                raise ValueError(f"{name}: at most {MAX_TEXT} characters, no NUL")

    def params(self) -> dict[str, Any]:
        return {
            "statuses": list(self.statuses) or None,
            "job_type": self.job_type,
            "since": self.since,
            "until": self.until,
            "group_id": self.group_id,
            "user_id": self.user_id,
            "idempotency_key": self.idempotency_key,
        }


@dataclass(frozen=True)
class Cursor:
    """
    Where the next page starts: records strictly older than this (created_at, id).
    """

    created_at: datetime.datetime
    id: uuid.UUID

    def token(self) -> str:
        # URL-safe as it stands (no "+"): it travels in links and on command lines.
        return f"{self.created_at.astimezone(datetime.UTC):%Y-%m-%dT%H:%M:%S.%fZ}_{self.id}"

    @classmethod
    def parse(cls, token: str) -> Cursor:
        moment, _, ident = token.partition("_")
        try:
            at = datetime.datetime.fromisoformat(moment)
            return cls(at if at.tzinfo else at.replace(tzinfo=datetime.UTC), uuid.UUID(ident))
        except ValueError:
            raise ValueError(f"cursor {token[:80]!r} is not one this service made") from None


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    # Set when there may be more rows after these.
    next: Cursor | None


async def find(conn: Conn, flt: Filter, *, after: Cursor | None = None, limit: int = 50) -> Page:
    """
    One page of matching records, newest first; index range scans only, whatever the table's
    size (broseph.find_records, migrations/0018).
    """
    limit = max(1, min(limit, MAX_PAGE))
    cur = await conn.execute(
        sql.query("find_records"),
        {
            **flt.params(),
            "before_at": after.created_at if after else None,
            "before_id": after.id if after else None,
            "max_rows": limit + 1,
        },
    )
    rows = list(await cur.fetchall())
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows and more else None
    return Page(rows, Cursor(last["created_at"], last["id"]) if last else None)


async def count(conn: Conn, flt: Filter, *, cap: int | None = None) -> int:
    """
    How many records match (at most `cap` counted, when given).
    """
    cur = await conn.execute(sql.query("count_records"), {**flt.params(), "cap": cap})
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


def parse_filter(
    *,
    status: str | None = None,
    job_type: str | None = None,
    since: str | None = None,
    until: str | None = None,
    group: str | None = None,
    user: str | None = None,
    key: str | None = None,
) -> Filter:
    """
    A filter from what an operator typed (CLI options, the dashboard's query string); blank
    means no condition. ValueError names the field at fault.
    """
    statuses = tuple(s.strip() for s in (status or "").split(",") if s.strip())
    return Filter(
        statuses=statuses,
        job_type=(job_type or "").strip() or None,
        since=_moment("since", since),
        until=_moment("until", until),
        group_id=_uuid_field("group", group),
        user_id=_uuid_field("user", user),
        idempotency_key=key or None,
    )


def _moment(name: str, text: str | None) -> datetime.datetime | None:
    if not text or not text.strip():
        return None
    try:
        return parse_since(text.strip())
    except ValueError:
        raise ValueError(f"{name} {text[:40]!r}: use 30m, 2h, 7d or an ISO 8601 time") from None


def _uuid_field(name: str, text: str | None) -> uuid.UUID | None:
    if not text or not text.strip():
        return None
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        raise ValueError(f"{name} {text[:40]!r} is not a uuid") from None


@dataclass
class JobView:
    """
    One job, whole: its record (if any), its queue row (if not pruned), its events.
    """

    record: Row | None
    queue_row: Row | None
    events: list[Row] = field(default_factory=list)

    @property
    def job_id(self) -> int | None:
        if self.queue_row:
            return int(self.queue_row["id"])
        if self.record and self.record["procrastinate_job_id"] is not None:
            return int(self.record["procrastinate_job_id"])
        return None


async def show(conn: Conn, ident: str) -> JobView:
    record: Row | None = None
    job_id: int | None
    if ident.isdigit():
        job_id = int(ident)
        cur = await conn.execute(sql.query("record_of_job"), {"job_id": job_id})
        found = await cur.fetchone()
        if found:
            record = await _record(conn, found["id"])
    else:
        record = await _record(conn, _uuid(ident))
        if record is None:
            raise JobNotFound(f"no job record {ident}")
        job_id = record["procrastinate_job_id"]
    queue_row = None
    events: list[Row] = []
    if job_id is not None:
        cur = await conn.execute(sql.query("show_queue_row"), {"job_id": job_id})
        queue_row = await cur.fetchone()
        cur = await conn.execute(sql.query("job_events"), {"job_id": job_id})
        events = list(await cur.fetchall())
    if record is None and queue_row is None:
        raise JobNotFound(f"no job {ident} (neither a record nor a queue row)")
    return JobView(record=record, queue_row=queue_row, events=events)


async def retry(conn: Conn, ident: str) -> JobView:
    """
    Put a failed job back in the queue now (one more attempt).
    """
    view = await show(conn, ident)
    status = view.queue_row["status"] if view.queue_row else None
    if status != "failed" or view.job_id is None:
        shown = view.record["status"] if view.record else status
        raise NotPossible(
            f"only failed jobs can be retried; this one is {shown or 'pruned'}"
            + ("" if status != "cancelled" and status != "aborted" else "; enqueue it again")
        )
    async with conn.transaction():
        await conn.execute(sql.query("retry_failed_job"), {"job_id": view.job_id})
    return await show(conn, ident)


async def cancel(conn: Conn, ident: str) -> tuple[str, JobView]:
    """
    Cancel a job: a pending one is cancelled now; for a running one an abort is requested (its
    worker stops it; the record ends `cancelled`). Returns ("cancelled" | "abort_requested").
    """
    view = await show(conn, ident)
    if view.job_id is None or view.queue_row is None:
        raise NotPossible("this job's queue row is gone (pruned); nothing to cancel")
    status = view.queue_row["status"]
    if status not in ("todo", "doing"):
        shown = view.record["status"] if view.record else status
        raise NotPossible(f"the job is already {shown}; nothing to cancel")
    jobs = manager.JobManager(procrastinate.PsycopgConnector())
    done = await jobs.cancel_job_by_id_async(view.job_id, abort=True, connection=conn)
    if not done:
        raise NotPossible("the job finished meanwhile; nothing to cancel")
    return ("cancelled" if status == "todo" else "abort_requested"), await show(conn, ident)


async def stats(conn: Conn) -> dict[str, list[Row]]:
    """
    Records by type and status, queue rows by queue and status, runnable backlog, workers.
    """
    result: dict[str, list[Row]] = {}
    for name, query in (
        ("records", "record_stats"),
        ("queues", "queue_depth"),
        ("pending", "oldest_pending"),
        ("workers", "workers"),
    ):
        cur = await conn.execute(sql.query(query))
        result[name] = list(await cur.fetchall())
    return result


async def _record(conn: Conn, record_id: uuid.UUID) -> Row | None:
    cur = await conn.execute(sql.query("show_record"), {"record_id": record_id})
    return await cur.fetchone()


def _uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise JobNotFound(
            f"{text!r} is neither a job record id (uuid) nor a queue row id (integer)"
        ) from None
