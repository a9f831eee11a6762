"""
Live pages: one watcher per dashboard process notices changes; every open page hears of them
through server-sent events (`/events`) and reloads what it shows.

The watcher reads a change marker (`change_marker` in broseph/queries/overview.sql: the newest
procrastinate event — every status change of every job writes one — the quarantine and the
workers) every DASHBOARD_POLL_SECONDS, and at once when procrastinate's NOTIFY says a job was
deferred or retried (with LISTEN_NOTIFY=true; behind a transaction pooler, where LISTEN is not
available, it only polls). One query per interval per process, however many pages are open;
none when no page is open. A `tick` event every TICK_SECONDS refreshes pages that show ages.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import structlog

from broseph import sql
from broseph.dashboard.database import Database

log = structlog.get_logger("broseph.dashboard")
TICK_SECONDS = 15.0
# procrastinate's own channel: every deferred (and, from broseph, retried) job is announced here.
CHANNEL = "procrastinate_any_queue_v1"


class Watcher:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.poll_seconds = database.settings.dashboard_poll_seconds
        self.listen = database.settings.listen_notify
        self.version = 0
        self._marker: Any = None
        self._changed = asyncio.Condition()
        self._listeners = 0
        self._task: asyncio.Task[None] | None = None

    async def events(self) -> AsyncIterator[str]:
        """
        The event stream of one page: `change` when something changed, `tick` now and then.
        """
        self._listeners += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        try:
            seen = self.version
            yield f"retry: 3000\nevent: hello\ndata: {seen}\n\n"
            while True:
                newer = functools.partial(self._newer_than, seen)
                try:
                    async with self._changed:
                        await asyncio.wait_for(self._changed.wait_for(newer), TICK_SECONDS)
                except TimeoutError:
                    yield "event: tick\ndata: \n\n"
                    continue
                seen = self.version
                yield f"event: change\ndata: {seen}\n\n"
        finally:
            self._listeners -= 1

    def _newer_than(self, seen: int) -> bool:
        return self.version != seen

    async def _run(self) -> None:
        listener: psycopg.AsyncConnection[Any] | None = None
        try:
            while self._listeners > 0:
                try:
                    if self.listen and listener is None:
                        listener = await self.database.listen_connection()
                        await listener.execute(f"LISTEN {CHANNEL}")
                    await self._check()
                    await self._wait(listener)
                except (psycopg.Error, OSError) as exc:
                    log.warning("dashboard_watch_failed", error=type(exc).__name__)
                    if listener is not None:
                        await listener.close()
                        listener = None
                    await asyncio.sleep(self.poll_seconds)
        finally:
            if listener is not None:
                with contextlib.suppress(psycopg.Error):
                    await listener.close()

    async def _check(self) -> None:
        async with self.database.connection() as conn:
            cur = await conn.execute(sql.query("change_marker"))
            marker = await cur.fetchone()
        if marker != self._marker:
            first = self._marker is None
            self._marker = marker
            if not first:
                async with self._changed:
                    self.version += 1
                    self._changed.notify_all()

    async def _wait(self, listener: psycopg.AsyncConnection[Any] | None) -> None:
        if listener is None:
            await asyncio.sleep(self.poll_seconds)
            return
        async for _ in listener.notifies(timeout=self.poll_seconds, stop_after=1):
            break
