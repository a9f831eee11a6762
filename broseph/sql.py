"""
Named SQL queries, loaded once from `broseph/queries/*.sql`.

Each query starts with a `-- name: <name>` line; the comment lines after it describe it. Callers
say `sql.query("load_record")`, keeping SQL out of Python strings — or, to run one on their
connection and read its rows as dicts, `await sql.rows(conn, "name", params)`, `sql.row` (the
first row or None), `sql.one` (the row, which must exist) or `sql.value` (its first column).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any, LiteralString

import psycopg
from psycopg.rows import dict_row, tuple_row

Params = Mapping[str, Any] | None

_HEADER = re.compile(r"^--\s*name:\s*(?P<name>[a-z0-9_]+)\s*$", re.MULTILINE)
_LEADING_COMMENTS = re.compile(r"\A(?:[ \t]*--[^\n]*\n)+")


def parse(text: str) -> dict[str, str]:
    """
    Split one query file into {name: sql}; a repeated name is an error.
    """
    found: dict[str, str] = {}
    matches = list(_HEADER.finditer(text))
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        end = following.start() if following else len(text)
        name = match.group("name")
        if name in found:
            raise ValueError(f"query {name!r} is defined twice")
        # The description lines stay in the file: the statement sent starts with its first
        # keyword (what tracing names a statement's span after, and what pg_stat_activity shows).
        body = text[match.end() : end].strip()
        found[name] = _LEADING_COMMENTS.sub("", body)
    return found


@cache
def _all() -> dict[str, str]:
    queries: dict[str, str] = {}
    for entry in sorted(resources.files("broseph.queries").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            for name, text in parse(entry.read_text(encoding="utf-8")).items():
                if name in queries:
                    raise ValueError(f"query {name!r} is defined in two files")
                queries[name] = text
    return queries


def query(name: str) -> LiteralString:
    """
    The SQL text of a named query (KeyError names the missing query).
    """
    try:
        # The files ship with the package and are never built from input: a LiteralString in
        # spirit (mypy treats LiteralString as str, so no cast is needed).
        return _all()[name]
    except KeyError:
        raise KeyError(f"no SQL query named {name!r} in broseph/queries/") from None


async def rows(
    conn: psycopg.AsyncConnection[Any], name: str, params: Params = None
) -> list[dict[str, Any]]:
    """
    Run the named query on `conn` (the caller's transaction, if any); every row, as a dict.
    """
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query(name), params)
        return await cur.fetchall()


async def row(
    conn: psycopg.AsyncConnection[Any], name: str, params: Params = None
) -> dict[str, Any] | None:
    """
    Run the named query on `conn`; its first row as a dict, None when it returned none.
    """
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query(name), params)
        return await cur.fetchone()


async def one(
    conn: psycopg.AsyncConnection[Any], name: str, params: Params = None
) -> dict[str, Any]:
    """
    `row` for a query that always returns a row (an aggregate, an upsert's RETURNING).
    """
    found = await row(conn, name, params)
    if found is None:
        raise LookupError(f"query {name} returned no row")
    return found


async def value(conn: psycopg.AsyncConnection[Any], name: str, params: Params = None) -> Any:
    """
    The first column of the named query's first row (None when it returned none).
    """
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(query(name), params)
        found = await cur.fetchone()
    return None if found is None else found[0]
