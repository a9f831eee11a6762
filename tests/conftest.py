"""
Shared fixtures: a real Postgres, a migrated template cloned per test, and an in-process worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import procrastinate
import psycopg
import pytest
from procrastinate.manager import get_channel_for_queues
from psycopg.rows import DictRow, dict_row

from broseph import migrate, services, worker
from broseph.settings import Settings
from tests import pg, settings_support

# The plain / Supabase-like database profiles of the security tests (tests/profiles.py).
from tests.profiles import (  # noqa: F401
    profile,
    profile_conn,
    profile_db_url,
    supabase_template_db,
)


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    with pg.server_url() as url:
        yield url


@pytest.fixture(scope="session")
def template_db(admin_url: str) -> Iterator[str]:
    """
    A database migrated once per session; tests clone it (CREATE DATABASE … TEMPLATE).
    """
    name = pg.create_database(admin_url, prefix="btpl")
    asyncio.run(migrate.migrate(pg.with_dbname(admin_url, name)))
    yield name
    pg.drop_database(admin_url, name)


@pytest.fixture
def db_url(admin_url: str, template_db: str) -> Iterator[str]:
    """
    A fresh, fully migrated database for this test only.
    """
    name = pg.create_database(admin_url, template=template_db)
    yield pg.with_dbname(admin_url, name)
    pg.drop_database(admin_url, name)


@pytest.fixture
def settings(db_url: str) -> Settings:
    return settings_support.worker_settings(db_url)


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[psycopg.AsyncConnection[DictRow]]:
    """
    An autocommit connection for arranging and asserting (not for the code under test).
    """
    async with await psycopg.AsyncConnection.connect(
        db_url, autocommit=True, row_factory=dict_row
    ) as connection:
        yield connection


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[procrastinate.App]:
    """
    A broseph app on the test database, opened, with services installed. Periodic tasks are
    off so every job a test sees is one it made; call them directly to test them.
    """
    application = worker.create_app(settings, periodic=False)
    async with application.open_async():
        services.install(application, services.build(settings, services.pool_of(application)))
        yield application


class RunningWorker:
    def __init__(self, app: procrastinate.App, task: asyncio.Task[None]) -> None:
        self.app = app
        self.task = task

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def start_worker(
    app: procrastinate.App,
) -> AsyncIterator[Callable[..., Awaitable[RunningWorker]]]:
    """
    Start the in-process worker (options override the settings' defaults); stopped at teardown.
    """
    running: list[RunningWorker] = []

    async def start(**options: Any) -> RunningWorker:
        opts: dict[str, Any] = {"install_signal_handlers": False, "wait": True, **options}
        before = await worker_readiness(app, opts)
        task = asyncio.create_task(app.run_worker_async(**opts))
        # Ready: registered and, with LISTEN on, listening — not a fixed sleep.
        deadline = asyncio.get_running_loop().time() + 30
        while not _ready(app, opts, before, await worker_readiness(app, opts)):
            if task.done():
                task.result()  # it failed to start: raise its error
                pytest.fail("the worker stopped before it was ready")
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail("the worker neither registered nor LISTENed within 30 s")
            await asyncio.sleep(0.01)
        handle = RunningWorker(app, task)
        running.append(handle)
        return handle

    yield start
    for handle in running:
        await handle.stop()


async def worker_readiness(app: procrastinate.App, options: dict[str, Any]) -> tuple[int, int]:
    """
    (workers registered, backends LISTENing on the last channel a worker with these options
    listens on) in the app's database. A starting worker registers, then LISTENs on its channels
    in order and waits: it is ready once the first count has grown and, with LISTEN on, the
    second too.
    """
    merged = {**app.worker_defaults, **options}
    last = list(get_channel_for_queues(merged.get("queues")))[-1]
    async with services.pool_of(app).connection() as conn:
        cur = await conn.execute(
            "SELECT (SELECT count(*) FROM procrastinate_workers),"
            " (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            "   AND state = 'idle' AND rtrim(query, '; ') = %s)",
            (f'LISTEN "{last}"',),
        )
        row = await cur.fetchone()
    assert row is not None
    return (int(row[0]), int(row[1]))


def _ready(
    app: procrastinate.App, options: dict[str, Any], before: tuple[int, int], now: tuple[int, int]
) -> bool:
    listens = {**app.worker_defaults, **options}.get("listen_notify", True)
    return now[0] > before[0] and (not listens or now[1] > before[1])


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], *, within: float = 15.0, interval: float = 0.05
) -> None:
    """
    Poll until the predicate holds; fail the test with a clear message after `within` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await predicate():
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {within}s")
        await asyncio.sleep(interval)


def venv_bin(name: str) -> Path:
    """
    A console script installed in the running interpreter's environment (CI does not activate
    the venv, so PATH alone would not find it).
    """
    return Path(sys.executable).parent / name


def env_with(**extra: str) -> dict[str, str]:
    """
    The current environment plus overrides, for subprocess tests.
    """
    env = dict(os.environ)
    env.update(extra)
    return env
