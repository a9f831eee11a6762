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


async def describe(db_url: str, redis_url: str) -> dict[str, str]:
    """
    nproc, memory, CPU model, load; Python, PostgreSQL, procrastinate, psycopg, Redis, bullmq.
    """
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT current_setting('server_version'), current_setting('synchronous_commit'),"
            " current_setting('shared_buffers')"
        )
        row = await cur.fetchone()
    assert row is not None
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
    load = os.getloadavg()
    return {
        "nproc": str(os.cpu_count()),
        "memory": f"{_memory_gib():.1f} GiB",
        "cpu": _cpu_model(),
        "load": f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min, at start)",
        "python": platform.python_version(),
        "postgresql": f"{row[0]} (synchronous_commit={row[1]}, shared_buffers={row[2]})",
        "procrastinate": _version("procrastinate"),
        "psycopg": _version("psycopg"),
        "redis": redis_version,
        "bullmq": f"{_version('bullmq')} (Python)",
        "pgbench": pgbench_version,
    }


def report(about: dict[str, str], command: str, reps: int, smoke: bool, seconds: float) -> str:
    kind = "smoke (small N: shows it runs, not how fast)" if smoke else "full"
    lines = [
        f"## Broseph jobs benchmarks — {kind} run",
        "",
        f"- Command: `{command}` ({reps} repetitions, {seconds / 60:.1f} min)",
        f"- Machine: {about['nproc']} CPUs ({about['cpu']}), {about['memory']} memory;"
        f" load {about['load']}",
        f"- Versions: Python {about['python']}; PostgreSQL {about['postgresql']};"
        f" procrastinate {about['procrastinate']}; psycopg {about['psycopg']};"
        f" Redis {about['redis']}; bullmq {about['bullmq']}; {about['pgbench']}",
        "",
    ]
    return "\n".join(lines)
