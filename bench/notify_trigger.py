"""
How much the notification triggers (migrations/0040) add to the inserting transaction.

One transaction (INSERT + COMMIT) into a group, timed against the same statement with the
notification trigger disabled — the baseline, measured in the same process on the same database,
alternating run by run with the measured one so load on the machine hits both alike (the
engagement trigger of 0005 stays on in both):

    message, first in a while   new_message for every other member (no job pending yet)
    message, coalesced          every member already has a pending job
    member joins                friend_joined for every member already there
    prompt stored               new_prompt for every member

for groups of 6, 600 and 6,000 members (smoke: 6, 60 and 600). Each event enqueues ONE
DeliverGroupEvent whatever the group's size (a coalesced message: none), so the cost per event is
flat in group size; the job notifies every member in the worker (bench/wave.py measures that).

    python -m bench.notify_trigger                 # 6, 600, 6,000 members, 30 runs each
    python -m bench.notify_trigger --smoke         # 6, 60, 600 members, 3 runs: does it run at all

Standalone it needs DATABASE_URL or TEST_DATABASE_URL (a server where it may create a database),
creates a throwaway database and drops it afterwards, and prints its own table. It is also a
`bench.harness.Benchmark` (number 9: `number`, `title`, `metrics`, `rounds`), so `python -m bench`
can run it with the others. It asserts nothing about speed.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, LiteralString

import psycopg
import typer
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench.harness import Context, Metric, Repetition, Sample, at_most
from broseph import migrate

TRIGGERS = {
    "messages": "broseph_messages_notify",
    "group_members": "broseph_group_members_notify",
    "prompts": "broseph_prompts_notify",
}


@dataclass(frozen=True)
class Result:
    group: str
    scenario: str
    jobs: int  # notification jobs the transaction enqueued (DeliverGroupEvent, and any other)
    median_ms: float
    p95_ms: float
    base_median_ms: float
    # The INSERT alone (before COMMIT, whose WAL flush is the same for both and noisy), medians.
    statement_ms: float
    base_statement_ms: float
    # The notify trigger's own time (EXPLAIN ANALYZE), median.
    trigger_ms: float

    @property
    def ratio(self) -> float:
        return self.median_ms / self.base_median_ms


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    name = f"bench_notify_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(server_url)
    params["dbname"] = name
    try:
        yield make_conninfo(**params)  # type: ignore[arg-type]
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Group:
    """
    One group of `size` members and the statements the scenarios time.
    """

    def __init__(self, conn: psycopg.Connection[Any], size: int) -> None:
        self.conn = conn
        self.size = size
        self._day = datetime.date(2000, 1, 1)
        self._newcomer: uuid.UUID | None = None
        # Set: the statements run under EXPLAIN ANALYZE and keep the notify trigger's own time
        # (the server's measure, free of the client's and the COMMIT's noise).
        self.explain = False
        self.trigger_ms: list[float] = []
        set_trigger(conn, "group_members", enabled=False)
        row = conn.execute("INSERT INTO public.groups (name) VALUES ('Bench') RETURNING id")
        self.id = _one(row)
        self.members = [
            r[0]
            for r in conn.execute(
                "INSERT INTO public.profiles (display_name)"
                " SELECT 'Member ' || g FROM generate_series(1, %s) AS g RETURNING id",
                (size,),
            ).fetchall()
        ]
        conn.execute(
            "INSERT INTO public.group_members (group_id, user_id) SELECT %s, unnest(%s::uuid[])",
            (self.id, self.members),
        )
        conn.commit()
        set_trigger(conn, "group_members", enabled=True)

    def _run(self, statement: LiteralString, params: tuple[Any, ...]) -> None:
        if not self.explain:
            self.conn.execute(statement, params)
            return
        plan = _one(self.conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, params))
        self.trigger_ms += [
            float(t["Time"]) for t in plan[0]["Triggers"] if t["Trigger Name"] in TRIGGERS.values()
        ]

    def message(self) -> None:
        self._run(
            "INSERT INTO public.messages (group_id, sender_id, body) VALUES (%s, %s, 'bench')",
            (self.id, self.members[0]),
        )

    def new_profile(self) -> None:
        """
        Untimed: the profile about to join; the previous newcomer leaves, so the size holds.
        """
        if self._newcomer is not None:
            self.conn.execute(
                "DELETE FROM public.group_members WHERE group_id = %s AND user_id = %s",
                (self.id, self._newcomer),
            )
        row = self.conn.execute(
            "INSERT INTO public.profiles (display_name) VALUES ('Newcomer') RETURNING id"
        )
        self._newcomer = _one(row)
        self.conn.commit()

    def leave(self) -> None:
        """
        Untimed: the last newcomer leaves, so the next scenario sees `size` members again.
        """
        if self._newcomer is not None:
            self.conn.execute(
                "DELETE FROM public.group_members WHERE group_id = %s AND user_id = %s",
                (self.id, self._newcomer),
            )
            self.conn.commit()
            self._newcomer = None

    def join(self) -> None:
        self._run(
            "INSERT INTO public.group_members (group_id, user_id) VALUES (%s, %s)",
            (self.id, self._newcomer),
        )

    def prompt(self) -> None:
        self._day += datetime.timedelta(days=1)
        self._run(
            "INSERT INTO public.prompts (group_id, local_date, text, category, source)"
            " VALUES (%s, %s, 'Bench prompt?', 'bench', 'manual')",
            (self.id, self._day),
        )


def set_trigger(conn: psycopg.Connection[Any], table: str, *, enabled: bool) -> None:
    action = "ENABLE" if enabled else "DISABLE"
    conn.execute(f"ALTER TABLE public.{table} {action} TRIGGER {TRIGGERS[table]}")
    conn.commit()


def clear_jobs(conn: psycopg.Connection[Any]) -> None:
    conn.execute("DELETE FROM procrastinate_jobs")
    conn.execute("DELETE FROM broseph.job_records")
    conn.commit()


def notification_jobs(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM broseph.job_records"
        " WHERE job_type IN ('DeliverGroupEvent', 'SendNotification', 'NotifyMembers')"
    )
    return int(_one(row))


def _one(cursor: psycopg.Cursor[Any]) -> Any:
    row = cursor.fetchone()
    assert row is not None
    return row[0]


def measure(
    conn: psycopg.Connection[Any],
    group: Group,
    table: str,
    statement: Callable[[], None],
    before: Callable[[], None],
    repeats: int,
) -> tuple[list[float], list[float], list[float], list[float], list[float], int]:
    """
    (with-trigger ms, baseline ms, the same two of the INSERT alone, the notify trigger's own
    time by EXPLAIN ANALYZE, jobs per run): INSERT + COMMIT, the two alternating; then as many
    runs under EXPLAIN ANALYZE.
    """
    timed: dict[bool, list[float]] = {True: [], False: []}
    alone: dict[bool, list[float]] = {True: [], False: []}
    jobs = 0
    for _ in range(repeats):
        for enabled in (False, True):
            set_trigger(conn, table, enabled=enabled)
            before()
            start_jobs = notification_jobs(conn)
            started = time.perf_counter()
            statement()
            inserted = time.perf_counter()
            conn.commit()
            timed[enabled].append((time.perf_counter() - started) * 1000)
            alone[enabled].append((inserted - started) * 1000)
            if enabled:
                jobs = notification_jobs(conn) - start_jobs
    set_trigger(conn, table, enabled=True)
    group.explain, group.trigger_ms = True, []
    for _ in range(repeats):
        before()
        statement()
        conn.commit()
    group.explain = False
    return timed[True], timed[False], alone[True], alone[False], group.trigger_ms, jobs


def scenarios(conn: psycopg.Connection[Any], group: Group, repeats: int) -> list[Result]:
    label = f"{group.size} members"
    runs = [
        ("message, first in a while", "messages", group.message, lambda: clear_jobs(conn)),
        ("message, coalesced", "messages", group.message, lambda: None),
        ("member joins", "group_members", group.join, group.new_profile),
        ("prompt stored", "prompts", group.prompt, lambda: clear_jobs(conn)),
    ]
    results = []
    for name, table, statement, before in runs:
        with_trigger, base, statement_with, statement_base, trigger, jobs = measure(
            conn, group, table, statement, before, repeats
        )
        group.leave()
        results.append(
            Result(
                label,
                name,
                jobs,
                statistics.median(with_trigger),
                _p95(with_trigger),
                statistics.median(base),
                statistics.median(statement_with),
                statistics.median(statement_base),
                statistics.median(trigger),
            )
        )
    return results


def _p95(samples: list[float]) -> float:
    return sorted(samples)[max(0, round(0.95 * len(samples)) - 1)]


SIZES = (6, 600, 6000)
SMOKE_SIZES = (6, 60, 600)


def measure_all(url: str, *, sizes: tuple[int, ...], repeats: int) -> list[Result]:
    """
    Every scenario for each group size, on a migrated database.
    """
    with psycopg.connect(url) as conn:
        results = []
        for size in sizes:
            results += scenarios(conn, Group(conn, size), repeats)
        return results


def run(server_url: str, *, sizes: tuple[int, ...], repeats: int) -> list[Result]:
    """
    The measurements, on a throwaway database of the server at `server_url`.
    """
    with scratch_database(server_url) as url:
        asyncio.run(migrate.migrate(url))
        return measure_all(url, sizes=sizes, repeats=repeats)


# --- as one of `python -m bench`'s benchmarks (bench/harness.py) -----------------------------

number = 9
title = "Notification triggers in the inserting transaction"
_SCENARIOS = (
    ("message_first", "message, first in a while"),
    ("message_coalesced", "message, coalesced"),
    ("member_joins", "member joins"),
    ("prompt_stored", "prompt stored"),
)
_GROUPS = (("small", "small group"), ("medium", "medium group"), ("large", "large group"))
_PER_SCENARIO = tuple(
    Metric(
        f"notify_{group}_{key}",
        f"(9) {label}: {name}, INSERT + COMMIT",
        "ms",
        baseline="the same statement, notification trigger disabled",
        decimals=2,
    )
    for group, label in _GROUPS
    for key, name in _SCENARIOS
)
_TRIGGER_TIME = tuple(
    Metric(
        f"notify_{group}_trigger",
        f"(9) {label}: the notify trigger's own time (EXPLAIN ANALYZE), slowest scenario",
        "ms",
        decimals=2,
    )
    for group, label in _GROUPS
)
metrics = (
    *_PER_SCENARIO,
    *_TRIGGER_TIME,
    Metric(
        "notify_growth",
        "(9) flatness: the notify trigger's own time (EXPLAIN ANALYZE), large group − small"
        " group, worst scenario",
        "ms",
        target=at_most(1, "ms"),
        decimals=2,
    ),
    Metric(
        "notify_jobs_per_event",
        "(9) jobs enqueued per event, largest of any scenario",
        "count",
        target=at_most(1),
    ),
)


async def rounds(ctx: Context) -> AsyncIterator[Repetition]:
    sizes = SMOKE_SIZES if ctx.smoke else SIZES
    runs = ctx.size(full=15, smoke=2)
    ctx.note(
        f"(9) groups of {', '.join(f'{n:,}' for n in sizes)} members (small, medium, large); "
        f"{runs} alternating runs per side per repetition, medians."
    )
    for _ in range(ctx.reps):
        await ctx.db.reset()
        results = await asyncio.to_thread(measure_all, ctx.db.url, sizes=sizes, repeats=runs)
        keys = [f"notify_{group}_{key}" for group, _ in _GROUPS for key, _ in _SCENARIOS]
        sample: Repetition = {
            key: Sample(r.median_ms, r.base_median_ms) for key, r in zip(keys, results, strict=True)
        }
        n = len(_SCENARIOS)
        small, large = results[:n], results[-n:]
        for index, (group, _) in enumerate(_GROUPS):
            own = results[index * n : (index + 1) * n]
            sample[f"notify_{group}_trigger"] = Sample(max(r.trigger_ms for r in own))
        sample["notify_growth"] = Sample(
            max(lg.trigger_ms - sm.trigger_ms for sm, lg in zip(small, large, strict=True))
        )
        sample["notify_jobs_per_event"] = Sample(float(max(r.jobs for r in results)))
        yield sample


def table(results: list[Result], *, repeats: int) -> str:
    lines = [
        "Notification triggers: INSERT + COMMIT of one row, with the trigger vs the same "
        f"statement without it ({repeats} runs each, alternating)",
        f"{'group':<14} {'scenario':<26} {'jobs':>5} {'median ms':>10} {'p95 ms':>8}"
        f" {'baseline ms':>12} {'ratio':>6}",
    ]
    for r in results:
        lines.append(
            f"{r.group:<14} {r.scenario:<26} {r.jobs:>5} {r.median_ms:>10.2f} {r.p95_ms:>8.2f}"
            f" {r.base_median_ms:>12.2f} {r.ratio:>6.2f}"
        )
    return "\n".join(lines)


def main(
    repeats: Annotated[int, typer.Option(help="Timed runs per scenario (each side).")] = 30,
    smoke: Annotated[
        bool, typer.Option(help="6, 60, 600 members, 3 runs: checks it runs.")
    ] = False,
) -> None:
    """
    Time the inserting transaction with and without the notification triggers.
    """
    url = os.environ.get("DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not url:
        raise typer.BadParameter("set DATABASE_URL or TEST_DATABASE_URL")
    sizes = SIZES
    if smoke:
        sizes, repeats = SMOKE_SIZES, 3
    typer.echo(table(run(url, sizes=sizes, repeats=repeats), repeats=repeats))


if __name__ == "__main__":
    typer.run(main)
