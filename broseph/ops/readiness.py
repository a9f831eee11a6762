"""
What /readyz asks (broseph/ops/probes.py), per process:

- worker: `database`, `migrations`, `listen` (when LISTEN_NOTIFY is on);
- ingress: `database`, `migrations`, then `redis` and `consuming` (broseph/ingress/probes.py);
- dashboard: `database`, `migrations` (it LISTENs only while a page is open, and falls back to
  polling on its own, so LISTEN is not a condition of it serving).

The database checks use a connection of their own, opened on the first probe and reopened after
it breaks: a probe never waits behind the process's busy pool, and never takes a connection its
work needs.
"""

from __future__ import annotations

from typing import Any

import psycopg

from broseph import db, migrate, problems
from broseph.engine import WorkerConnector
from broseph.ops.probes import NotReady
from broseph.settings import Settings

# Seconds a probe waits for a new database connection (libpq's minimum is 2).
CONNECT_TIMEOUT = 2


class Database:
    """
    The `database` and `migrations` checks, on the probes' own connection.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def reachable(self) -> None:
        """
        `SELECT 1` answers; a connection the server dropped is replaced once, at once, so the
        first probe after an outage already passes.
        """
        if self._conn is not None:
            try:
                await self._conn.execute("SELECT 1")
                return
            except psycopg.Error:
                await self.close()
        try:
            self._conn = await psycopg.AsyncConnection.connect(
                db.database_url(self._settings),
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT,
                application_name="broseph-probe",
                **db.connection_kwargs(self._settings),
            )
            await self._conn.execute("SELECT 1")
        except db.DatabaseNotConfigured as exc:
            raise NotReady(str(exc)) from None
        except psycopg.Error as exc:
            await self.close()
            raise NotReady(problems.connect_problem(exc).cause) from None

    async def migrated(self) -> None:
        """
        Every migration this code knows is applied (a new release before `broseph migrate`).
        """
        if self._conn is None:
            raise NotReady("not checked: the database is unreachable")
        try:
            missing = await migrate.pending(self._conn)
        except psycopg.Error as exc:
            await self.close()
            raise NotReady(problems.database_problem(exc).cause) from None
        if missing:
            shown = ", ".join(missing[:3]) + (" …" if len(missing) > 3 else "")
            raise NotReady(f"{len(missing)} migration(s) pending: {shown} (run broseph migrate)")

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()


async def listening(connector: WorkerConnector) -> None:
    """
    The worker's LISTEN connection is up (the connector keeps `listening`).
    """
    if not connector.listening:
        raise NotReady("LISTEN is not established (reconnecting; jobs are found by polling)")
