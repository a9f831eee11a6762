"""
Fixtures of the operations tests (tests/test_ops_*.py), which load this module with
`pytest_plugins = ("tests.ops_fixtures",)`: a throwaway cluster, a migrated database on it with
the test-only TestNap job type, and worker subprocesses.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from tests import ops_app, pg, pgcluster
from tests.ops_support import TEST_APP_NAME, Conn, WorkerProcess, _worker_ids


@pytest.fixture(scope="session")
def cluster() -> Iterator[pgcluster.PgCluster]:
    with pgcluster.cluster() as server:
        yield server


@pytest.fixture
async def ops_url(cluster: pgcluster.PgCluster) -> AsyncIterator[str]:
    """
    A fresh migrated database on the throwaway cluster, with TestNap installed.
    """
    if not cluster.running():
        cluster.start()  # a previous test may have failed while it was down
    url = await cluster.create_database()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await ops_app.install(conn)
    yield url
    if cluster.running():
        pg.drop_database(cluster.admin_url, str(conninfo_to_dict(url)["dbname"]))


@pytest.fixture
async def ops_conn(ops_url: str) -> AsyncIterator[Conn]:
    async with await psycopg.AsyncConnection.connect(
        ops_url, autocommit=True, row_factory=dict_row, application_name=TEST_APP_NAME
    ) as conn:
        yield conn


@pytest.fixture
def workers(ops_url: str) -> Iterator[Any]:
    """
    start(name, **env) → a running WorkerProcess registered in the database; all stopped after.
    """
    started: list[WorkerProcess] = []

    async def start(name: str = "w", **env: str) -> WorkerProcess:
        async with await psycopg.AsyncConnection.connect(ops_url, autocommit=True) as conn:
            before = await _worker_ids(conn)
            process = WorkerProcess(ops_url, name, **env)
            started.append(process)
            deadline = time.monotonic() + 30
            while True:
                new = await _worker_ids(conn) - before
                if new:
                    process.worker_id = max(new)
                    return process
                if process.process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"worker {name} did not start:\n{process.log()[-3000:]}")
                await asyncio.sleep(0.05)

    yield start
    for process in started:
        if process.process.returncode not in (None, 0, -9, -15) or os.environ.get("OPS_LOGS"):
            print(f"--- worker log {process.log_path} ---\n{process.log()[-4000:]}")
        process.stop()
