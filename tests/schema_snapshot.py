"""
The current schema, generated: `docs/schema.sql` is what `broseph migrate` leaves in an empty
database (procrastinate's schema, every migration, the lock-down), as `pg_dump --schema-only`
prints it — one file to read instead of replaying twenty migrations in your head.

Regenerate it after adding a migration (a server where databases may be created and dropped;
pg_dump 15, like the server CI runs):

    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python -m tests.schema_snapshot

tests/test_schema_snapshot.py fails, naming this command, when the migrations no longer produce
the committed file.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg

from broseph import migrate
from tests import pg

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT / "docs" / "schema.sql"
COMMAND = "TEST_DATABASE_URL=… python -m tests.schema_snapshot"
# The major version the committed snapshot is printed by: another pg_dump prints other text.
PG_MAJOR = 15

_HEADER = f"""\
-- The schema `broseph migrate` leaves in an empty database: GENERATED, do not edit.
-- Regenerate after adding a migration: {COMMAND}
-- (pg_dump {PG_MAJOR} --schema-only --no-owner; tests/test_schema_snapshot.py checks it.)

"""
# Lines that vary between runs or minor versions, not with the schema: pg_dump's version
# comments, and the \\restrict / \\unrestrict guard lines (random keys) newer minors print.
_VOLATILE = re.compile(r"^(-- Dumped (from|by) .*|\\(un)?restrict .*)$")


def pg_dump_major() -> int | None:
    """
    The major version of the `pg_dump` on PATH (None when there is none).
    """
    path = shutil.which("pg_dump")
    if path is None:
        return None
    found = re.search(
        r"(\d+)",
        subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout,
    )
    return int(found.group(1)) if found else None


def server_major(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.info.server_version // 10000


def dump(url: str) -> str:
    """
    The normalized schema-only dump of the database at `url`.
    """
    done = subprocess.run(
        ["pg_dump", "--schema-only", "--no-owner", "--dbname", url],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [line for line in done.stdout.splitlines() if not _VOLATILE.match(line)]
    text = "\n".join(lines).strip() + "\n"
    # Runs of blank lines left where volatile lines were: one blank line at most.
    return _HEADER + re.sub(r"\n{3,}", "\n\n", text)


def generate(admin_url: str) -> str:
    """
    Migrate a scratch database on the server at `admin_url` and dump it.
    """
    name = pg.create_database(admin_url, prefix="bschema")
    try:
        url = pg.with_dbname(admin_url, name)
        asyncio.run(migrate.migrate(url))
        return dump(url)
    finally:
        pg.drop_database(admin_url, name)


def main() -> int:
    admin_url = os.environ.get("TEST_DATABASE_URL")
    if not admin_url:
        sys.stderr.write(f"error: set TEST_DATABASE_URL: {COMMAND}\n")
        return 2
    majors = {"pg_dump": pg_dump_major(), "server": server_major(admin_url)}
    if set(majors.values()) != {PG_MAJOR}:
        sys.stderr.write(f"error: the snapshot is PostgreSQL {PG_MAJOR}'s; found {majors}\n")
        return 2
    SNAPSHOT.write_text(generate(admin_url), encoding="utf-8")
    print(f"wrote {SNAPSHOT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
