"""
Database profiles for security tests: `plain` (PostgreSQL as it comes, the stand-ins of
migrations/0001) and `supabase` (a database prepared as Supabase's init scripts prepare one —
tests/supabase_init.sql — then `broseph migrate` run exactly as a user runs it).

A test that asks for `profile_db_url` / `profile_conn` runs once per profile. A module whose every
test should run on both overrides `db_url` with `profile_db_url`, which carries the app, worker
and settings fixtures of tests/conftest.py along.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import DictRow, dict_row

from tests import pg

PROFILES = ("plain", "supabase")
CLIENT_ROLES = ("anon", "authenticated")
_HERE = Path(__file__).resolve().parent


def prepare_supabase(url: str) -> None:
    """
    Make the (empty) database at `url` look like a fresh Supabase project's.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((_HERE / "supabase_init.sql").read_bytes())
    apply_role_settings(url)


def apply_role_settings(url: str) -> None:
    """
    anon / authenticated statement timeouts for this database (not copied by TEMPLATE).
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((_HERE / "supabase_role_settings.sql").read_bytes())


def broseph_cli(url: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """
    The `broseph` console script of this environment, as an operator types it.
    """
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run(
        [str(Path(sys.executable).parent / "broseph"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def supabase_template_db(admin_url: str) -> Iterator[str]:
    """
    The Supabase-like database, migrated once per session by `broseph migrate`.
    """
    name = pg.create_database(admin_url, prefix="bsupa")
    url = pg.with_dbname(admin_url, name)
    prepare_supabase(url)
    done = broseph_cli(url, "migrate")
    assert done.returncode == 0, done.stdout + done.stderr
    yield name
    pg.drop_database(admin_url, name)


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def profile_db_url(profile: str, admin_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """
    A fresh, migrated database of this profile for this test only.
    """
    template = request.getfixturevalue(
        "template_db" if profile == "plain" else "supabase_template_db"
    )
    name = pg.create_database(admin_url, template=template)
    url = pg.with_dbname(admin_url, name)
    if profile == "supabase":
        apply_role_settings(url)
    yield url
    pg.drop_database(admin_url, name)


@pytest.fixture
async def profile_conn(profile_db_url: str) -> AsyncIterator[psycopg.AsyncConnection[DictRow]]:
    """
    An autocommit connection (as the migrating role) on this profile's database.
    """
    async with await psycopg.AsyncConnection.connect(
        profile_db_url, autocommit=True, row_factory=dict_row
    ) as connection:
        yield connection


async def as_client(
    conn: psycopg.AsyncConnection[Any], role: str, user_id: uuid.UUID | None = None
) -> None:
    """
    Inside a transaction, act as PostgREST does for a request with the anon key or a user's JWT:
    SET LOCAL ROLE, the claims in request.jwt.claims, and the role's own settings for this
    database (PostgREST applies them per request; SET ROLE alone would not).
    """
    claims: dict[str, str] = {"role": role}
    if user_id is not None:
        claims["sub"] = str(user_id)
    await conn.execute(
        "SELECT set_config(s.name, s.value, true)"
        "  FROM pg_db_role_setting d, pg_roles r,"
        "       LATERAL (SELECT split_part(c, '=', 1) AS name,"
        "                       substr(c, strpos(c, '=') + 1) AS value"
        "                  FROM unnest(d.setconfig) AS c) s"
        " WHERE d.setrole = r.oid AND r.rolname = %s"
        "   AND d.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (role,),
    )
    await conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
    await conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
