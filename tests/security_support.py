"""
What a client role can reach, read from the catalogs — the tests' own account, independent of
the lock-down and of `broseph health` (which it checks).
"""

from __future__ import annotations

from typing import Any

import psycopg

# Who may do what beyond nothing: RLS policies call is_member as the client, and the CHECK
# constraints on profiles / groups call is_time_zone as the writer; the job records are read
# through the apps' read path (public.broseph_job_status, migrations/0020) under RLS — which
# reads the record columns of CLIENT_COLUMNS as the client, and no other — and the job-type /
# time-zone lists are public knowledge.
ALLOWED = {
    ("broseph.is_member(uuid)", "authenticated", "EXECUTE"),
    ("broseph.is_time_zone(text)", "authenticated", "EXECUTE"),
    ("broseph.job_records", "authenticated", "SELECT"),
    ("public.broseph_job_status", "authenticated", "SELECT"),
    ("broseph.job_types", "authenticated", "SELECT"),
    ("broseph.time_zone_names", "anon", "SELECT"),
    ("broseph.time_zone_names", "authenticated", "SELECT"),
}

# What a member may see of a job record: status, progress, ids and times. Never params, last_error,
# result, the idempotency / coalesce keys, source or the queue row id.
CLIENT_COLUMNS = {
    "id",
    "job_type",
    "status",
    "progress",
    "progress_message",
    "group_id",
    "user_id",
    "attempts",
    "created_at",
    "started_at",
    "finished_at",
    "next_attempt_at",
    "updated_at",
}

_REACH = """
WITH roles (role) AS (VALUES ('anon'), ('authenticated'), ('public')),
relations AS (
    SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS object, c.relkind
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
       AND ((n.nspname = 'public'
             AND (c.relname LIKE 'procrastinate\\_%' OR c.relname LIKE 'broseph\\_%'))
            OR n.nspname = 'broseph')
),
functions AS (
    SELECT p.oid,
           format('%I.%I(%s)', n.nspname, p.proname, oidvectortypes(p.proargtypes)) AS object
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE (n.nspname = 'public'
            AND (p.proname LIKE 'procrastinate\\_%' OR p.proname LIKE 'broseph\\_%'))
        OR n.nspname = 'broseph'
)
SELECT r.object, roles.role, priv.name AS privilege
  FROM relations r CROSS JOIN roles
 CROSS JOIN LATERAL unnest(CASE WHEN r.relkind = 'S' THEN ARRAY['USAGE', 'SELECT', 'UPDATE']
        ELSE ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']
        END) AS priv (name)
 WHERE CASE WHEN r.relkind = 'S' THEN has_sequence_privilege(roles.role, r.oid, priv.name)
            WHEN priv.name IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES')
                THEN has_any_column_privilege(roles.role, r.oid, priv.name)
            ELSE has_table_privilege(roles.role, r.oid, priv.name) END
UNION ALL
SELECT f.object, roles.role, 'EXECUTE'
  FROM functions f CROSS JOIN roles
 WHERE has_function_privilege(roles.role, f.oid, 'EXECUTE')
UNION ALL
SELECT s.nspname, roles.role, 'CREATE'
  FROM pg_namespace s CROSS JOIN roles
 WHERE s.nspname IN ('public', 'broseph') AND has_schema_privilege(roles.role, s.oid, 'CREATE')
"""


async def client_reach(conn: psycopg.AsyncConnection[Any]) -> set[tuple[str, str, str]]:
    """
    {(object, role, privilege)} that anon, authenticated or PUBLIC hold on the queue's tables,
    sequences, views and functions, on everything in schema broseph, and CREATE on the schemas.
    """
    cur = await conn.execute(_REACH)
    rows = await cur.fetchall()
    return {_triple(row) for row in rows}


def _triple(row: Any) -> tuple[str, str, str]:
    if isinstance(row, dict):
        return (str(row["object"]), str(row["role"]), str(row["privilege"]))
    return (str(row[0]), str(row[1]), str(row[2]))


def forbidden(reach: set[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """
    What a client can reach beyond ALLOWED (PUBLIC's reach counts for everyone).
    """
    return sorted(t for t in reach if t not in ALLOWED)


_COLUMN_REACH = """
SELECT a.attname AS column, roles.role
  FROM pg_attribute a
 CROSS JOIN (VALUES ('anon'), ('authenticated'), ('public')) AS roles (role)
 WHERE a.attrelid = 'broseph.job_records'::regclass AND a.attnum > 0 AND NOT a.attisdropped
   AND has_column_privilege(roles.role, a.attrelid, a.attnum, 'SELECT')
"""


async def job_record_columns(conn: psycopg.AsyncConnection[Any]) -> dict[str, set[str]]:
    """
    {role: columns of broseph.job_records it may SELECT} for anon, authenticated and PUBLIC.
    """
    cur = await conn.execute(_COLUMN_REACH)
    seen: dict[str, set[str]] = {"anon": set(), "authenticated": set(), "public": set()}
    for row in await cur.fetchall():
        column, role = (row["column"], row["role"]) if isinstance(row, dict) else row
        seen[str(role)].add(str(column))
    return seen
