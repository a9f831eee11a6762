"""
The app owns its tables: on a database where the Broseph app (NestJS, Supabase CLI migrations)
created profiles, groups, messages, … first, `broseph migrate` checks they hold what the jobs
need, adopts them — listing everything it adds to them — and the jobs run end to end. A table
that lacks something gets one precise line per gap, a non-zero exit and no change at all.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests import factories, pg
from tests.conftest import wait_until
from tests.profiles import broseph_cli, prepare_supabase

APP_SCHEMA = (Path(__file__).parent / "app_schema.sql").read_text()
APP_TABLES = (
    "profiles",
    "groups",
    "group_members",
    "prompts",
    "messages",
    "device_tokens",
    "notification_preferences",
    "notifications",
)


def _app_database(admin_url: str, profile: str, schema: str) -> Iterator[str]:
    name = pg.create_database(admin_url, prefix="badopt")
    url = pg.with_dbname(admin_url, name)
    if profile == "supabase":
        # The app's migrations, broseph's and the worker all run as Supabase's `postgres`.
        url = prepare_supabase(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(schema.encode())
    yield url
    pg.drop_database(admin_url, name)


@pytest.fixture
def app_db(admin_url: str, profile: str) -> Iterator[str]:
    """
    The app's database before broseph: its tables, its columns, its policies.
    """
    yield from _app_database(admin_url, profile, APP_SCHEMA)


def _footprint(url: str) -> dict[str, list[tuple]]:
    """
    Everything about the app's tables broseph could change: columns and their types, indexes,
    constraints, triggers, policies, RLS flags and grants.
    """
    q = {
        "columns": "SELECT table_name, column_name, data_type, is_nullable, column_default"
        " FROM information_schema.columns WHERE table_schema = 'public'",
        "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
        " FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
        "indexes": "SELECT indexrelid::regclass::text FROM pg_index i JOIN pg_class c"
        " ON c.oid = i.indrelid WHERE c.relnamespace = 'public'::regnamespace",
        "triggers": "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal",
        "policies": "SELECT tablename, policyname, qual FROM pg_policies",
        "rls": "SELECT relname, relrowsecurity FROM pg_class"
        " WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'",
        "grants": "SELECT table_name, grantee, privilege_type"
        " FROM information_schema.role_table_grants WHERE table_schema = 'public'",
        "schemas": "SELECT nspname FROM pg_namespace",
        "functions": "SELECT oid::regprocedure::text FROM pg_proc"
        " WHERE pronamespace <> 'pg_catalog'::regnamespace"
        " AND pronamespace <> 'information_schema'::regnamespace",
    }
    with psycopg.connect(url) as conn:
        return {k: sorted(map(tuple, conn.execute(v).fetchall())) for k, v in q.items()}


def _only_app_tables(rows: list[tuple]) -> list[tuple]:
    return [r for r in rows if str(r[0]).removeprefix("public.") in APP_TABLES]


@pytest.fixture
def db_url(app_db: str) -> str:
    """
    The app, worker and settings fixtures of tests/conftest.py run on the adopted database.
    """
    return app_db


async def test_app_tables_are_adopted_listed_and_the_jobs_run_end_to_end(
    app_db, conn, start_worker
):
    before = _footprint(app_db)
    done = broseph_cli(app_db, "migrate")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "adopted your tables for 0002_domain.sql" in out
    # Everything broseph adds to an app table is listed as it is added.
    for line in (
        "public.messages: added trigger broseph_messages_engagement",
        "public.messages: added trigger broseph_messages_notify",
        "public.messages: added trigger broseph_server_timestamps",
        "public.notifications: added column record_id uuid",
        "public.notifications: added column covered_until timestamp with time zone",
        "public.notifications: added index notifications_record_id_key",
        "public.prompts: added index prompts_created_idx",
        "public.group_engagement_daily: created table",
    ):
        assert line in out, out
    assert "public.notifications: added column updated_at" not in out  # the app's own, kept
    after = _footprint(app_db)
    # Nothing of the app's was changed or dropped; its policies, RLS flags and grants are as
    # they were, and broseph added no policy to an app table.
    for kind in ("columns", "constraints", "indexes", "triggers", "policies", "rls", "grants"):
        assert set(_only_app_tables(before[kind])) <= set(_only_app_tables(after[kind])), kind
    for kind in ("policies", "rls", "grants"):
        assert _only_app_tables(before[kind]) == _only_app_tables(after[kind]), kind
    # A second run adds nothing and lists nothing.
    again = broseph_cli(app_db, "migrate")
    assert again.returncode == 0 and again.stdout.strip() == "database is up to date", again

    # The jobs, end to end, on the app's tables: a message → engagement analytics and a push to
    # the other member's phone; the group's prompt of the day.
    gid = await factories.group(conn)
    ana, ben = await factories.user(conn, name="Ana"), await factories.user(conn, name="Ben")
    for uid in (ana, ben):
        await factories.member(conn, gid, uid)
    await conn.execute(
        "INSERT INTO public.device_tokens (user_id, kind, identifier) VALUES (%s, 'fid', 'ben-1')",
        (ben,),
    )
    await factories.message(conn, gid, ana)
    await conn.execute(
        "SELECT broseph.enqueue('GeneratePrompt', jsonb_build_object('group_id', %s::text))",
        (gid,),
    )
    await conn.execute("UPDATE procrastinate_jobs SET scheduled_at = now()")  # skip debounce
    await start_worker()

    async def all_done() -> bool:
        cur = await conn.execute(
            "SELECT count(*) FILTER (WHERE status <> 'completed') AS open, count(*) AS n"
            " FROM broseph.job_records"
        )
        row = await cur.fetchone()
        return row["open"] == 0 and row["n"] >= 4

    await wait_until(all_done, within=30)
    cur = await conn.execute("SELECT job_type FROM broseph.job_records ORDER BY 1")
    assert {r["job_type"] for r in await cur.fetchall()} == {
        "GeneratePrompt",
        "ProcessEngagement",
        "DeliverGroupEvent",
    }
    today = datetime.datetime.now(datetime.UTC).date()
    cur = await conn.execute(
        "SELECT message_count FROM public.group_engagement_daily WHERE group_id = %s", (gid,)
    )
    assert [r["message_count"] for r in await cur.fetchall()] == [1]
    cur = await conn.execute(
        "SELECT local_date, source FROM public.prompts WHERE group_id = %s", (gid,)
    )
    assert await cur.fetchall() == [{"local_date": today, "source": "offline"}]
    cur = await conn.execute(
        "SELECT n.type::text, n.status, n.record_id IS NOT NULL AS by_job"
        " FROM public.notifications n WHERE n.user_id = %s ORDER BY 1",
        (ben,),
    )
    assert {(r["type"], r["status"], r["by_job"]) for r in await cur.fetchall()} == {
        ("new_message", "sent", True),
        ("new_prompt", "sent", True),
    }


BROKEN = (
    APP_SCHEMA.replace(
        "    prompt_id uuid REFERENCES public.prompts (id) ON DELETE SET NULL,\n", ""
    )
    .replace(
        "    edited_at timestamptz,\n    created_at timestamptz NOT NULL DEFAULT now()",
        "    edited_at timestamptz,\n    created_at timestamp NOT NULL DEFAULT now()",
    )
    .replace(",\n    CONSTRAINT prompts_one_per_day UNIQUE (group_id, local_date)", "")
    .replace(
        "('new_message', 'prompt_reminder', 'friend_joined', 'new_prompt', 'app_announcement')",
        "('new_message', 'friend_joined', 'app_announcement')",
    )
    .replace("    quiet_end time,\n", "")
)


def test_missing_pieces_are_named_one_per_line_and_nothing_changes(admin_url, profile):
    assert BROKEN != APP_SCHEMA
    databases = _app_database(admin_url, profile, BROKEN)
    url = next(databases)
    try:
        before = _footprint(url)
        done = broseph_cli(url, "migrate")
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Traceback" not in done.stderr + done.stdout
        lines = done.stderr.strip().splitlines()
        assert lines[0].startswith("broseph migrate: your tables lack what the jobs need")
        assert sorted(line.strip() for line in lines[1:]) == sorted(
            [
                "public.messages.prompt_id: column missing (uuid)",
                "public.messages.created_at: is timestamp without time zone,"
                " needs timestamp with time zone",
                "public.prompts: unique key missing on (group_id, local_date)",
                "public.notifications.type: enum notification_kind lacks"
                " 'prompt_reminder', 'new_prompt'",
                "public.notification_preferences.quiet_end:"
                " column missing (time without time zone)",
            ]
        )
        assert _footprint(url) == before
    finally:
        next(databases, None)
