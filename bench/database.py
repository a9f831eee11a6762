"""
The benchmark database: a fresh, migrated database on the local server (dropped afterwards), or
the one BENCH_DATABASE_URL names — which must be an empty, throwaway database, because every
round starts by emptying the queue, the records and the domain tables.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from broseph import migrate
from broseph.jobs import registry
from broseph.jobs.base import JobType

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"

# Emptied between rounds (those that exist: other areas add tables as they land). Not
# procrastinate_workers: live bench workers are registered there.
_RESET_TABLES = (
    "public.procrastinate_events",
    "public.procrastinate_periodic_defers",
    "public.procrastinate_jobs",
    "broseph.job_records",
    "broseph.ingress_receipts",
    "broseph.ingress_quarantine",
    "broseph.push_outbox",
    "public.notifications",
    "public.prompts",
    "public.group_members",
    "public.device_tokens",
    "public.groups",
    "public.profiles",
    "public.pgqueuer",
    "public.pgqueuer_statistics",
    "public.pgqueuer_log",
)
# What must be empty before the bench may use a database it did not create.
_MUST_BE_EMPTY = ("broseph.job_records", "public.procrastinate_jobs", "public.groups")


class NotAThrowawayDatabase(RuntimeError):
    """
    BENCH_DATABASE_URL points at a database holding data: the bench would wipe it.
    """


async def one(conn: psycopg.AsyncConnection[Any], query: Any, params: Any = None) -> Any:
    """
    The first row of a statement that always returns one (a count, an aggregate, RETURNING).
    """
    cur = await conn.execute(query, params)
    row = await cur.fetchone()
    if row is None:
        raise LookupError(f"no row from {query!r}")
    return row


def with_dbname(url: str, dbname: str) -> str:
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo(**params)  # type: ignore[arg-type]


@dataclass
class BenchDatabase:
    url: str
    # Set when the bench created the database (and so drops it at the end).
    admin_url: str | None = None
    created: str | None = None

    @classmethod
    async def open(cls, url: str | None, *, server: str = LOCAL_SERVER) -> BenchDatabase:
        """
        BENCH_DATABASE_URL (migrated here, refused unless empty), else a fresh database created
        on `server` (an admin URL).
        """
        if url:
            bench = cls(url=url)
            await migrate.migrate(url)
            await bench._check_empty()
            return bench
        name = f"bench_{uuid.uuid4().hex[:12]}"
        async with await psycopg.AsyncConnection.connect(server, autocommit=True) as conn:
            await conn.execute(f'CREATE DATABASE "{name}"'.encode())
        bench = cls(url=with_dbname(server, name), admin_url=server, created=name)
        try:
            await migrate.migrate(bench.url)
        except BaseException:
            await bench.close()
            raise
        return bench

    @property
    def name(self) -> str:
        return str(conninfo_to_dict(self.url)["dbname"])

    @property
    def monitor_url(self) -> str:
        """
        Another database of the same server, for the harness's monitoring queries (which must
        not count among the bench database's transactions).
        """
        return self.admin_url or with_dbname(self.url, "postgres")

    async def close(self) -> None:
        if self.created and self.admin_url:
            async with await psycopg.AsyncConnection.connect(
                self.admin_url, autocommit=True
            ) as conn:
                await conn.execute(
                    f'DROP DATABASE IF EXISTS "{self.created}" WITH (FORCE)'.encode()
                )
            self.created = None

    async def connect(self, *, autocommit: bool = False) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(self.url, autocommit=autocommit)

    async def _check_empty(self) -> None:
        async with await self.connect(autocommit=True) as conn:
            for table in _MUST_BE_EMPTY:
                cur = await conn.execute(f"SELECT EXISTS (SELECT 1 FROM {table})".encode())
                row = await cur.fetchone()
                if row and row[0]:
                    raise NotAThrowawayDatabase(
                        f"BENCH_DATABASE_URL: {table} is not empty. The bench empties the queue, "
                        "the job records and the domain tables; point it at an empty database."
                    )

    async def reset(self) -> None:
        """
        Empty the queue, the records and the domain tables (a round starts from nothing).
        """
        async with await self.connect(autocommit=True) as conn:
            cur = await conn.execute(
                "SELECT t FROM unnest(%s::text[]) AS t WHERE to_regclass(t) IS NOT NULL",
                (list(_RESET_TABLES),),
            )
            tables = [str(r[0]) for r in await cur.fetchall()]
            # Idle bench workers still fetch and heartbeat; their row locks can meet the
            # TRUNCATE's table locks in the other order. The loser of a deadlock just retries.
            for attempt in range(5):
                try:
                    await conn.execute(f"TRUNCATE {', '.join(tables)} CASCADE".encode())
                    return
                except psycopg.errors.DeadlockDetected:
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.2)

    async def register(self, job_type: JobType) -> None:
        """
        Put a bench-only job type into this database's registry (never the production one).
        """
        async with await self.connect(autocommit=True) as conn:
            await registry.write(conn, [job_type])
