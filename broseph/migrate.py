"""
`broseph migrate`: procrastinate's schema when absent, then our ordered SQL files.

Applied files are recorded with a SHA-256 checksum; a changed applied file is refused. A session
advisory lock makes two concurrent runs (two pods starting at once) apply each file exactly once.
The lock needs a session connection: run migrations over a direct or session-mode connection,
never through a transaction pooler.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import procrastinate
import psycopg
from procrastinate import schema as procrastinate_schema

# Any constant works; it only has to be the same in every broseph process.
_LOCK_KEY = 0x62726F73  # "bros"
PROCRASTINATE_ENTRY = "procrastinate/schema.sql"


class MigrationError(RuntimeError):
    """
    A migration cannot be applied (a changed file, a failed statement).
    """


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations_dir() -> Path:
    """
    The packaged copy in an installed wheel, else the repository's `migrations/`.
    """
    packaged = resources.files("broseph") / "_migrations"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "migrations"


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """
    Our migrations in apply order (file names sort: 0001_…, 0002_…).
    """
    folder = directory or migrations_dir()
    return [
        Migration(path.name, path.read_text(encoding="utf-8"))
        for path in sorted(folder.glob("*.sql"))
    ]


_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS broseph;
CREATE TABLE IF NOT EXISTS broseph.schema_migrations (
    name text PRIMARY KEY,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


async def applied(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> dict[str, str]:
    """
    {name: checksum} of what this database has applied (empty on a fresh database).
    """
    cur = await conn.execute("SELECT to_regclass('broseph.schema_migrations') IS NOT NULL")
    row = await cur.fetchone()
    if not row or not row[0]:
        return {}
    cur = await conn.execute("SELECT name, checksum FROM broseph.schema_migrations")
    return {str(name): str(checksum) for name, checksum in await cur.fetchall()}


async def pending(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> list[str]:
    """
    Names of migrations not yet applied (for `broseph health`).
    """
    done = await applied(conn)
    names = [m.name for m in load_migrations()]
    if PROCRASTINATE_ENTRY not in done:
        names.insert(0, PROCRASTINATE_ENTRY)
    return [name for name in names if name not in done]


async def migrate(url: str, *, directory: Path | None = None) -> list[str]:
    """
    Apply what is missing; return the names applied now (empty when up to date).
    """
    done: list[str] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            await conn.execute(_BOOTSTRAP)
            already = await applied(conn)
            if PROCRASTINATE_ENTRY not in already:
                await _apply_procrastinate(conn)
                done.append(PROCRASTINATE_ENTRY)
            for migration in load_migrations(directory):
                recorded = already.get(migration.name)
                if recorded == migration.checksum:
                    continue
                if recorded is not None:
                    raise MigrationError(
                        f"{migration.name} was changed after it was applied "
                        f"(recorded sha256 {recorded[:12]}…, file {migration.checksum[:12]}…); "
                        "add a new migration instead of editing an applied one"
                    )
                await _apply(conn, migration)
                done.append(migration.name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return done


async def _apply(conn: psycopg.AsyncConnection[tuple[object, ...]], migration: Migration) -> None:
    async with conn.transaction():
        try:
            # No parameters: psycopg sends the file as one simple query, many statements allowed.
            await conn.execute(migration.sql.encode())
        except psycopg.Error as exc:
            raise MigrationError(f"{migration.name} failed: {exc}") from exc
        await conn.execute(
            "INSERT INTO broseph.schema_migrations (name, checksum) VALUES (%s, %s)",
            (migration.name, migration.checksum),
        )


async def _apply_procrastinate(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
    cur = await conn.execute("SELECT to_regclass('public.procrastinate_jobs') IS NOT NULL")
    row = await cur.fetchone()
    sql = procrastinate_schema.SchemaManager.get_schema()
    if row and row[0]:
        # Installed by someone else (e.g. `procrastinate schema --apply`): adopt it as is.
        sql = ""
    migration = Migration(PROCRASTINATE_ENTRY, sql)
    async with conn.transaction():
        if sql:
            await conn.execute(sql.encode())
        await conn.execute(
            "INSERT INTO broseph.schema_migrations (name, checksum) VALUES (%s, %s)",
            (migration.name, f"procrastinate {procrastinate.__version__}"),
        )
