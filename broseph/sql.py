"""
Named SQL queries, loaded once from `broseph/queries/*.sql`.

Each query starts with a `-- name: <name>` line; the comment lines after it describe it. Callers
say `sql.query("load_record")`, keeping SQL out of Python strings.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import LiteralString

_HEADER = re.compile(r"^--\s*name:\s*(?P<name>[a-z0-9_]+)\s*$", re.MULTILINE)


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
        found[name] = text[match.end() : end].strip()
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
