"""
The machine and the versions a report was measured on (printed above every table).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import platform
import shutil
from pathlib import Path

import psycopg
import redis.asyncio as aioredis

from bench import cpu
from bench.dbstats import DbStats


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return float("nan")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def pgbench_path() -> str | None:
    return shutil.which("pgbench") or next(
        (p for p in ("/usr/lib/postgresql/15/bin/pgbench",) if Path(p).exists()), None
    )


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


async def describe(db_url: str, redis_url: str, stats: DbStats | None = None) -> dict[str, str]:
    """
    nproc, memory, CPU model, load; Python, PostgreSQL (and the settings that move the figures),
    procrastinate, psycopg, PgQueuer, Redis, bullmq; how the accounting could measure.
    """
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT current_setting('server_version'), current_setting('synchronous_commit'),"
            " current_setting('shared_buffers'), current_setting('autovacuum'),"
            " current_setting('fsync'), current_setting('shared_preload_libraries')"
        )
        row = await cur.fetchone()
    assert row is not None
    local = cpu.server_is_local(stats.monitor_url) if stats else False
    client = aioredis.from_url(redis_url)
    try:
        redis_version = str((await client.info("server")).get("redis_version", "?"))
    except Exception as exc:  # reported, not fatal: only benchmark 5 needs Redis
        redis_version = f"unreachable ({exc})"
    finally:
        await client.aclose()
    pgbench = pgbench_path()
    pgbench_version = "not found"
    if pgbench:
        proc = await asyncio.create_subprocess_exec(
            pgbench, "--version", stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        pgbench_version = out.decode().strip()
    return {
        "nproc": str(os.cpu_count()),
        "memory": f"{_memory_gib():.1f} GiB",
        "cpu": _cpu_model(),
        "load": load(),
        "python": platform.python_version(),
        "postgresql": f"{row[0]} (shared_buffers={row[2]})",
        "pg_settings": f"autovacuum={row[3]}, synchronous_commit={row[1]}, fsync={row[4]}",
        "accounting": _accounting(stats, local, str(row[5])),
        "procrastinate": _version("procrastinate"),
        "psycopg": _version("psycopg"),
        "pgqueuer": _version("pgqueuer"),
        "redis": redis_version,
        "bullmq": f"{_version('bullmq')} (Python)",
        "pgbench": pgbench_version,
    }


def _accounting(stats: DbStats | None, local: bool, preload: str) -> str:
    if stats is None:
        return "none"
    cpu_text = (
        "CPU per process: the measured workers and this database's backends"
        if local
        else "the server is not on this machine: its backends' CPU is not measured"
    )
    wal = (
        "WAL: this database's records (pg_walinspect)"
        if stats.walinspect
        else "WAL: server-wide LSN delta (no pg_walinspect): other databases' writes included"
    )
    statements = (
        "pg_stat_statements loaded"
        if "pg_stat_statements" in preload
        else "pg_stat_statements not loaded (round trips counted in the clients' psycopg)"
    )
    return f"{cpu_text}; {wal}; transactions: pg_stat_database of this database; {statements}"


def report(about: dict[str, str], command: str, reps: int, smoke: bool, seconds: float) -> str:
    kind = "smoke (small N: shows it runs, not how fast)" if smoke else "full"
    lines = [
        f"## Broseph jobs benchmarks — {kind} run",
        "",
        f"- Command: `{command}` ({reps} repetitions, {seconds / 60:.1f} min; benchmarks one"
        " after another, never two at once)",
        f"- Machine: {about['nproc']} CPUs ({about['cpu']}), {about['memory']} memory;"
        f" load {about['load']} at start, {about.get('load_end', '?')} at the end"
        " (1 / 5 / 15 min)",
        f"- PostgreSQL {about['postgresql']}: {about['pg_settings']}",
        f"- Accounting: {about['accounting']}",
        f"- Versions: Python {about['python']}; procrastinate {about['procrastinate']};"
        f" psycopg {about['psycopg']}; PgQueuer {about['pgqueuer']}; Redis {about['redis']};"
        f" bullmq {about['bullmq']}; {about['pgbench']}",
        "",
    ]
    return "\n".join(lines)
