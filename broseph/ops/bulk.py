"""
Retry or cancel every job matching a filter, counted first: `broseph jobs retry-all` /
`cancel-all` and the dashboard's bulk actions.

`preview` counts what an action would touch and notes the database's time; `apply` then acts on
the records matching the same filter that were created before that time, in transactions of
`batch` jobs, walking the filter's keyset order (inspect.find), so a million matching records
never sit in one transaction and records created after the count are never touched. A job
another session holds is skipped, not waited for; one that changed state meanwhile is left
alone. Retry acts on failed records only, cancel on pending, retrying and processing ones.
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass
from typing import Literal

from broseph import sql
from broseph.ops import inspect

Action = Literal["retry", "cancel"]
ACTIONS: dict[str, tuple[str, ...]] = {
    "retry": ("failed",),
    "cancel": ("pending", "retrying", "processing"),
}
BATCH = 500


@dataclass(frozen=True)
class Preview:
    action: Action
    # The filter the action applies: the given one, narrowed to the statuses it can act on.
    filter: inspect.Filter
    count: int
    # Records created from this time on are not touched (the database's clock).
    as_of: datetime.datetime


@dataclass(frozen=True)
class Outcome:
    action: Action
    # Retried / cancelled now, abort requested (running jobs), skipped (changed or held).
    done: int = 0
    abort_requested: int = 0
    skipped: int = 0


def narrowed(action: Action, flt: inspect.Filter) -> inspect.Filter:
    """
    The filter restricted to the statuses `action` can act on (none left: matches nothing).
    """
    allowed = ACTIONS[action]
    statuses = tuple(s for s in flt.statuses if s in allowed) if flt.statuses else allowed
    return dataclasses.replace(flt, statuses=statuses)


async def preview(conn: inspect.Conn, action: Action, flt: inspect.Filter) -> Preview:
    """
    How many records `apply` would act on now.
    """
    cur = await conn.execute("SELECT now() AS now")
    row = await cur.fetchone()
    assert row is not None
    as_of: datetime.datetime = row["now"]
    scoped = _scoped(narrowed(action, flt), as_of)
    total = await inspect.count(conn, scoped) if scoped.statuses else 0
    return Preview(action, scoped, total, as_of)


async def apply(
    conn: inspect.Conn,
    action: Action,
    flt: inspect.Filter,
    *,
    as_of: datetime.datetime,
    batch: int = BATCH,
) -> Outcome:
    """
    Retry / cancel what `preview` counted (see the module's docstring); returns the tally.
    """
    scoped = _scoped(narrowed(action, flt), as_of)
    outcome = Outcome(action)
    if not scoped.statuses:
        return outcome
    after: inspect.Cursor | None = None
    while True:
        page = await inspect.find(conn, scoped, after=after, limit=batch)
        job_ids = sorted(r["job_id"] for r in page.rows if r["job_id"] is not None)
        if job_ids:
            step = await (_retry if action == "retry" else _cancel)(conn, job_ids)
            outcome = Outcome(
                action,
                done=outcome.done + step.done,
                abort_requested=outcome.abort_requested + step.abort_requested,
                skipped=outcome.skipped + step.skipped,
            )
        if page.next is None:
            return outcome
        after = page.next


def _scoped(flt: inspect.Filter, as_of: datetime.datetime) -> inspect.Filter:
    until = min(flt.until, as_of) if flt.until else as_of
    return dataclasses.replace(flt, until=until)


async def _retry(conn: inspect.Conn, job_ids: list[int]) -> Outcome:
    async with conn.transaction():
        cur = await conn.execute(sql.query("retry_failed_jobs"), {"job_ids": job_ids})
        retried = list(await cur.fetchall())
        first_by_queue: dict[str, int] = {}
        for row in retried:
            first_by_queue.setdefault(row["queue_name"], row["id"])
        if first_by_queue:
            await conn.execute(
                sql.query("wake_queues"),
                {"queues": list(first_by_queue), "job_ids": list(first_by_queue.values())},
            )
    return Outcome("retry", done=len(retried), skipped=len(job_ids) - len(retried))


async def _cancel(conn: inspect.Conn, job_ids: list[int]) -> Outcome:
    async with conn.transaction():
        cur = await conn.execute(sql.query("cancel_jobs"), {"job_ids": job_ids})
        rows = list(await cur.fetchall())
    cancelled = sum(1 for r in rows if r["done"] and r["was"] == "todo")
    aborting = sum(1 for r in rows if r["done"] and r["was"] == "doing")
    return Outcome(
        "cancel",
        done=cancelled,
        abort_requested=aborting,
        skipped=len(job_ids) - cancelled - aborting,
    )
