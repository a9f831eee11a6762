"""
Per-job accounting of a measured interval: CPU, round trips, transactions, WAL.

    interval = await accounting.begin(ctx, [cpu.Group("ours", pids, apps)], keep=...)
    ... the measured work ...
    account = await interval.end(jobs=n, settle=True)
    account.cpu_ms("ours"), account.round_trips_per_job, account.xacts_per_job,
    account.wal_per_job

- CPU (bench/cpu.py): per group, its processes plus the bench database's backends that serve
  them; the machine's busy share beside.
- Round trips (bench/roundtrips.py): the counters given — bench worker processes' shared files,
  or an in-process connection's `Counter`.
- Transactions and WAL (bench/dbstats.py): the bench database's, read after its backends have
  published; the harness's own monitoring transactions taken out.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench import cpu, dbstats, roundtrips, workers
from bench.dbstats import DbDelta, Mark
from bench.harness import Context

WORKER_APP = workers.WORKER_APP
# A harness connection to the bench database (a poller) adds this many transactions of its own
# besides its statements: measured on PostgreSQL 15 (its start-up, and one more once it has run
# a statement), tests/test_bench_smoke.py checks it.
CONNECTION_XACTS = 2
Counted = Path | roundtrips.Counter


def _read(counter: Counted) -> int:
    return roundtrips.read(counter) if isinstance(counter, Path) else counter.value


@dataclass(frozen=True)
class Account:
    jobs: int
    cpu: cpu.CpuUsage
    db: DbDelta
    round_trips: int

    def cpu_ms(self, group: str) -> float:
        """
        CPU per job of a group (processes + their backends), in ms.
        """
        return 1000 * self.cpu.groups[group].total / self.jobs

    @property
    def round_trips_per_job(self) -> float:
        return self.round_trips / self.jobs

    @property
    def xacts_per_job(self) -> float:
        return self.db.xacts / self.jobs

    @property
    def wal_per_job(self) -> float:
        """
        WAL bytes per job, full-page images apart (see DbDelta): what the code writes.
        """
        return (self.db.wal_bytes - self.db.wal_fpi_bytes) / self.jobs

    @property
    def wal_fpi_per_job(self) -> float:
        return self.db.wal_fpi_bytes / self.jobs

    def describe(self, group: str) -> str:
        """
        One line for the notes: the per-job figures and where the CPU went.
        """
        g = self.cpu.groups[group]
        wal = "" if self.db.wal_exact else " (server-wide WAL: no pg_walinspect)"
        return (
            f"{group}: {self.cpu_ms(group):.2f} ms CPU/job (process"
            f" {1000 * g.processes / self.jobs:.2f}, its backends"
            f" {1000 * g.backends / self.jobs:.2f}), {_few(self.round_trips_per_job)} round"
            f" trips, {_few(self.xacts_per_job)} transactions, {self.wal_per_job:,.0f} WAL"
            f" bytes (+ {self.wal_fpi_per_job:,.0f} of full-page images){wal}; machine"
            f" {100 * self.cpu.busy_share:.0f} % busy"
        )


def describe_sides(accounts: Mapping[str, Account], group: str = "producer") -> str:
    """
    One note line comparing sides: each side's `describe`, named after the side.
    """
    return "; ".join(
        account.describe(group).replace(group, side, 1) for side, account in accounts.items()
    )


def _few(x: float) -> str:
    # Per-job counts of a batch path are far below 1 (one transaction for 100,000 jobs).
    return f"{x:.2f}" if abs(x) >= 0.1 or x == 0 else f"{x:.5f}"


@dataclass
class Interval:
    ctx: Context
    meter: cpu.CpuMeter
    mark: Mark
    counters: Sequence[Counted]
    before: int
    keep: tuple[str, ...]

    _usage: cpu.CpuUsage | None = None
    _trips: int = 0

    def stop(self) -> None:
        """
        Close the interval's CPU and round-trip counts now (before closing an in-process
        connection whose backend is measured); end() reads the database's figures.
        """
        if self._usage is None:
            self._usage = self.meter.stop()
            self._trips = sum(_read(c) for c in self.counters) - self.before

    async def end(
        self,
        jobs: int,
        *,
        settle: bool,
        harness_xacts: int = 0,
        db: bool = True,
        keep: tuple[str, ...] | None = None,
        background: float = 0.0,
    ) -> Account:
        """
        Close the interval (if stop() has not) and read its figures; `settle` when bench
        worker processes ran in it, `harness_xacts` as DbStats.since; `db=False` skips
        transactions and WAL (when no figure uses them: they cost a settle); `keep` overrides
        begin()'s (e.g. () once an in-process measured connection has been closed).
        """
        self.stop()
        assert self._usage is not None
        usage, trips = self._usage, self._trips
        assert self.ctx.stats is not None
        if not db:
            # Not read now: the next mark waits for what bench workers still hold back.
            self.ctx.stats.unsettled = self.ctx.stats.unsettled or settle
            return Account(jobs, usage, DbDelta(0, 0, False, 0), trips)
        delta = await self.ctx.stats.since(
            self.mark,
            settle=settle,
            keep=self.keep if keep is None else keep,
            harness_xacts=harness_xacts,
            background=background,
        )
        return Account(jobs, usage, delta, trips)


async def begin(
    ctx: Context,
    groups: Sequence[cpu.Group],
    *,
    counters: Sequence[Counted] = (),
    keep: tuple[str, ...] = (WORKER_APP,),
    sample_every: float | None = 0.1,
) -> Interval:
    """
    Open an interval now. `keep`: application_name prefixes of backends that stay through it
    (bench workers); every other backend of the bench database must have gone first.
    """
    assert ctx.stats is not None, "the run opens DbStats (harness.Context.stats)"
    mark = await ctx.stats.mark(keep)
    meter = cpu.CpuMeter(ctx.stats.monitor_url, ctx.stats.dbname, groups, sample_every=sample_every)
    before = sum(_read(c) for c in counters)
    meter.start()
    return Interval(ctx, meter, mark, counters, before, keep)


PRODUCER_APP = "bench-producer"
Work = Callable[[psycopg.AsyncConnection[Any]], Awaitable[None]]


async def in_process(
    ctx: Context, work: Work, jobs: int, *, warm_up: Work | None = None
) -> tuple[float, Account]:
    """
    Run `work` on one connection of this process (an enqueue path) and account it: (seconds
    it took, per-job account of the group "producer" — this process and that connection's
    backend —, its round trips, the database's transactions and WAL).
    """
    group = cpu.Group("producer", app_names=(PRODUCER_APP,), this_process=True)
    async with await psycopg.AsyncConnection.connect(
        ctx.db.url, application_name=PRODUCER_APP
    ) as conn:
        if warm_up is not None:
            await warm_up(conn)
        await dbstats.flush(conn)
        trips = roundtrips.count(conn)
        interval = await begin(
            ctx, [group], counters=[trips], keep=(PRODUCER_APP,), sample_every=None
        )
        started = time.perf_counter()
        await work(conn)
        elapsed = time.perf_counter() - started
        interval.stop()
    # Closed: its backend publishes its counts as it exits (end() waits for that).
    return elapsed, await interval.end(jobs, settle=False, keep=())
