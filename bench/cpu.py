"""
Where the CPU went during a measured interval, from Linux's /proc (the bench runs on Linux).

A wave that takes longer than its ideal either waited (slots idle: a scheduling problem) or
computed (cores busy: a cost problem). `CpuMeter` tells the two apart: the machine's busy share of
all cores, and the CPU seconds spent by chosen worker processes and by every `postgres` process
over the same interval.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")


@dataclass(frozen=True)
class CpuSnapshot:
    machine_busy: float
    machine_total: float
    # CPU seconds so far, per pid.
    processes: dict[int, float]


@dataclass(frozen=True)
class CpuUsage:
    """
    CPU spent between two snapshots, in seconds (`busy_share` is of all cores).
    """

    busy_share: float
    # Every process's CPU (busy ticks of all cores), and the shares of the workers and Postgres.
    machine: float
    workers: float
    postgres: float


def _machine() -> tuple[float, float]:
    # The first line of /proc/stat: user nice system idle iowait irq softirq steal ...
    fields = [float(v) for v in (_PROC / "stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _process_seconds(pid: int) -> float | None:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None  # gone between listing and reading
    # utime and stime are fields 14 and 15; the command name (field 2) may contain spaces.
    after_name = stat.rsplit(")", 1)[1].split()
    return (int(after_name[11]) + int(after_name[12])) / _TICKS


def _postgres_pids() -> list[int]:
    found = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


class CpuMeter:
    """
    snapshot() before, usage(before, worker pids) after. Postgres backends that start in
    between (new connections) count from zero; ones that exit in between are lost, which
    undercounts (a worker's pool keeps its connections for the whole wave).
    """

    @staticmethod
    def available() -> bool:
        return (_PROC / "stat").exists()

    def snapshot(self, worker_pids: Iterable[int]) -> CpuSnapshot:
        busy, total = _machine()
        pids = [*worker_pids, *_postgres_pids()]
        seconds = {pid: s for pid in pids if (s := _process_seconds(pid)) is not None}
        return CpuSnapshot(busy, total, seconds)

    def usage(self, before: CpuSnapshot, worker_pids: Iterable[int]) -> CpuUsage:
        workers = set(worker_pids)
        after = self.snapshot(workers)
        spent = {pid: s - before.processes.get(pid, 0.0) for pid, s in after.processes.items()}
        total = after.machine_total - before.machine_total
        return CpuUsage(
            busy_share=(after.machine_busy - before.machine_busy) / total if total else 0.0,
            machine=(after.machine_busy - before.machine_busy) / _TICKS,
            workers=sum(s for pid, s in spent.items() if pid in workers),
            postgres=sum(s for pid, s in spent.items() if pid not in workers),
        )
