"""
Where the CPU went during a measured interval, per process, from Linux's /proc.

Only what is measured is counted: the processes of a group (bench worker subprocesses, or this
process for what it hosts), and the Postgres backends of THIS benchmark database that serve them —
found in `pg_stat_activity` (datname = the bench database) and told apart by their
`application_name` (each bench worker connects with its own, `PGAPPNAME`). Other databases'
backends on the same server (other people's tests), the checkpointer, the WAL writer, and
other Postgres processes are not in any figure; the machine's busy share is reported beside, as
context.

Backends come and go during an interval (a pool opens a connection, a producer closes its
own), so a sampler thread reads `pg_stat_activity` and each backend's /proc/<pid>/stat every
`sample_every` seconds: a backend that exits counts what it had spent at its last sighting (at
most one period of its CPU is lost; bench workers keep their pools' connections for the whole
interval, so this is a safety net), one that appears counts its whole life. The sampler talks
to another database (its own statements never count in the bench database's figures), and its
thread's CPU is taken out of this process's figure.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

_TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")
_SCHEDSTAT = (PROC / "self" / "schedstat").exists()
_BACKENDS = (
    "SELECT a.pid, coalesce(l.application_name, a.application_name)"
    " FROM pg_stat_activity a LEFT JOIN pg_stat_activity l ON l.pid = a.leader_pid"
    " WHERE a.datname = %s"
)


def process_cpu(
    pid: int, proc: Path = PROC, *, single_threaded: bool = False
) -> tuple[float, int] | None:
    """
    (CPU seconds so far — user + system —, start time in ticks) of a process, or None if gone.
    The start time tells a reused pid from the process seen before. For a single-threaded
    process (a Postgres backend) the CPU time is the scheduler's (nanoseconds,
    /proc/<pid>/schedstat, which is its main thread's alone) where the kernel keeps it; else
    utime + stime of all its threads, living and exited (clock ticks: 10 ms).
    """
    precise = single_threaded and _SCHEDSTAT
    try:
        stat = (proc / str(pid) / "stat").read_text()
        schedstat = (proc / str(pid) / "schedstat").read_text() if precise else ""
    except OSError:
        return None  # gone
    # Fields after the command name (which may hold spaces and parentheses): state is [0],
    # utime [11], stime [12], starttime [19].
    after_name = stat.rsplit(")", 1)[1].split()
    started = int(after_name[19])
    if schedstat:
        return int(schedstat.split()[0]) / 1e9, started
    return (int(after_name[11]) + int(after_name[12])) / _TICKS, started


def machine_ticks(proc: Path = PROC) -> tuple[float, float]:
    """
    (busy, total) ticks of all cores so far, from the first line of /proc/stat.
    """
    fields = [float(v) for v in (proc / "stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


@dataclass(frozen=True)
class Group:
    """
    What one figure counts: these processes (and/or this one), plus the bench database's
    backends whose application_name is one of `app_names`.
    """

    name: str
    pids: tuple[int, ...] = ()
    app_names: tuple[str, ...] = ()
    # This process (less the sampler thread): e.g. the stand-in servers it hosts.
    this_process: bool = False


@dataclass(frozen=True)
class GroupCpu:
    processes: float
    backends: float

    @property
    def total(self) -> float:
        return self.processes + self.backends


@dataclass(frozen=True)
class CpuUsage:
    """
    CPU seconds spent in an interval: per group, the database's other backends, the machine.
    """

    wall: float
    # Busy share of all cores (every process on the machine): the load, as context.
    busy_share: float
    machine: float
    groups: dict[str, GroupCpu]
    # This database's backends of no group (the harness's own connections).
    other_backends: float


@dataclass
class _Backend:
    app: str
    first: float
    last: float


@dataclass
class _State:
    backends: dict[tuple[int, int], _Backend] = field(default_factory=dict)
    samples: int = 0


class CpuMeter:
    """
    start() before the interval, stop() after it; `sample_every=None` samples only at both
    ends (enough when no backend comes or goes: one connection held throughout).
    """

    def __init__(
        self,
        monitor_url: str,
        dbname: str,
        groups: Sequence[Group],
        *,
        sample_every: float | None = 0.1,
        proc: Path = PROC,
    ) -> None:
        self.monitor_url, self.dbname, self.groups = monitor_url, dbname, list(groups)
        self.sample_every, self.proc = sample_every, proc
        self._state = _State()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection[tuple[int, str]] | None = None
        self._sampler_cpu = 0.0

    def start(self) -> None:
        self._conn = psycopg.connect(self.monitor_url, autocommit=True)
        self._pids_before = {pid: self._cpu(pid) for g in self.groups for pid in g.pids}
        self._self_before = time.process_time()
        self._machine_before = machine_ticks(self.proc)
        self._started = time.monotonic()
        self._sample(at_start=True)
        if self.sample_every:
            self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
            self._thread.start()

    def stop(self) -> CpuUsage:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        self._sample(at_start=False)
        wall = time.monotonic() - self._started
        busy_after, total_after = machine_ticks(self.proc)
        self_spent = time.process_time() - self._self_before - self._sampler_cpu
        assert self._conn is not None
        self._conn.close()
        spent: dict[str, float] = {}
        for backend in self._state.backends.values():
            spent[backend.app] = spent.get(backend.app, 0.0) + backend.last - backend.first
        groups = {}
        for g in self.groups:
            processes = sum(self._cpu(pid) - self._pids_before[pid] for pid in g.pids)
            if g.this_process:
                processes += self_spent
            groups[g.name] = GroupCpu(processes, sum(spent.pop(a, 0.0) for a in g.app_names))
        busy = busy_after - self._machine_before[0]
        total = total_after - self._machine_before[1]
        return CpuUsage(
            wall=wall,
            busy_share=busy / total if total else 0.0,
            machine=busy / _TICKS,
            groups=groups,
            other_backends=sum(spent.values()),
        )

    def _cpu(self, pid: int) -> float:
        found = process_cpu(pid, self.proc)
        if found is None:
            raise RuntimeError(f"measured process {pid} is gone")
        return found[0]

    def _run(self) -> None:
        period = self.sample_every or 1.0
        while not self._stop.wait(period):
            self._sample(at_start=False)
        self._sampler_cpu = time.thread_time()

    def _sample(self, *, at_start: bool) -> None:
        assert self._conn is not None
        rows = self._conn.execute(_BACKENDS, (self.dbname,)).fetchall()
        state = self._state
        for pid, app in rows:
            found = process_cpu(pid, self.proc, single_threaded=True)
            if found is None:
                continue  # exited between the query and the read: its last sighting stands
            seconds, started = found
            seen = state.backends.get((pid, started))
            if seen is None:
                # Present at the start: counted from now; new since: its whole life.
                seen = state.backends[(pid, started)] = _Backend(
                    app or "", seconds if at_start else 0.0, seconds
                )
            seen.last = seconds
        state.samples += 1


def server_is_local(monitor_url: str, proc: Path = PROC) -> bool:
    """
    Whether the server's backends are processes of this machine (their CPU can be read).
    """
    with psycopg.connect(monitor_url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    if row is None:
        return False
    try:
        return (proc / str(row[0]) / "comm").read_text().strip() == "postgres"
    except OSError:
        return False
