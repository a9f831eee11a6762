"""
Database profiles for security tests: `plain` (PostgreSQL as it comes, the stand-ins of
migrations/0001) and `supabase` (a database prepared as Supabase's init scripts prepare one —
tests/supabase_init.sql — then `broseph migrate` run exactly as a user runs it).

On the Supabase-like profile everything after the preparation — `broseph migrate`, the tests'
own connections, the worker — connects as SUPABASE_POSTGRES, which is what the `postgres` role is
on Supabase: not a superuser (CREATEROLE, CREATEDB, REPLICATION, BYPASSRLS), owner of the
database. The preparation itself runs as the server's superuser, as Supabase's runs as
supabase_admin.

A test that asks for `profile_db_url` / `profile_conn` runs once per profile. A module whose every
test should run on both overrides `db_url` with `profile_db_url`, which carries the app, worker
and settings fixtures of tests/conftest.py along.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import DictRow, dict_row

from tests import pg, processes

PROFILES = ("plain", "supabase")
CLIENT_ROLES = ("anon", "authenticated")
# Created (cluster-wide, race-safely) by tests/supabase_init.sql.
SUPABASE_POSTGRES = "supabase_postgres_like"
_HERE = Path(__file__).resolve().parent


def prepare_supabase(url: str) -> str:
    """
    Make the (empty) database at `url` (a superuser's URL) look like a fresh Supabase project's;
    return the URL of the same database for SUPABASE_POSTGRES.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((_HERE / "supabase_init.sql").read_bytes())
    apply_role_settings(url)
    return as_supabase_postgres(url)


def as_supabase_postgres(url: str) -> str:
    """
    `url` (a superuser's) for SUPABASE_POSTGRES, which has no password: it logs in where the
    server trusts the connection (this machine, CI). Where it does not (a testcontainers server
    with password authentication), the superuser logs in and the session starts as
    SUPABASE_POSTGRES (`options=-c role=…`): every privilege check is then that role's, but a
    statement could still RESET ROLE back to the superuser.
    """
    params = conninfo_to_dict(url)
    login = {**params, "user": SUPABASE_POSTGRES}
    login.pop("password", None)
    try:
        psycopg.connect(make_conninfo(**login), connect_timeout=10).close()  # type: ignore[arg-type]
    except psycopg.OperationalError:
        options = f"{params.get('options') or ''} -c role={SUPABASE_POSTGRES}".strip()
        return make_conninfo(**{**params, "options": options})  # type: ignore[arg-type]
    return make_conninfo(**login)  # type: ignore[arg-type]


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
    return processes.broseph(args, {**os.environ, "DATABASE_URL": url}, timeout=timeout)


@pytest.fixture(scope="session")
def supabase_template_db(admin_url: str) -> Iterator[str]:
    """
    The Supabase-like database, migrated once per session by `broseph migrate`.
    """
    name = pg.create_database(admin_url, prefix="bsupa")
    url = prepare_supabase(pg.with_dbname(admin_url, name))
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
    if profile == "plain":
        name = pg.create_database(admin_url, template=request.getfixturevalue("template_db"))
        url = pg.with_dbname(admin_url, name)
    else:
        template = request.getfixturevalue("supabase_template_db")
        name = pg.create_database(admin_url, template=template, owner=SUPABASE_POSTGRES)
        apply_role_settings(pg.with_dbname(admin_url, name))
        url = as_supabase_postgres(pg.with_dbname(admin_url, name))
    yield url
    pg.drop_database(admin_url, name)


@pytest.fixture
async def profile_conn(profile_db_url: str) -> AsyncIterator[psycopg.AsyncConnection[DictRow]]:
    """
    An autocommit connection (as the migrating role: a superuser on the plain profile,
    SUPABASE_POSTGRES on the Supabase-like one) on this profile's database.
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
