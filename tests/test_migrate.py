"""
`broseph migrate`: fresh database, idempotent, concurrent, and strict about changed files.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import psycopg
import pytest

from broseph import migrate
from tests import pg
from tests.conftest import env_with


@pytest.fixture
def empty_db(admin_url):
    name = pg.create_database(admin_url, prefix="bmig")
    yield pg.with_dbname(admin_url, name)
    pg.drop_database(admin_url, name)


def _applied_rows(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return [
            (str(n), str(c))
            for n, c in conn.execute(
                "SELECT name, checksum FROM broseph.schema_migrations ORDER BY name"
            ).fetchall()
        ]


async def test_fresh_database_then_second_run_is_a_no_op(empty_db):
    first = await migrate.migrate(empty_db)
    names = [m.name for m in migrate.load_migrations()]
    assert first == [migrate.PROCRASTINATE_ENTRY, *names]
    assert await migrate.migrate(empty_db) == []
    async with await psycopg.AsyncConnection.connect(empty_db) as conn:
        assert await migrate.pending(conn) == []


def test_two_processes_at_once_apply_each_file_once(empty_db):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", "from broseph.cli import main; main()", "migrate"],
            env=env_with(DATABASE_URL=empty_db),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    applied_lines = [
        line for out, _ in outputs for line in out.splitlines() if line.startswith("applied ")
    ]
    # Every file applied exactly once across the two processes; the loser found it up to date.
    assert len(applied_lines) == len(set(applied_lines)) == len(migrate.load_migrations()) + 1
    assert any("up to date" in out for out, _ in outputs)
    assert len(_applied_rows(empty_db)) == len(migrate.load_migrations()) + 1


async def test_changed_applied_file_is_refused(empty_db, tmp_path):
    folder = tmp_path / "migrations"
    shutil.copytree(migrate.migrations_dir(), folder)
    await migrate.migrate(empty_db, directory=folder)
    target = folder / "0002_domain.sql"
    target.write_text(target.read_text() + "\n-- an innocent-looking edit\n")
    with pytest.raises(migrate.MigrationError, match=r"0002_domain\.sql was changed"):
        await migrate.migrate(empty_db, directory=folder)


async def test_failing_migration_rolls_back_and_is_not_recorded(empty_db, tmp_path):
    folder = tmp_path / "migrations"
    shutil.copytree(migrate.migrations_dir(), folder)
    (folder / "9999_broken.sql").write_text(
        "CREATE TABLE public.half_done (id int);\nSELECT no_such_function();\n"
    )
    with pytest.raises(migrate.MigrationError, match=r"9999_broken\.sql failed"):
        await migrate.migrate(empty_db, directory=folder)
    async with await psycopg.AsyncConnection.connect(empty_db) as conn:
        cur = await conn.execute("SELECT to_regclass('public.half_done')")
        assert (await cur.fetchone()) == (None,)
        assert await migrate.pending(conn) == []  # 9999 is not in the real folder
    assert "9999_broken.sql" not in dict(_applied_rows(empty_db))


async def test_adopts_a_procrastinate_schema_installed_by_hand(empty_db):
    from procrastinate import schema

    async with await psycopg.AsyncConnection.connect(empty_db, autocommit=True) as conn:
        await conn.execute(schema.SchemaManager.get_schema().encode())
    applied = await migrate.migrate(empty_db)
    assert applied[0] == migrate.PROCRASTINATE_ENTRY
