"""
procrastinate's schema in a broseph database: the version it is at, the plan that brings it to
the installed procrastinate's, and the check that a worker may run on it.

procrastinate ships its schema (`schema.sql`, for an empty database) and its upgrades
(`sql/migrations/<version>_<nn>_<pre|post>_<what>.sql`; a `pre` file runs before code of that
version is deployed, a `post` file after) inside the package, and records nothing in the
database. broseph records both in broseph.schema_migrations:

    procrastinate/schema.sql        "procrastinate 3.10.0, schema 03.04.00": what `broseph migrate`
                                    installed (older rows say "procrastinate 3.3.0"), or "found
                                    installed, schema 03.02.00": a schema installed by someone
                                    else, its level read from the database itself (`found()`)
    procrastinate/<upgrade file>    the sha256 of each upgrade file `broseph migrate` applied

The schema's level is the newest migration version it holds: its base's, or that of an upgrade
file recorded after it. `broseph migrate` applies every packaged file newer than the base and
not recorded, in file order — each version's `pre` before its `post` — one transaction each
(broseph/migrate.py). A worker starts only when none is pending, nothing recorded is newer than
the installed package, and what broseph relies on and put on procrastinate's objects is in
place (`check()`, run by the seam when a worker starts, broseph/engine.py, and by `broseph
health`). `broseph migrate` puts back what of ours an upgrade undid: migrations/always/
procrastinate.sql.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import procrastinate
from packaging.version import InvalidVersion, Version
from procrastinate import schema
from psycopg.rows import dict_row

from broseph import sql

ENTRY = "procrastinate/schema.sql"
PREFIX = "procrastinate/"
FOUND = "found installed"

Level = tuple[int, int, int]

# procrastinate's SQL functions broseph's own SQL calls or alters (migrations 0009, 0012), with
# their argument types. The seam checks them in the packaged schema.sql (broseph/engine.py),
# check() in the database.
FUNCTIONS = (
    "procrastinate_fetch_job_v2(character varying[], bigint)",
    "procrastinate_finish_job_v1(bigint, public.procrastinate_job_status, boolean)",
    "procrastinate_retry_job_v2(bigint, timestamp with time zone, integer, character varying,"
    " character varying)",
)
# The columns of procrastinate's tables broseph's SQL reads or writes (migrations 0003, 0009,
# 0012, 0015, 0016; broseph/queries/).
COLUMNS = {
    "procrastinate_jobs": (
        "id", "queue_name", "task_name", "priority", "lock", "queueing_lock", "args", "status",
        "scheduled_at", "attempts", "abort_requested", "worker_id",
    ),
    "procrastinate_workers": ("id", "last_heartbeat"),
    "procrastinate_events": ("id", "job_id", "type", "at"),
}  # fmt: skip

_FILE = re.compile(r"^(\d+)\.(\d+)\.(\d+)_\d+_\w+\.sql$")
_SCHEMA_LEVEL = re.compile(r"schema (\d+)\.(\d+)\.(\d+)")
_VERSION = re.compile(r"^procrastinate (\S+)")
# Upgrades older than this are not recognised in a schema installed by someone else (found()).
OLDEST_FOUND: Level = (3, 0, 0)


class SchemaMismatch(RuntimeError):
    """
    The database's procrastinate schema is not the installed procrastinate's (or lacks what
    broseph relies on): a worker refuses to start.
    """


@dataclass(frozen=True)
class Upgrade:
    """
    One of procrastinate's packaged upgrade files.
    """

    name: str
    level: Level
    path: Path

    @property
    def entry(self) -> str:
        return PREFIX + self.name

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


@functools.cache
def packaged() -> tuple[Upgrade, ...]:
    """
    The installed procrastinate's upgrade files, in apply order (ValueError on a name that does
    not follow procrastinate's `<version>_<nn>_<what>.sql`).
    """
    folder = Path(schema.SchemaManager.get_migrations_path())
    upgrades = []
    for path in sorted(folder.glob("*.sql")):
        match = _FILE.match(path.name)
        if match is None:
            raise ValueError(f"procrastinate migration {path.name!r} has no <version>_<nn>_ name")
        major, minor, patch = (int(part) for part in match.groups())
        upgrades.append(Upgrade(path.name, (major, minor, patch), path))
    return tuple(upgrades)


def text(level: Level) -> str:
    return ".".join(f"{part:02d}" for part in level)


def package_level() -> Level:
    """
    The level of a schema the installed procrastinate installs: its newest upgrade's.
    """
    return max(upgrade.level for upgrade in packaged())


def version() -> str:
    return procrastinate.__version__


def installed_checksum() -> str:
    """
    What `broseph migrate` records for a schema it installs from the packaged schema.sql.
    """
    return f"procrastinate {version()}, schema {text(package_level())}"


def version_level(raw: str) -> Level | None:
    try:
        release = Version(raw).release
    except InvalidVersion:
        return None
    major, minor, patch = (*release, 0, 0)[:3]
    return (major, minor, patch)


@dataclass(frozen=True)
class State:
    """
    Where the database's procrastinate schema stands against the installed package.
    """

    base: str | None  # the recorded base (None: procrastinate's schema not installed)
    level: Level | None  # None: not installed, or not knowable (a newer version's base)
    pending: tuple[Upgrade, ...] = ()
    newer: tuple[str, ...] = ()  # what the installed package does not know
    upgrades: int = 0  # upgrade files recorded after the base

    def describe(self) -> str:
        if self.base is None:
            return "not installed"
        level = text(self.level) if self.level else "unknown"
        then = f", then {self.upgrades} upgrade file{'s' * (self.upgrades != 1)}"
        return f"{level} ({self.base}{then if self.upgrades else ''})"

    def problems(self) -> list[str]:
        if self.base is None:
            return ["procrastinate's schema is not installed (run broseph migrate)"]
        if self.newer:
            return [
                f"the database's procrastinate schema ({', '.join(self.newer)}) is newer than"
                f" the installed procrastinate {version()} knows (schema"
                f" {text(package_level())}): install the procrastinate version that migrated it"
            ]
        if self.pending:
            return [
                f"the database's procrastinate schema is {self.describe()}, the installed"
                f" procrastinate {version()} needs {text(package_level())}: run broseph migrate"
                f" (pending: {', '.join(upgrade.name for upgrade in self.pending)})"
            ]
        return []


def state(recorded: Mapping[str, str]) -> State:
    """
    The state of a database whose broseph.schema_migrations holds `recorded` ({name: checksum}).
    """
    base = recorded.get(ENTRY)
    if base is None:
        return State(base=None, level=None)
    base_level = _base_level(base)
    files = {upgrade.name: upgrade for upgrade in packaged()}
    applied = {name[len(PREFIX) :] for name in recorded if name.startswith(PREFIX)} - {
        ENTRY[len(PREFIX) :]
    }
    newer = [f"upgrade file {name}" for name in sorted(applied - files.keys())]
    if base_level is None or base_level > package_level():
        newer.insert(0, f"recorded as {base!r}")
    if newer or base_level is None:
        return State(base=base, level=base_level, newer=tuple(newer))
    pending = tuple(u for u in packaged() if u.level > base_level and u.name not in applied)
    level = max([base_level, *(files[name].level for name in applied)])
    return State(base=base, level=level, pending=pending, upgrades=len(applied))


def _base_level(base: str) -> Level | None:
    match = _SCHEMA_LEVEL.search(base)
    if match:
        major, minor, patch = (int(part) for part in match.groups())
        return (major, minor, patch)
    match = _VERSION.match(base)
    installed = version_level(version())
    recorded = version_level(match.group(1)) if match else None
    if recorded is None or installed is None or recorded > installed:
        return None  # a version newer than ours may have upgrades we do not ship
    # Recorded before levels were (broseph ≤ this module): procrastinate X.Y.Z's schema.sql holds
    # every upgrade file numbered up to X.Y.Z (procrastinate's naming rule).
    return max((u.level for u in packaged() if u.level <= recorded), default=(0, 0, 0))


def adopt(found_names: set[str]) -> tuple[str, list[Upgrade]]:
    """
    For a schema someone else installed, whose upgrade files `found_names` are present in the
    database (found()): the base to record — the newest level all of whose files are there —
    and the files present beyond it (recorded as applied). ValueError for a schema older than
    procrastinate 3.0.
    """
    recognised = [u for u in packaged() if u.level >= OLDEST_FOUND]
    if not recognised or recognised[0].name not in found_names:
        raise ValueError(
            "the procrastinate schema in this database predates procrastinate 3.0; upgrade it to"
            " 3.x with procrastinate's own migrations first"
        )
    base = max((u.level for u in packaged() if u.level < OLDEST_FOUND), default=(0, 0, 0))
    for level in sorted({u.level for u in recognised}):
        # A version counts only with every one of its files (pre and post).
        if any(u.name not in found_names for u in recognised if u.level == level):
            break
        base = level
    beyond = [u for u in recognised if u.level > base and u.name in found_names]
    return f"{FOUND}, schema {text(base)}", beyond


# (query, **arguments) → rows as dicts: procrastinate's connector's execute_query_all_async, or
# rows_on(conn) for a psycopg connection.
Rows = Callable[..., Awaitable[list[dict[str, Any]]]]


def rows_on(conn: Any) -> Rows:
    """
    `Rows` over a psycopg AsyncConnection (health, migrate, tests).
    """

    async def run(query: str, **arguments: Any) -> list[dict[str, Any]]:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, arguments or None)
            return list(await cur.fetchall())

    return run


async def recorded(rows: Rows) -> dict[str, str] | None:
    """
    {name: checksum} of procrastinate's rows in broseph.schema_migrations; {} when the table is
    absent; None when it is there but this role may not read it.
    """
    [access] = await rows(sql.query("schema_record_access"))
    if not access["present"]:
        return {}
    if not access["readable"]:
        return None
    found = await rows(sql.query("procrastinate_recorded"))
    return {str(row["name"]): str(row["checksum"]) for row in found}


async def found(rows: Rows) -> set[str]:
    """
    The upgrade files (procrastinate ≥ 3.0) whose changes the database holds, read from the
    schema itself: for a procrastinate schema broseph did not install.
    """
    return {str(row["name"]) for row in await rows(sql.query("procrastinate_found_migrations"))}


@dataclass(frozen=True)
class Report:
    state: State | None
    problems: list[str]


async def check(rows: Rows) -> Report:
    """
    Whether a worker may run on this database: its procrastinate schema at the installed
    package's level, and what broseph relies on in it, and put on it, in place — each problem a
    line naming its fix.
    """
    record = await recorded(rows)
    if record is None:
        cannot = "this role cannot read broseph.schema_migrations (run broseph migrate)"
        return Report(None, [cannot])
    current = state(record)
    problems = current.problems()
    if not problems:  # at the installed level: what the schema of that level has must be there
        found_problems = await rows(
            sql.query("procrastinate_dependents"),
            functions=list(FUNCTIONS),
            columns=[f"{table}.{column}" for table, cols in COLUMNS.items() for column in cols],
        )
        problems += [str(row["problem"]) for row in found_problems]
    return Report(current, problems)
