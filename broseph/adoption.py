"""
Adopting the app's own tables: what the jobs need from `profiles`, `groups`, `messages`, …

On a real project the Broseph app (NestJS, Supabase CLI migrations) creates and owns the domain
tables; migrations/0002_domain.sql creates them only on a database that has none. Where they
exist, `broseph migrate` checks them against REQUIRED — the columns and types the worker's
queries (broseph/queries/*.sql) and triggers read and write, and the unique keys its
idempotency relies on (ON CONFLICT, one row per natural key) — and names every gap, one line
each, before changing anything. What broseph then adds to an app table (triggers, indexes, the
bookkeeping columns of 0007) is listed as it is added (`footprint` before and after each
migration); it never drops or alters what the app made, nor touches the app's RLS or grants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from broseph import sql

# Types as the checks name them → the PostgreSQL types that satisfy them.
_TEXT = {"text", "character varying", "character", "citext"}
_ACCEPTS: dict[str, set[str]] = {
    "text": _TEXT,
    "integer": {"integer", "bigint", "smallint"},
    "numeric": {"numeric", "double precision", "real"},
}
_NEEDS = {"text": "text or varchar", "integer": "an integer type", "numeric": "numeric"}


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # "uuid", "text", "boolean", "date", "time without time zone", …
    # Values the jobs WRITE into a text column: an enum there must have every one of them.
    writes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    keys: tuple[tuple[str, ...], ...]
    # Columns broseph adds itself when absent (migrations/adopt/0007_notifications.sql); when
    # present they must have the type broseph gives them, and these keys.
    added: tuple[Column, ...] = ()
    added_keys: tuple[tuple[str, ...], ...] = ()
    # broseph's own table: created when absent, checked when present.
    optional: bool = False


def _cols(spec: str) -> tuple[Column, ...]:
    """
    "id uuid, name text" → columns (a compact spelling for REQUIRED below).
    """
    out = []
    for part in spec.split(","):
        name, _, kind = part.strip().partition(" ")
        out.append(Column(name, kind))
    return tuple(out)


TIMESTAMPTZ = "timestamp with time zone"
NOTIFICATION_TYPES = ("new_message", "prompt_reminder", "friend_joined", "new_prompt")

REQUIRED: tuple[Table, ...] = (
    Table("profiles", _cols("id uuid, display_name text, time_zone text"), (("id",),)),
    Table("groups", _cols("id uuid, name text, time_zone text, active boolean"), (("id",),)),
    Table(
        "group_members",
        (*_cols("group_id uuid, user_id uuid, muted boolean"), Column("joined_at", TIMESTAMPTZ)),
        (("group_id", "user_id"),),
    ),
    Table(
        "prompts",
        (
            *_cols("id uuid, group_id uuid, local_date date, text text, category text"),
            *_cols("follow_up text"),
            Column("source", "text", ("openai", "offline", "manual")),
            Column("created_at", TIMESTAMPTZ),
        ),
        (("id",), ("group_id", "local_date")),
    ),
    Table(
        "messages",
        (
            *_cols("id uuid, group_id uuid, sender_id uuid, body text, prompt_id uuid"),
            Column("created_at", TIMESTAMPTZ),
        ),
        (("id",),),
    ),
    Table(
        "device_tokens",
        (
            *_cols("id uuid, user_id uuid, identifier text, disabled_reason text"),
            Column("kind", "text", ("fid", "token")),
            Column("disabled_at", TIMESTAMPTZ),
            Column("created_at", TIMESTAMPTZ),
        ),
        (("id",),),
    ),
    Table(
        "notification_preferences",
        (
            *_cols("user_id uuid, new_message boolean, prompt_reminder boolean"),
            *_cols("friend_joined boolean, new_prompt boolean"),
            Column("quiet_start", "time without time zone"),
            Column("quiet_end", "time without time zone"),
        ),
        (("user_id",),),
    ),
    Table(
        "notifications",
        (
            *_cols("id uuid, user_id uuid, group_id uuid, data jsonb, reason text"),
            Column("type", "text", NOTIFICATION_TYPES),
            Column("status", "text", ("pending", "sent", "skipped", "failed")),
            Column("sent_at", TIMESTAMPTZ),
        ),
        (("id",),),
        added=(
            Column("record_id", "uuid"),
            Column("message_count", "integer"),
            Column("covered_until", TIMESTAMPTZ),
            Column("updated_at", TIMESTAMPTZ),
        ),
        added_keys=(("record_id",),),
    ),
    Table(
        "group_engagement_daily",
        (
            *_cols("group_id uuid, local_date date, message_count integer"),
            *_cols("active_members integer, member_count integer"),
            *_cols("messages_per_member numeric, prompt_response_rate numeric"),
            Column("computed_at", TIMESTAMPTZ),
        ),
        (("group_id", "local_date"),),
        optional=True,
    ),
)
TABLE_NAMES = [t.name for t in REQUIRED]


@dataclass
class _Catalog:
    tables: set[str]
    columns: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, list[set[str]]] = field(default_factory=dict)


async def existing(conn: psycopg.AsyncConnection[Any]) -> list[str]:
    """
    The domain tables already in public, in REQUIRED's order (empty on a fresh database).
    """
    found = {
        row["table_name"]
        for row in await sql.rows(conn, "adoption_tables", {"tables": TABLE_NAMES})
    }
    return [name for name in TABLE_NAMES if name in found]


async def gaps(conn: psycopg.AsyncConnection[Any]) -> list[str]:
    """
    One line per thing the app's tables lack for the jobs ("public.messages.prompt_id: column
    missing (uuid)"); empty when broseph can adopt them. Reads the catalogs only.
    """
    catalog = await _read_catalog(conn)
    problems: list[str] = []
    for table in REQUIRED:
        if table.name not in catalog.tables:
            if not table.optional:
                problems.append(f"public.{table.name}: table missing")
            continue
        for column in table.columns:
            problems += _column_gaps(table.name, column, catalog, required=True)
        for column in table.added:
            problems += _column_gaps(table.name, column, catalog, required=False)
        present_keys = table.keys + tuple(
            k for k in table.added_keys if all((table.name, c) in catalog.columns for c in k)
        )
        for key in present_keys:
            if set(key) not in catalog.keys.get(table.name, []):
                problems.append(f"public.{table.name}: unique key missing on ({', '.join(key)})")
    return problems


def _column_gaps(table: str, column: Column, catalog: _Catalog, *, required: bool) -> list[str]:
    where = f"public.{table}.{column.name}"
    found = catalog.columns.get((table, column.name))
    if found is None:
        return [f"{where}: column missing ({column.type})"] if required else []
    if found["type_kind"] == "e" and column.type == "text":
        lacking = [v for v in column.writes if v not in found["labels"]]
        if lacking:
            values = ", ".join(f"'{v}'" for v in lacking)
            return [f"{where}: enum {found['type_short']} lacks {values}"]
        return []
    if found["type_name"] not in _ACCEPTS.get(column.type, {column.type}):
        return [f"{where}: is {found['type_name']}, needs {_NEEDS.get(column.type, column.type)}"]
    return []


async def _read_catalog(conn: psycopg.AsyncConnection[Any]) -> _Catalog:
    params = {"tables": TABLE_NAMES}
    catalog = _Catalog(tables=set(await existing(conn)))
    for row in await sql.rows(conn, "adoption_columns", params):
        catalog.columns[(row["table_name"], row["column_name"])] = row
    for row in await sql.rows(conn, "adoption_keys", params):
        catalog.keys.setdefault(row["table_name"], []).append(set(row["columns"]))
    return catalog


Footprint = set[tuple[str, str, str]]


async def footprint(conn: psycopg.AsyncConnection[Any]) -> Footprint:
    """
    {(table, kind, name)}: the columns, indexes, constraints, triggers, policies and RLS flag of
    the app's tables — compared before and after a migration to list what it added.
    """
    found = await sql.rows(conn, "adoption_footprint", {"tables": TABLE_NAMES})
    return {(r["table_name"], r["kind"], r["name"]) for r in found}


def changes(before: Footprint, after: Footprint) -> list[str]:
    """
    "public.messages: added trigger broseph_messages_notify", one line per difference; a table
    that did not exist before is one line, "public.group_engagement_daily: created table".
    """
    existed = {table for table, _, _ in before}
    created = sorted({table for table, _, _ in after} - existed)
    lines = [f"public.{t}: created table" for t in created]
    lines += [
        f"public.{t}: added {kind} {name}"
        for t, kind, name in sorted(after - before)
        if t in existed
    ]
    lines += [f"public.{t}: removed {kind} {name}" for t, kind, name in sorted(before - after)]
    return lines
