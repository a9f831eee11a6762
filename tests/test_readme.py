"""
Every ```sql block of README.md runs as written against a migrated database, each statement as a
real prepared statement with its `$n` parameters bound the way node-postgres binds them (as
untyped text, so the SQL itself must give each parameter a type).

A statement's parameters are named in the comment before it (`-- $1 group_id, $2 local_date`);
SAMPLES below gives each name a value from a small seeded world. A new name needs a sample here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from tests import factories, readme_support
from tests.readme_support import Statement


@dataclass(frozen=True)
class World:
    group_id: uuid.UUID
    member_id: uuid.UUID


# Values are strings: node-postgres sends every parameter untyped, and so does psycopg for str.
SAMPLES: dict[str, Callable[[World], str]] = {
    "group_id": lambda w: str(w.group_id),
    "sender_id": lambda w: str(w.member_id),
    "user_id": lambda w: str(w.member_id),
    "body": lambda w: "hello from the README",
    "local_date": lambda w: "2026-03-01",
    # A W3C trace context, as OpenTelemetry's propagation.inject gives it (README, "Tracing").
    "traceparent": lambda w: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
}


def _seed(conn: psycopg.Connection[Any]) -> World:
    return World(*factories.group_with_member(conn, "README", "Ana"))


def _values(statement: Statement, world: World, where: str) -> list[str]:
    legend = statement.legend()
    count = max(statement.parameters, default=0)
    assert statement.parameters == set(range(1, count + 1)), (
        f"{where}: parameters {sorted(statement.parameters)} are not $1…${count}"
    )
    missing = [n for n in range(1, count + 1) if n not in legend]
    assert not missing, f"{where}: name ${missing[0]} in a comment before the statement"
    unknown = [legend[n] for n in range(1, count + 1) if legend[n] not in SAMPLES]
    assert not unknown, f"{where}: add a sample value for {unknown[0]!r} to tests/test_readme.py"
    return [SAMPLES[legend[n]](world) for n in range(1, count + 1)]


def run_block(conn: psycopg.Connection[Any], code: str, world: World, where: str) -> list[Any]:
    """
    Run one block statement by statement as prepared statements; the first value of each
    statement's first row (None for statements without rows).
    """
    results = []
    cur = psycopg.RawCursor(conn)
    for statement in readme_support.statements(code):
        cur.execute(statement.sql, _values(statement, world, where), prepare=True)
        row = cur.fetchone() if cur.description else None
        results.append(row[0] if row else None)
    return results


SQL_BLOCKS = readme_support.blocks("sql")


def test_the_readme_has_sql_examples() -> None:
    assert len(SQL_BLOCKS) >= 2
    assert all(readme_support.statements(b.code) for b in SQL_BLOCKS)


@pytest.mark.parametrize("block", SQL_BLOCKS, ids=[f"README.md:{b.line}" for b in SQL_BLOCKS])
def test_sql_block_runs_as_written_as_prepared_statements(
    db_url: str, block: readme_support.Block
) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        world = _seed(conn)
        before = conn.execute("SELECT count(*) FROM broseph.job_records").fetchone()
        results = run_block(conn, block.code, world, f"README.md:{block.line}")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE, (
            "the block leaves a transaction open"
        )
        # What the block's enqueue returned is a committed job record.
        for statement, result in zip(readme_support.statements(block.code), results, strict=True):
            if "broseph.enqueue" in statement.sql:
                found = conn.execute(
                    "SELECT count(*) FROM broseph.job_records WHERE id = %s", (result,)
                ).fetchone()
                assert found == (1,), statement.sql
        after = conn.execute("SELECT count(*) FROM broseph.job_records").fetchone()
        assert before is not None and after is not None and after[0] > before[0]


def test_an_untyped_parameter_fails_the_way_the_old_example_did(db_url: str) -> None:
    # The README's earlier example (untyped parameters), as the NestJS API would send it: the
    # harness above must reject it exactly as node-postgres's prepared statement did.
    old = """
    -- $1 group_id
    SELECT broseph.enqueue('ProcessEngagement',
                           jsonb_build_object('group_id', $1, 'local_date', '2026-03-01'),
                           idempotency_key => 'engagement:' || $1 || ':2026-03-01');
    """
    with psycopg.connect(db_url, autocommit=True) as conn:
        world = _seed(conn)
        with pytest.raises(psycopg.errors.AmbiguousParameter, match=r"parameter \$1"):
            run_block(conn, old, world, "old example")


def test_statements_split_with_their_parameter_names() -> None:
    code = """BEGIN;
-- $1 group_id, $2 sender_id, $3 body
INSERT INTO t (a, b, c) VALUES ($1, $2, '$9; -- not a comment');  -- $3 body
SELECT f($1::uuid,
         $2);
COMMIT;"""
    first, insert, select, commit = readme_support.statements(code)
    assert first.sql == "BEGIN" and not first.parameters
    assert insert.parameters == {1, 2}
    assert insert.legend() == {1: "group_id", 2: "sender_id", 3: "body"}
    assert select.sql == "SELECT f($1::uuid,\n         $2)" and select.parameters == {1, 2}
    assert select.legend() == {} and commit.sql == "COMMIT"
