"""
Connection helpers (psycopg 3): one place that knows how settings map to connection options.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from broseph.settings import Settings


class DatabaseNotConfigured(RuntimeError):
    """
    No DATABASE_URL: only `broseph demo` can do without one (it starts an embedded server).
    """


def database_url(settings: Settings) -> str:
    """
    The configured URL, or a clear error telling the operator what to set.
    """
    if not settings.database_url:
        raise DatabaseNotConfigured(
            "DATABASE_URL is not set (see .env.example); `broseph demo` runs without one."
        )
    return settings.database_url


def connection_kwargs(settings: Settings) -> dict[str, Any]:
    """
    Options every connection gets. Transaction poolers (Supavisor :6543, PgBouncer) cannot
    keep server-side prepared statements, so PREPARED_STATEMENTS=false turns them off.
    """
    return {} if settings.prepared_statements else {"prepare_threshold": None}


async def connect(
    settings: Settings, *, url: str | None = None, autocommit: bool = False
) -> psycopg.AsyncConnection[DictRow]:
    """
    One connection returning dict rows; the caller owns its transaction.
    """
    return await psycopg.AsyncConnection.connect(
        url or database_url(settings),
        autocommit=autocommit,
        row_factory=dict_row,
        **connection_kwargs(settings),
    )


@contextlib.asynccontextmanager
async def autocommit(conn: psycopg.AsyncConnection[Any]) -> AsyncIterator[None]:
    """
    Run single statements on an idle pooled connection without BEGIN / COMMIT round trips; the
    connection's own mode is restored afterwards (setting it costs no round trip).
    """
    if conn.autocommit:
        yield
        return
    await conn.set_autocommit(True)
    try:
        yield
    finally:
        # A broken connection cannot be reset; the pool discards it on return anyway.
        with contextlib.suppress(psycopg.Error):
            await conn.set_autocommit(False)


@contextlib.asynccontextmanager
async def statements(pool: AsyncConnectionPool[Any]) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """
    A pooled connection for work where every statement stands alone: reads, and single
    statements whose triggers do the rest. Each is its own transaction — what it would be at READ
    COMMITTED inside one anyway (every statement takes a fresh snapshot) — minus the BEGIN and
    COMMIT round trips a transaction adds. Writes that must land together use
    `conn.transaction()` on an ordinary pooled connection instead.
    """
    async with pool.connection() as conn, autocommit(conn):
        yield conn
