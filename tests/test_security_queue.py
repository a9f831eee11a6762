"""
Clients cannot touch the queue: on plain PostgreSQL and on a Supabase-like database (where every
object in `public` is granted to anon and authenticated), with the anon key and with a user's
JWT, nobody but the service reads, writes or runs anything of procrastinate's or broseph's
internals. `broseph migrate` re-applies the lock-down every run, `broseph health` notices when
it is gone, and service_role — the producers' role — can enqueue.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest

from broseph.ops import health
from broseph.settings import Settings
from tests import factories, security_support
from tests.conftest import wait_until
from tests.profiles import CLIENT_ROLES, as_client, broseph_cli


@pytest.fixture
def db_url(profile_db_url: str) -> str:
    """
    Every test of this module runs on both profiles.
    """
    return profile_db_url


ATTACKS = {
    # Every queued job's params (ids of users and groups, for a start).
    "read_params": "SELECT args FROM public.procrastinate_jobs",
    # A job of any type, with any payload, straight into the queue.
    "defer_job": (
        "SELECT public.procrastinate_defer_jobs_v1(ARRAY[ROW('prompts', 'GeneratePrompt', 0,"
        ' NULL, NULL, \'{"group_id": "00000000-0000-0000-0000-000000000000"}\'::jsonb,'
        " NULL)::public.procrastinate_job_to_defer_v1])"
    ),
    # Push every pending job ten years out.
    "reschedule": (
        "UPDATE public.procrastinate_jobs SET scheduled_at = now() + interval '10 years'"
        " WHERE status = 'todo'"
    ),
    # A worker that does not exist, so `broseph health` says the service is up.
    "fake_worker": "INSERT INTO public.procrastinate_workers DEFAULT VALUES",
    "fake_worker_fn": "SELECT public.procrastinate_register_worker_v1()",
    "fake_heartbeat": "SELECT public.procrastinate_update_heartbeat_v1(1)",
}


async def _queue_state(conn) -> list[tuple]:
    cur = await conn.execute(
        "SELECT id, args, scheduled_at FROM public.procrastinate_jobs ORDER BY id"
    )
    jobs = [tuple(r.values()) for r in await cur.fetchall()]
    cur = await conn.execute("SELECT count(*) AS n FROM public.procrastinate_workers")
    return [*jobs, ("workers", (await cur.fetchone())["n"])]


@pytest.mark.parametrize("role", CLIENT_ROLES)
@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_a_client_cannot_touch_the_queue(conn, db_url, role, attack):
    gid = await factories.group(conn)
    me = await factories.user(conn)
    await factories.member(conn, gid, me)
    await factories.message(conn, gid, me)  # queues jobs through the triggers
    before = await _queue_state(conn)
    assert len(before) > 1

    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        async with conn.transaction():
            await as_client(conn, role, me if role == "authenticated" else None)
            await conn.execute(ATTACKS[attack])
    assert await _queue_state(conn) == before
    if attack.startswith("fake_"):
        report = await health.check(Settings(_env_file=None, database_url=db_url))  # type: ignore[call-arg]
        assert not report.healthy and report.live_workers == 0


async def test_no_client_role_holds_any_privilege_on_queue_or_internals(conn):
    reach = await security_support.client_reach(conn)
    assert security_support.forbidden(reach) == []
    # The few grants clients need are there (RLS policies and CHECKs call these as the client).
    assert security_support.ALLOWED <= reach
    # Of the job records, clients may read the read path's columns (column privileges), nothing
    # table-wide: params, last_error, result, keys stay the service's.
    assert await security_support.job_record_columns(conn) == {
        "anon": set(),
        "authenticated": security_support.CLIENT_COLUMNS,
        "public": set(),
    }
    cur = await conn.execute(
        "SELECT has_table_privilege('authenticated', 'broseph.job_records', 'SELECT') AS wide"
    )
    assert await cur.fetchone() == {"wide": False}
    # service_role, the producers' role, may enqueue; nobody else may.
    cur = await conn.execute(
        "SELECT has_function_privilege('service_role', 'broseph.enqueue(text, jsonb, text,"
        " timestamptz, integer, text, jsonb, text, text)', 'EXECUTE') AS one,"
        " has_function_privilege('service_role', 'broseph.enqueue_many(text, jsonb[], text[],"
        " timestamptz, integer, text, jsonb, text, text)', 'EXECUTE') AS many"
    )
    assert await cur.fetchone() == {"one": True, "many": True}


async def _regress(conn) -> None:
    """
    What a procrastinate upgrade (or a hurried operator) does: functions dropped and re-created
    — they come back with the default privileges — and a grant made by hand.
    """
    await conn.execute(
        """
        DROP FUNCTION public.procrastinate_register_worker_v1();
        CREATE FUNCTION public.procrastinate_register_worker_v1()
            RETURNS TABLE(worker_id bigint) LANGUAGE plpgsql
        AS $$
        BEGIN
            RETURN QUERY INSERT INTO procrastinate_workers DEFAULT VALUES
            RETURNING procrastinate_workers.id;
        END;
        $$;
        GRANT SELECT, UPDATE ON public.procrastinate_jobs TO anon;
        GRANT USAGE ON SEQUENCE public.procrastinate_jobs_id_seq TO authenticated;
        GRANT EXECUTE ON FUNCTION broseph.field_key(text, text[], jsonb) TO PUBLIC;
        GRANT CREATE ON SCHEMA broseph TO authenticated;
        ALTER TABLE broseph.job_records DISABLE ROW LEVEL SECURITY;
        """
    )


async def test_migrate_reapplies_the_lock_down_every_run(conn, db_url):
    await _regress(conn)
    regressed = security_support.forbidden(await security_support.client_reach(conn))
    assert ("public.procrastinate_jobs", "anon", "SELECT") in regressed
    assert ("public.procrastinate_register_worker_v1()", "public", "EXECUTE") in regressed

    done = broseph_cli(db_url, "migrate")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "lock-down" in done.stdout
    assert security_support.forbidden(await security_support.client_reach(conn)) == []
    cur = await conn.execute(
        "SELECT relrowsecurity AS rls FROM pg_class WHERE oid = 'broseph.job_records'::regclass"
    )
    assert (await cur.fetchone())["rls"] is True
    # Nothing to re-apply: the next run says nothing about it.
    again = broseph_cli(db_url, "migrate")
    assert again.returncode == 0 and "lock-down" not in again.stdout, again.stdout


async def test_health_reports_a_grant_or_rls_regression_with_the_fix(conn, db_url):
    settings = Settings(_env_file=None, database_url=db_url)  # type: ignore[call-arg]
    assert (await health.check(settings, min_workers=0)).healthy
    await _regress(conn)

    report = await health.check(settings, min_workers=0)
    assert not report.healthy
    problems = "\n".join(report.problems)
    for expected in (
        "anon can SELECT, UPDATE public.procrastinate_jobs",
        "authenticated can USAGE public.procrastinate_jobs_id_seq",
        "PUBLIC can EXECUTE broseph.field_key(text, text[], jsonb)",
        "PUBLIC can EXECUTE public.procrastinate_register_worker_v1()",
        "authenticated can CREATE schema broseph",
        "row-level security is off on broseph.job_records",
    ):
        assert expected in problems, problems
    assert all(p.endswith("(run broseph migrate)") for p in report.problems), problems
    # The command an operator (or a probe) runs says the same and exits 1.
    probe = broseph_cli(db_url, "health", "--min-workers", "0")
    assert probe.returncode == 1, probe.stdout + probe.stderr
    assert "PUBLIC can EXECUTE broseph.field_key(text, text[], jsonb) (run broseph migrate)" in (
        " ".join(probe.stdout.split())
    )

    broseph_cli(db_url, "migrate")
    assert (await health.check(settings, min_workers=0)).healthy


async def test_service_role_enqueues_and_a_worker_completes_the_job(conn, db_url, start_worker):
    gid = await factories.group(conn)
    async with await psycopg.AsyncConnection.connect(db_url) as producer:
        async with producer.transaction():
            await as_client(producer, "service_role")
            cur = await producer.execute(
                "SELECT broseph.enqueue('ProcessEngagement', jsonb_build_object("
                "'group_id', %s::text, 'local_date', '2026-03-01'), 'svc:' || %s::text)",
                (gid, gid),
            )
            row = await cur.fetchone()
            assert row is not None
            record_id: uuid.UUID = row[0]
        # enqueue_many too (fan-outs), same role.
        async with producer.transaction():
            await as_client(producer, "service_role")
            cur = await producer.execute(
                "SELECT broseph.enqueue_many('GeneratePrompt', ARRAY[jsonb_build_object("
                "'group_id', %s::text, 'local_date', '2026-03-01')])",
                (gid,),
            )
            row = await cur.fetchone()
            assert row is not None and len(row[0]) == 1
    await start_worker()

    async def completed() -> bool:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM broseph.job_records WHERE status = 'completed'"
            " AND (id = %s OR job_type = 'GeneratePrompt')",
            (record_id,),
        )
        return (await cur.fetchone())["n"] == 2

    await wait_until(completed)
    cur = await conn.execute(
        "SELECT count(*) AS n FROM public.group_engagement_daily WHERE group_id = %s", (gid,)
    )
    assert (await cur.fetchone())["n"] == 1
