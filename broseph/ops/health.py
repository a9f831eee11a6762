"""
`broseph health`: is the job service able to do its work right now?

Healthy means: the database answers, every migration is applied (`broseph.migrate.pending`),
procrastinate's schema is the installed procrastinate's and what broseph relies on and put on it
is in place (`broseph.procrastinate_schema.check`, as a starting worker checks), the lock-down
holds (no client role reaches the queue or broseph's internals, RLS is on where broseph put it:
`broseph.security_findings()`, migrations/always/lockdown.sql), at least `min_workers` workers
have a heartbeat younger than RESCUE_AFTER_SECONDS, and (when a limit is given) no runnable job
has waited longer than `max_pending_age` seconds. The report also carries the procrastinate
schema's level, queue depth by queue and status and the oldest pending age per queue.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from broseph import db, migrate, problems, procrastinate_schema, sql
from broseph.settings import Settings


@dataclass
class Health:
    database: bool = False
    pending_migrations: list[str] = field(default_factory=list)
    # The database's procrastinate schema level and its record, e.g. "03.04.00 (procrastinate …)".
    procrastinate_schema: str = ""
    live_workers: int = 0
    lost_workers: int = 0
    depth: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    security: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"healthy": self.healthy, **asdict(self)}


async def check(
    settings: Settings,
    *,
    min_workers: int = 1,
    max_pending_age: float | None = None,
    connect_timeout: float = 5.0,
) -> Health:
    """
    Check the service; never raises for an unreachable database (that is a finding).
    """
    health = Health()
    try:
        conn = await psycopg.AsyncConnection.connect(
            db.database_url(settings),
            autocommit=True,
            connect_timeout=max(1, round(connect_timeout)),
            **db.connection_kwargs(settings),
        )
    except psycopg.Error as exc:
        health.problems.append(f"database unreachable: {problems.connect_problem(exc)}")
        return health
    async with conn:
        health.database = True
        await _inspect(conn, health, settings, min_workers, max_pending_age)
    return health


async def _inspect(
    conn: psycopg.AsyncConnection[Any],
    health: Health,
    settings: Settings,
    min_workers: int,
    max_pending_age: float | None,
) -> None:
    health.pending_migrations = await migrate.pending(conn)
    if health.pending_migrations:
        health.problems.append(
            f"migrations not applied: {', '.join(health.pending_migrations)} (run broseph migrate)"
        )
        if migrate.PROCRASTINATE_ENTRY in health.pending_migrations:
            return  # no queue tables to look at
    report = await procrastinate_schema.check(procrastinate_schema.rows_on(conn))
    health.procrastinate_schema = report.state.describe() if report.state else ""
    health.problems += report.problems
    await _check_security(conn, health)
    workers = await sql.rows(conn, "workers")
    health.depth = await sql.rows(conn, "queue_depth")
    health.pending = await sql.rows(conn, "oldest_pending")
    health.live_workers = sum(w["heartbeat_age"] < settings.rescue_after_seconds for w in workers)
    health.lost_workers = len(workers) - health.live_workers
    if health.live_workers < min_workers:
        health.problems.append(
            f"{health.live_workers} live worker(s), at least {min_workers} expected"
            f" (heartbeat younger than {settings.rescue_after_seconds:g}s)"
        )
    if max_pending_age is not None:
        for queue in health.pending:
            if (queue["seconds"] or 0.0) > max_pending_age:
                health.problems.append(
                    f"queue {queue['queue']}: oldest pending job waited {queue['seconds']:.0f}s"
                    f" (limit {max_pending_age:g}s)"
                )


async def _check_security(conn: psycopg.AsyncConnection[Any], health: Health) -> None:
    """
    Grants and RLS as `broseph migrate`'s lock-down leaves them: a procrastinate upgrade or a
    GRANT by hand brings client access back, and the fix is to run broseph migrate again.
    """
    cur = await conn.execute(sql.query("security_check_installed"))
    row = await cur.fetchone()
    if not row or not row[0]:
        if not health.pending_migrations:
            health.problems.append(
                "the lock-down check broseph.security_findings() is missing (run broseph migrate)"
            )
        return
    try:
        cur = await conn.execute(sql.query("security_findings"))
        health.security = [str(problem) for (problem,) in await cur.fetchall()]
    except psycopg.Error as exc:
        health.problems.append(f"could not check grants: {str(exc).strip()[:200]}")
        return
    health.problems += [f"{problem} (run broseph migrate)" for problem in health.security]
