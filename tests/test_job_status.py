"""
Job status the apps can read (migrations/0020): through public.broseph_job_status — the schema
Supabase's API exposes — a member sees their groups' jobs and their own, nobody else's; anon
sees nothing; internals (params, last_error, result, keys) are not there; a job's progress, as
the worker writes it, shows through the same path. Every test runs on plain PostgreSQL and on
the Supabase-like profile, where everything connects as Supabase's non-superuser `postgres`.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from broseph import services
from broseph.jobs.base import JobRun, JobType
from tests import factories, security_support, testing_jobs
from tests.conftest import wait_until
from tests.profiles import as_client

VIEW_COLUMNS = ", ".join(sorted(security_support.CLIENT_COLUMNS))


@pytest.fixture
def db_url(profile_db_url: str) -> str:
    """
    Every test of this module runs on both profiles.
    """
    return profile_db_url


async def _enqueue(conn: Any, job_type: str, params: dict[str, Any]) -> uuid.UUID:
    cur = await conn.execute(
        "SELECT broseph.enqueue(%s, %s::jsonb) AS id", (job_type, psycopg.types.json.Jsonb(params))
    )
    return (await cur.fetchone())["id"]


async def _as(conn: Any, role: str, user: uuid.UUID | None, query: str) -> list[dict[str, Any]]:
    """
    `query` as a client (what PostgREST runs for supabase-js with the anon key or a user's JWT).
    """
    async with conn.transaction(force_rollback=True):
        await as_client(conn, role, user)
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query)
            return await cur.fetchall()


async def _visible(conn: Any, user: uuid.UUID) -> set[uuid.UUID]:
    rows = await _as(conn, "authenticated", user, "SELECT id FROM public.broseph_job_status")
    return {row["id"] for row in rows}


async def test_a_member_sees_their_groups_jobs_and_their_own_and_nobody_elses(conn):
    ours, theirs = await factories.group(conn), await factories.group(conn, name="Theirs")
    me, friend, stranger = [await factories.user(conn, name=n) for n in ("Me", "Friend", "Str")]
    for gid, uid in ((ours, me), (ours, friend), (theirs, stranger)):
        await factories.member(conn, gid, uid)  # friend_joined notifications: jobs of their own
    group_job = await _enqueue(
        conn, "ProcessEngagement", {"group_id": str(ours), "local_date": "2026-03-01"}
    )
    their_job = await _enqueue(
        conn, "ProcessEngagement", {"group_id": str(theirs), "local_date": "2026-03-01"}
    )
    push = {"type": "new_message", "data": {"group_id": str(ours), "message_id": str(uuid.uuid4())}}
    my_push = await _enqueue(conn, "SendNotification", {"user_id": str(me), **push})
    friends_push = await _enqueue(conn, "SendNotification", {"user_id": str(friend), **push})

    # The rule, in the words: the jobs of your groups, and your own.
    cur = await conn.execute(
        "SELECT id, group_id, user_id FROM broseph.job_records ORDER BY created_at"
    )
    records = await cur.fetchall()

    def rule(user: uuid.UUID, groups: set[uuid.UUID]) -> set[uuid.UUID]:
        return {r["id"] for r in records if r["user_id"] == user or r["group_id"] in groups}

    mine = await _visible(conn, me)
    assert mine == rule(me, {ours})
    assert {group_job, my_push} <= mine and not {their_job, friends_push} & mine
    assert await _visible(conn, friend) == rule(friend, {ours})
    assert friends_push in await _visible(conn, friend) and my_push not in (
        await _visible(conn, friend)
    )
    strangers = await _visible(conn, stranger)
    assert strangers == rule(stranger, {theirs}) and their_job in strangers
    assert not strangers & mine
    outsider = await factories.user(conn, name="Outsider")
    assert await _visible(conn, outsider) == set()


@pytest.mark.parametrize(
    "query",
    [
        "SELECT id FROM public.broseph_job_status",
        "SELECT id FROM broseph.job_records",
    ],
)
async def test_anon_sees_nothing(conn, query):
    gid = await factories.group(conn)
    await _enqueue(conn, "ProcessEngagement", {"group_id": str(gid), "local_date": "2026-03-01"})
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        await _as(conn, "anon", None, query)


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("SELECT params FROM public.broseph_job_status", psycopg.errors.UndefinedColumn),
        ("SELECT last_error FROM public.broseph_job_status", psycopg.errors.UndefinedColumn),
        ("SELECT result FROM public.broseph_job_status", psycopg.errors.UndefinedColumn),
        # Around the view, straight at the table: only the view's columns may be read.
        ("SELECT * FROM broseph.job_records", psycopg.errors.InsufficientPrivilege),
        ("SELECT params FROM broseph.job_records", psycopg.errors.InsufficientPrivilege),
        ("SELECT last_error FROM broseph.job_records", psycopg.errors.InsufficientPrivilege),
        ("SELECT idempotency_key FROM broseph.job_records", psycopg.errors.InsufficientPrivilege),
        (
            "SELECT id FROM broseph.job_records WHERE params ->> 'local_date' = '2026-03-01'",
            psycopg.errors.InsufficientPrivilege,
        ),
    ],
)
async def test_a_member_cannot_read_internals(conn, query, error):
    gid, me = await factories.group(conn), await factories.user(conn)
    await factories.member(conn, gid, me)
    rid = await _enqueue(
        conn, "ProcessEngagement", {"group_id": str(gid), "local_date": "2026-03-01"}
    )
    await conn.execute(
        "UPDATE broseph.job_records SET last_error = 'psycopg.OperationalError: secret host'"
        " WHERE id = %s",
        (rid,),
    )
    with pytest.raises(error):
        await _as(conn, "authenticated", me, query)
    # What the member may read, they read: the view's columns, and the same columns of the
    # table (what Supabase Realtime sends a subscriber).
    rows = await _as(
        conn, "authenticated", me, f"SELECT {VIEW_COLUMNS} FROM public.broseph_job_status"
    )
    assert [row["id"] for row in rows] == [rid]
    assert set(rows[0]) == security_support.CLIENT_COLUMNS
    direct = await _as(conn, "authenticated", me, f"SELECT {VIEW_COLUMNS} FROM broseph.job_records")
    assert direct == rows


async def test_the_view_shows_exactly_the_client_columns_with_the_readers_rights(conn):
    cur = await conn.execute(
        "SELECT array_agg(attname::text ORDER BY attname) AS columns,"
        "       (SELECT reloptions FROM pg_class WHERE oid = 'public.broseph_job_status'::regclass)"
        "           AS options"
        "  FROM pg_attribute WHERE attrelid = 'public.broseph_job_status'::regclass AND attnum > 0"
    )
    row = await cur.fetchone()
    assert set(row["columns"]) == security_support.CLIENT_COLUMNS
    assert row["options"] == ["security_invoker=true"]


# A job that reports progress, then waits for the test before it finishes.
_release = asyncio.Event()


async def _reports_progress(run: JobRun, payload: testing_jobs.Probe) -> None:
    await run.progress(40, "halfway there")
    await asyncio.wait_for(_release.wait(), timeout=30)


REPORTS_PROGRESS = JobType(
    name="TestReportsProgress", payload=testing_jobs.Probe, handle=_reports_progress, queue="test"
)


async def test_a_running_jobs_progress_shows_through_the_read_path(
    app, conn, start_worker, profile
):
    _release.clear()
    await testing_jobs.install(app, conn, REPORTS_PROGRESS)
    gid, me = await factories.group(conn), await factories.user(conn)
    await factories.member(conn, gid, me)
    outsider = await factories.user(conn, name="Outsider")
    rid = await _enqueue(conn, "TestReportsProgress", {"group_id": str(gid)})
    query = (
        "SELECT status, progress, progress_message, attempts, started_at, finished_at"
        f" FROM public.broseph_job_status WHERE id = '{rid}'"
    )
    assert [r["status"] for r in await _as(conn, "authenticated", me, query)] == ["pending"]

    await start_worker(queues=["test"])

    async def reported() -> bool:
        rows = await _as(conn, "authenticated", me, query)
        return bool(rows) and rows[0]["progress"] == 40

    # Written by the worker's own reporter (broseph/records.py), read as the member.
    await wait_until(reported)
    (running,) = await _as(conn, "authenticated", me, query)
    assert running["status"] == "processing" and running["progress_message"] == "halfway there"
    assert running["attempts"] == 1 and running["started_at"] and running["finished_at"] is None
    assert await _as(conn, "authenticated", outsider, query) == []

    _release.set()

    async def completed() -> bool:
        rows = await _as(conn, "authenticated", me, query)
        return rows[0]["status"] == "completed"

    await wait_until(completed)
    (done,) = await _as(conn, "authenticated", me, query)
    assert done["progress"] == 100 and done["finished_at"] is not None
    # On the Supabase-like profile the worker ran as Supabase's `postgres`: no superuser.
    async with services.pool_of(app).connection() as worker_conn:
        cur = await worker_conn.execute(
            "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
        )
        role, superuser = await cur.fetchone()
    assert (role, superuser) == (
        ("supabase_postgres_like", False) if profile == "supabase" else ("postgres", True)
    )
