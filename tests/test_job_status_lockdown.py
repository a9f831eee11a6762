"""
The apps' read path stays as migrations/0020 made it: every `broseph migrate` keeps
broseph.job_records in the supabase_realtime publication (where it exists, however late it was
created) with exactly the client columns, re-narrows a table-wide grant, keeps the view running
with its reader's rights; `broseph health` notices each regression; a fix the migrating role may
not make (a publication another role owns) is reported and skipped. On plain PostgreSQL and on
the Supabase-like profile, where `broseph migrate` runs as Supabase's non-superuser `postgres`.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from broseph.ops import health
from broseph.settings import Settings
from tests import pg, security_support
from tests.profiles import SUPABASE_POSTGRES, broseph_cli

# Generated columns cannot be in a publication's column list before PostgreSQL 18 (nor are they
# decoded): Realtime's RLS check reads them from the table.
PUBLISHED = security_support.CLIENT_COLUMNS - {"group_id", "user_id"}


@pytest.fixture
def db_url(profile_db_url: str) -> str:
    """
    Every test of this module runs on both profiles.
    """
    return profile_db_url


@pytest.fixture
def admin_conn(admin_url: str, db_url: str):
    """
    A superuser's connection to the same database (Supabase's supabase_admin, not the app's).
    """
    dbname = str(conninfo_to_dict(db_url)["dbname"])
    with psycopg.connect(pg.with_dbname(admin_url, dbname), autocommit=True) as conn:
        yield conn


async def _published(conn) -> set[str] | None:
    cur = await conn.execute(
        "SELECT attnames FROM pg_publication_tables"
        " WHERE pubname = 'supabase_realtime' AND schemaname = 'broseph'"
        "   AND tablename = 'job_records'"
    )
    row = await cur.fetchone()
    return set(row["attnames"]) if row else None


async def _has_publication(conn) -> bool:
    cur = await conn.execute(
        "SELECT count(*) AS n FROM pg_publication WHERE pubname = 'supabase_realtime'"
    )
    return (await cur.fetchone())["n"] == 1


def _settings(db_url: str) -> Settings:
    return Settings(_env_file=None, database_url=db_url)  # type: ignore[call-arg]


async def test_realtime_publishes_exactly_the_client_columns_where_the_publication_exists(
    conn, profile
):
    # Plain PostgreSQL has no supabase_realtime; Supabase creates it empty.
    assert await _has_publication(conn) is (profile == "supabase")
    if profile == "supabase":
        assert await _published(conn) == PUBLISHED
        assert "params" not in PUBLISHED and "last_error" not in PUBLISHED
    else:
        assert await _published(conn) is None
    # Supabase Realtime sends a subscriber only the columns its role may SELECT.
    assert (await security_support.job_record_columns(conn))[
        "authenticated"
    ] == security_support.CLIENT_COLUMNS


async def test_a_publication_created_after_the_first_migrate_gets_the_table(
    conn, db_url, admin_conn, profile
):
    if profile == "plain":
        # Someone turns Realtime on later: the publication appears after broseph was migrated.
        admin_conn.execute("CREATE PUBLICATION supabase_realtime")
    else:
        await conn.execute("ALTER PUBLICATION supabase_realtime DROP TABLE broseph.job_records")
    assert await _published(conn) is None
    report = await health.check(_settings(db_url), min_workers=0)
    assert report.problems == [
        "broseph.job_records is not published to supabase_realtime (apps cannot subscribe to"
        " job progress) (run broseph migrate)"
    ]

    done = broseph_cli(db_url, "migrate")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "lock-down: fixed: broseph.job_records is not published" in done.stdout
    assert await _published(conn) == PUBLISHED
    assert (await health.check(_settings(db_url), min_workers=0)).healthy


async def _regress_read_path(conn, admin_conn, profile) -> None:
    """
    What a hurried operator (or a dashboard toggle) does to the read path.
    """
    await conn.execute(
        """
        GRANT SELECT ON broseph.job_records TO authenticated;
        GRANT SELECT (params) ON broseph.job_records TO anon;
        GRANT SELECT ON public.broseph_job_status TO anon;
        ALTER VIEW public.broseph_job_status SET (security_invoker = false);
        """
    )
    if profile == "plain":
        admin_conn.execute("CREATE PUBLICATION supabase_realtime")
    else:
        # The dashboard's "enable Realtime" publishes every column.
        await conn.execute("ALTER PUBLICATION supabase_realtime DROP TABLE broseph.job_records")
    await conn.execute("ALTER PUBLICATION supabase_realtime ADD TABLE broseph.job_records")


async def test_migrate_repairs_the_read_path_and_health_reports_it_before(
    conn, db_url, admin_conn, profile
):
    await _regress_read_path(conn, admin_conn, profile)
    assert "params" in (await _published(conn) or set())
    reach = security_support.forbidden(await security_support.client_reach(conn))
    assert ("public.broseph_job_status", "anon", "SELECT") in reach
    assert (await security_support.job_record_columns(conn))["anon"] == {"params"}

    report = await health.check(_settings(db_url), min_workers=0)
    problems = "\n".join(report.problems)
    for expected in (
        "authenticated can SELECT broseph.job_records (run broseph migrate)",
        "anon can SELECT broseph.job_records (params) (run broseph migrate)",
        "anon can SELECT public.broseph_job_status (run broseph migrate)",
        "public.broseph_job_status runs with its owner's rights (security_invoker is off):"
        " every job record is readable through it (run broseph migrate)",
        "supabase_realtime publishes internals of broseph.job_records (coalesce_key,"
        " idempotency_key, last_error, max_attempts, params, procrastinate_job_id, result,"
        " source, traceparent, tracestate) (run broseph migrate)",
    ):
        assert expected in problems, problems

    done = broseph_cli(db_url, "migrate")
    assert done.returncode == 0, done.stdout + done.stderr
    assert security_support.forbidden(await security_support.client_reach(conn)) == []
    assert await security_support.job_record_columns(conn) == {
        "anon": set(),
        "authenticated": security_support.CLIENT_COLUMNS,
        "public": set(),
    }
    assert await _published(conn) == PUBLISHED
    cur = await conn.execute(
        "SELECT reloptions FROM pg_class WHERE oid = 'public.broseph_job_status'::regclass"
    )
    assert (await cur.fetchone())["reloptions"] == ["security_invoker=true"]
    assert (await health.check(_settings(db_url), min_workers=0)).healthy
    again = broseph_cli(db_url, "migrate")
    assert again.returncode == 0 and "lock-down" not in again.stdout, again.stdout


# Only there: the plain profile migrates as a superuser, who may change any publication.
@pytest.mark.parametrize("profile", ["supabase"])
async def test_a_publication_the_migrating_role_may_not_change_is_reported_and_skipped(
    conn, db_url, admin_conn, profile
):
    admin_conn.execute(
        "ALTER PUBLICATION supabase_realtime DROP TABLE broseph.job_records;"
        " ALTER PUBLICATION supabase_realtime OWNER TO supabase_auth_admin"
    )
    # Something else to fix in the same run: it is fixed all the same.
    await conn.execute("GRANT SELECT ON public.broseph_job_status TO anon")

    done = broseph_cli(db_url, "migrate")
    assert done.returncode == 0, done.stdout + done.stderr
    out = " ".join(done.stdout.split())
    assert (
        "lock-down: could not fix: broseph.job_records is not published to supabase_realtime"
        " (apps cannot subscribe to job progress) (must be owner of publication"
        " supabase_realtime); run as a role that may: ALTER PUBLICATION supabase_realtime ADD"
        " TABLE broseph.job_records (attempts, created_at, finished_at, id, job_type,"
        " next_attempt_at, progress, progress_message, started_at, status, updated_at);"
    ) in out, out
    assert "lock-down: revoked 1 privileges" in out
    assert security_support.forbidden(await security_support.client_reach(conn)) == []
    report = await health.check(_settings(db_url), min_workers=0)
    assert report.problems == [
        "broseph.job_records is not published to supabase_realtime (apps cannot subscribe to"
        " job progress) (run broseph migrate)"
    ]


@pytest.mark.parametrize("profile", ["supabase"])
async def test_the_supabase_like_profile_migrates_as_supabase_s_postgres(conn, profile):
    cur = await conn.execute(
        "SELECT current_user AS role, r.rolsuper, r.rolcreaterole, r.rolcreatedb,"
        "       r.rolreplication, r.rolbypassrls,"
        "       (SELECT datdba::regrole::text FROM pg_database"
        "         WHERE datname = current_database()) AS database_owner,"
        "       (SELECT array_agg(DISTINCT relowner::regrole::text) FROM pg_class"
        "         WHERE oid IN ('broseph.job_records'::regclass,"
        "                       'public.procrastinate_jobs'::regclass,"
        "                       'public.broseph_job_status'::regclass)) AS owners,"
        "       (SELECT pubowner::regrole::text FROM pg_publication"
        "         WHERE pubname = 'supabase_realtime') AS publication_owner,"
        "       pg_has_role('anon', 'MEMBER') AND pg_has_role('authenticated', 'MEMBER')"
        "           AND pg_has_role('service_role', 'MEMBER') AS client_roles,"
        "       has_schema_privilege('auth', 'CREATE') AS creates_in_auth"
        "  FROM pg_roles r WHERE r.rolname = current_user"
    )
    assert await cur.fetchone() == {
        "role": SUPABASE_POSTGRES,
        "rolsuper": False,
        "rolcreaterole": True,
        "rolcreatedb": True,
        "rolreplication": True,
        "rolbypassrls": True,
        "database_owner": SUPABASE_POSTGRES,
        "owners": [SUPABASE_POSTGRES],
        "publication_owner": SUPABASE_POSTGRES,
        "client_roles": True,
        "creates_in_auth": False,
    }
