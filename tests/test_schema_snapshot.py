"""
docs/schema.sql is what the migrations produce: a fresh, fully migrated database dumps to it.
"""

from __future__ import annotations

import difflib

import pytest

from tests import schema_snapshot


def test_the_migrations_reproduce_the_committed_schema_snapshot(db_url: str) -> None:
    majors = {
        "pg_dump": schema_snapshot.pg_dump_major(),
        "server": schema_snapshot.server_major(db_url),
    }
    if set(majors.values()) != {schema_snapshot.PG_MAJOR}:
        pytest.skip(f"the snapshot is PostgreSQL {schema_snapshot.PG_MAJOR}'s; here: {majors}")
    committed = schema_snapshot.SNAPSHOT.read_text(encoding="utf-8")
    current = schema_snapshot.dump(db_url)
    if current != committed:
        diff = difflib.unified_diff(
            committed.splitlines(), current.splitlines(), "docs/schema.sql", "migrated", n=1
        )
        shown = "\n".join(list(diff)[:60])
        pytest.fail(
            "docs/schema.sql is not what the migrations produce; regenerate it with\n"
            f"    {schema_snapshot.COMMAND}\n{shown}"
        )
