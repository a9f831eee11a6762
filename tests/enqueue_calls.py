"""
Calling the SQL contract with any arguments at all, and reading what it answered.

`broseph.enqueue` / `broseph.enqueue_many` are called with named arguments, each cast to its
declared type, so a test can pass NULL, text for a time ('infinity'), raw JSON or nothing (the
default) for any argument and see the function's own answer — never a function-resolution error.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

ONE = {
    "job_type": "text",
    "params": "jsonb",
    "idempotency_key": "text",
    "run_at": "timestamptz",
    "priority": "integer",
    "source": "text",
    "retry": "jsonb",
}
MANY = {**ONE, "params": "jsonb[]", "idempotency_keys": "text[]"}
del MANY["idempotency_key"]

# The argument names an error may name (diag.column_name starts with one of them).
ARGUMENTS = ("job_type", "params", "idempotency_keys", "idempotency_key", "run_at", "priority",
             "source", "retry")  # fmt: skip


class Raw(str):
    """
    Text sent as it is and cast by Postgres (JSON text, a time such as 'infinity').
    """


@dataclass(frozen=True)
class Answer:
    ids: list[uuid.UUID] | None = None
    sqlstate: str | None = None
    column: str | None = None
    message: str | None = None

    @property
    def accepted(self) -> bool:
        return self.ids is not None


def statement(function: str, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """
    `SELECT broseph.<function>(name => %(name)s::type, …)` for the arguments given (absent ones
    take their defaults), with values adapted for psycopg: JSON arguments as JSON text (a `Raw`
    string is sent as it is), everything else as text or int for Postgres to cast.
    """
    types = ONE if function == "enqueue" else MANY
    parts = [f"{name} => %({name})s::{types[name]}" for name in args]
    values = {name: _adapt(types[name], value) for name, value in args.items()}
    return f"SELECT broseph.{function}({', '.join(parts)}) AS result", values


def _adapt(kind: str, value: Any) -> Any:
    if value is None or isinstance(value, Raw):
        return None if value is None else str(value)
    if kind == "jsonb":
        return json.dumps(value, ensure_ascii=False)
    if kind == "jsonb[]":
        return [_adapt("jsonb", v) for v in value]
    return value


def _answer_from(result: Any) -> Answer:
    if isinstance(result, list):
        return Answer(ids=[uuid.UUID(str(v)) for v in result])
    return Answer(ids=[uuid.UUID(str(result))])


def _refused(exc: psycopg.Error) -> Answer:
    return Answer(
        sqlstate=exc.sqlstate,
        column=exc.diag.column_name,
        message=exc.diag.message_primary,
    )


async def attempt(
    conn: psycopg.AsyncConnection[Any], function: str, args: dict[str, Any]
) -> Answer:
    """
    One call in a savepoint of the caller's transaction (rolled back when refused).
    """
    query, values = statement(function, args)
    try:
        async with conn.transaction():
            cur = await conn.execute(query, values)  # type: ignore[arg-type]
            row = await cur.fetchone()
    except psycopg.Error as exc:
        return _refused(exc)
    assert row is not None
    return _answer_from(row[0] if isinstance(row, tuple) else row["result"])


def attempt_sync(conn: psycopg.Connection[Any], function: str, args: dict[str, Any]) -> Answer:
    """
    `attempt` on a blocking connection (hypothesis tests run examples synchronously).
    """
    query, values = statement(function, args)
    try:
        with conn.transaction():
            row = conn.execute(query, values).fetchone()  # type: ignore[arg-type]
    except psycopg.Error as exc:
        return _refused(exc)
    assert row is not None
    return _answer_from(row[0] if isinstance(row, tuple) else row["result"])
