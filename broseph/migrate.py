"""
`broseph migrate`: procrastinate's schema — installed when absent, else brought to the installed
procrastinate's version by its own packaged upgrade files (broseph/procrastinate_schema.py) —
then our ordered SQL files, then the job types' registry rows written from the Python catalogue
(broseph/jobs/registry.py: the one definition of a job type), then the always-run files
(`migrations/always/`: what we put on procrastinate's objects, put back after an upgrade; the
lock-down of the queue and of broseph's internals). Nothing is applied for a procrastinate the
seam refuses (broseph/engine.py).

Applied files are recorded with a SHA-256 checksum; a changed applied file is refused. A session
advisory lock makes two concurrent runs (two pods starting at once) apply each file exactly once.
The lock needs a session connection: run migrations over a direct or session-mode connection,
never through a transaction pooler.

Adoption: where the app already owns the domain tables (public.profiles, groups, messages, …),
0002 cannot create them. The runner then checks them (broseph/adoption.py) before changing
anything, applies `migrations/adopt/<name>` instead of each numbered file that has such a
variant, records the numbered file (with its own checksum) plus `adopt/<name>`, and reports
every column, index, trigger or policy a migration adds to an app table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psycopg
from procrastinate import schema

from broseph import adoption, engine, jobs, procrastinate_schema
from broseph.jobs import registry
from broseph.jobs.base import JobType

# Any constant works; it only has to be the same in every broseph process.
_LOCK_KEY = 0x62726F73  # "bros"
PROCRASTINATE_ENTRY = procrastinate_schema.ENTRY
# The migration that creates the domain tables, and how an adoption of them is recorded.
DOMAIN = "0002_domain.sql"
ADOPTED = "adopt/" + DOMAIN
LOCKDOWN_NOTICE = "lock-down:"
RESTORED_NOTICE = "restored:"  # always/procrastinate.sql

Report = Callable[[str], None]


class MigrationError(RuntimeError):
    """
    A migration cannot be applied (a changed file, a failed statement).
    """


class AdoptionError(MigrationError):
    """
    The app's tables lack what the jobs need; nothing was changed.
    """

    def __init__(self, gaps: list[str]) -> None:
        self.gaps = gaps
        super().__init__(
            "your tables lack what the jobs need (nothing was changed; add these, then run"
            " broseph migrate again):\n" + "\n".join(f"  {gap}" for gap in gaps)
        )


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


def load_always(directory: Path | None = None) -> list[Migration]:
    """
    The files run on every `broseph migrate`, after the numbered ones (`always/*.sql`).
    """
    folder = (directory or migrations_dir()) / "always"
    return [
        Migration(f"always/{path.name}", path.read_text(encoding="utf-8"))
        for path in sorted(folder.glob("*.sql"))
    ]


def adopt_variant(migration: Migration, directory: Path | None = None) -> Migration | None:
    """
    `adopt/<name>`, the variant of a numbered migration for a database whose tables the app owns.
    """
    path = (directory or migrations_dir()) / "adopt" / migration.name
    if not path.is_file():
        return None
    return Migration(f"adopt/{migration.name}", path.read_text(encoding="utf-8"))


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


async def migrate(
    url: str,
    *,
    directory: Path | None = None,
    report: Report | None = None,
    catalogue: Iterable[JobType] | None = None,
) -> list[str]:
    """
    Apply what is missing, write the registry rows of the `catalogue`'s job types (by default
    the production one, `broseph.jobs.CATALOGUE`), then the always-run files; return the names
    applied now (empty when up to date). `report` receives a line per file applied, per object
    added to an app-owned table, per job type written, and per lock-down that had something to
    fix. AdoptionError (a MigrationError) when the app's tables lack something; then nothing
    was changed.
    """
    say = report or (lambda _line: None)
    done: list[str] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            already = await applied(conn)
            adopting = ADOPTED in already or (
                DOMAIN not in already and await _check_adoptable(conn)
            )
            await conn.execute(_BOOTSTRAP)
            done += await _procrastinate(conn, already, say)
            for migration in load_migrations(directory):
                if _is_current(migration, already.get(migration.name)):
                    continue
                variant = adopt_variant(migration, directory) if adopting else None
                before = await adoption.footprint(conn) if adopting else set()
                await _apply(conn, migration, variant)
                done.append(migration.name)
                say(_applied_line(migration, variant))
                if adopting:
                    for line in adoption.changes(before, await adoption.footprint(conn)):
                        say(f"  {line}")
            async with conn.transaction():
                chosen = jobs.CATALOGUE.values() if catalogue is None else catalogue
                written = await registry.write(conn, chosen)
            for name in written:
                say(f"wrote job type {name} to broseph.job_types")
            for always in load_always(directory):
                for line in await _apply_always(conn, always):
                    say(line)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return done


def _applied_line(migration: Migration, variant: Migration | None) -> str:
    if variant is None:
        return f"applied {migration.name}"
    if migration.name == DOMAIN:
        return f"adopted your tables for {DOMAIN} (applied {variant.name})"
    return f"applied {variant.name} in place of {migration.name}"


def _is_current(migration: Migration, recorded: str | None) -> bool:
    if recorded == migration.checksum:
        return True
    if recorded is not None:
        raise MigrationError(
            f"{migration.name} was changed after it was applied "
            f"(recorded sha256 {recorded[:12]}…, file {migration.checksum[:12]}…); "
            "add a new migration instead of editing an applied one"
        )
    return False


async def _check_adoptable(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> bool:
    """
    True when the app's domain tables exist and hold what the jobs need; False when there are
    none (0002 creates them); AdoptionError naming every gap otherwise.
    """
    if not await adoption.existing(conn):
        return False
    gaps = await adoption.gaps(conn)
    if gaps:
        raise AdoptionError(gaps)
    return True


async def _apply(
    conn: psycopg.AsyncConnection[tuple[object, ...]],
    migration: Migration,
    variant: Migration | None = None,
) -> None:
    """
    One numbered migration (or its adopt/ variant, recorded under both names), in one
    transaction with its record.
    """
    applying = variant or migration
    async with conn.transaction():
        try:
            # No parameters: psycopg sends the file as one simple query, many statements allowed.
            await conn.execute(applying.sql.encode())
        except psycopg.Error as exc:
            raise MigrationError(f"{applying.name} failed: {exc}") from exc
        for record in (migration, variant) if variant else (migration,):
            await conn.execute(
                "INSERT INTO broseph.schema_migrations (name, checksum) VALUES (%s, %s)",
                (record.name, record.checksum),
            )


async def _apply_always(
    conn: psycopg.AsyncConnection[tuple[object, ...]], migration: Migration
) -> list[str]:
    """
    An always-run file, in one transaction; returns what it reported having fixed (its
    "lock-down: …" notices).
    """
    notices: list[str] = []

    def collect(diagnostic: psycopg.errors.Diagnostic) -> None:
        message = diagnostic.message_primary or ""
        if message.startswith((LOCKDOWN_NOTICE, RESTORED_NOTICE)):
            notices.append(message)

    conn.add_notice_handler(collect)
    try:
        async with conn.transaction():
            try:
                await conn.execute(migration.sql.encode())
            except psycopg.Error as exc:
                raise MigrationError(f"{migration.name} failed: {exc}") from exc
    finally:
        conn.remove_notice_handler(collect)
    return notices


async def _procrastinate(
    conn: psycopg.AsyncConnection[tuple[object, ...]], already: dict[str, str], say: Report
) -> list[str]:
    """
    procrastinate's schema: installed (or a found one recorded), then every packaged upgrade file
    newer than it applied in order, each in one transaction with its record.
    """
    try:
        engine.internals()
    except engine.IncompatibleProcrastinate as exc:
        raise MigrationError(str(exc)) from None
    done: list[str] = []
    if PROCRASTINATE_ENTRY not in already:
        await _install_procrastinate(conn, say)
        done.append(PROCRASTINATE_ENTRY)
        already = await applied(conn)
    current = procrastinate_schema.state(already)
    if current.newer:
        raise MigrationError(current.problems()[0])
    for upgrade in current.pending:
        await _apply(conn, Migration(upgrade.entry, upgrade.sql))
        done.append(upgrade.entry)
        say(f"applied {upgrade.entry}")
    return done


async def _install_procrastinate(
    conn: psycopg.AsyncConnection[tuple[object, ...]], say: Report
) -> None:
    cur = await conn.execute("SELECT to_regclass('public.procrastinate_jobs') IS NOT NULL")
    row = await cur.fetchone()
    records = [(PROCRASTINATE_ENTRY, procrastinate_schema.installed_checksum())]
    if row and row[0]:
        # Installed by someone else (e.g. `procrastinate schema --apply`, any 3.x): its level is
        # read from the schema itself; the upgrade files it already holds are recorded as such.
        found = await procrastinate_schema.found(procrastinate_schema.rows_on(conn))
        try:
            base, beyond = procrastinate_schema.adopt(found)
        except ValueError as exc:
            raise MigrationError(str(exc)) from None
        records = [(PROCRASTINATE_ENTRY, base)]
        records += [(upgrade.entry, procrastinate_schema.FOUND) for upgrade in beyond]
    async with conn.transaction():
        if not (row and row[0]):
            await conn.execute(schema.SchemaManager.get_schema().encode())
        for name, checksum in records:
            await conn.execute(
                "INSERT INTO broseph.schema_migrations (name, checksum) VALUES (%s, %s)",
                (name, checksum),
            )
    say(
        f"applied {PROCRASTINATE_ENTRY}"
        if not (row and row[0])
        else f"adopted the procrastinate schema found in the database ({records[0][1]})"
    )
