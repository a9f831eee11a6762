"""
The dashboard's connections: a small pool opened on first use, with the worker's settings.

Opened lazily rather than in a lifespan handler because an app mounted inside another (the
ASGI face) never sees a lifespan of its own. Statements run in autocommit, each its own
transaction (what a transaction pooler such as Supavisor :6543 or PgBouncer serves);
PREPARED_STATEMENTS=false turns prepared statements off for them, as for the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from broseph import db
from broseph.settings import Settings

Conn = psycopg.AsyncConnection[DictRow]


class Database:
    def __init__(self, settings: Settings, *, max_size: int = 4) -> None:
        self.settings = settings
        self._max_size = max_size
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        pool = self._pool or await self._open()
        async with pool.connection() as conn:
            yield conn

    async def listen_connection(self) -> psycopg.AsyncConnection[DictRow]:
        """
        A connection of its own for LISTEN (a session: never through a transaction pooler).
        """
        return await db.connect(self.settings, autocommit=True)

    async def _open(self) -> AsyncConnectionPool[Conn]:
        async with self._lock:
            if self._pool is None:
                pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
                    db.database_url(self.settings),
                    min_size=1,
                    max_size=self._max_size,
                    kwargs={
                        "autocommit": True,
                        "row_factory": dict_row,
                        **db.connection_kwargs(self.settings),
                    },
                    # A restarted database leaves dead connections in the pool: check first.
                    check=AsyncConnectionPool.check_connection,
                    timeout=10,
                    open=False,
                )
                await pool.open()
                self._pool = pool
            return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
