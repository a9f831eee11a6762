"""
A database a user of procrastinate 3.1.0 had — its schema.sql (tests/data/), recorded as
`broseph migrate` recorded it then, broseph's migrations on top — is upgraded by `broseph migrate`
with procrastinate's own packaged upgrade files, in order, pre before post; what the upgrade
undid of ours is put back, the grants locked down again, and a worker then runs jobs (one that
retries through procrastinate_retry_job_v2, which 3.1.0 lacked). Before that, a worker refuses to
start and `broseph health` says why. On both database profiles (plain and Supabase-like).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import procrastinate
import psycopg
import pytest
from psycopg.rows import dict_row

from broseph import migrate, procrastinate_schema, services, worker
from tests import factories, pg, settings_support, testing_jobs
from tests.conftest import wait_until
from tests.profiles import PROFILES, broseph_cli, prepare_supabase

OLD_SCHEMA = Path(__file__).resolve().parent / "data" / "procrastinate-3.1.0-schema.sql"
UPGRADES = [
    "03.02.00_01_pre_batch_defer_jobs.sql",
    "03.02.00_50_post_batch_defer_jobs.sql",
    "03.03.00_01_pre_priority_lock_fetch_job.sql",
    "03.04.00_01_pre_add_retry_failed_job_procedure.sql",
    "03.04.00_50_post_add_retry_failed_job_procedure.sql",
]
FETCH_V2 = "'public.procrastinate_fetch_job_v2(character varying[], bigint)'::regprocedure"


@pytest.fixture(params=PROFILES)
def empty_db(request: pytest.FixtureRequest, admin_url: str) -> Iterator[str]:
    """
    An empty database of each profile; the URL is the migrating role's.
    """
    name = pg.create_database(admin_url, prefix="bupg")
    url = pg.with_dbname(admin_url, name)
    yield url if request.param == "plain" else prepare_supabase(url)
    pg.drop_database(admin_url, name)


def _as_of_procrastinate_3_1(url: str) -> None:
    """
    The database as `broseph migrate` left it for a user with procrastinate 3.1.0 installed.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(OLD_SCHEMA.read_bytes())
        conn.execute(migrate._BOOTSTRAP.encode())
        conn.execute(
            "INSERT INTO broseph.schema_migrations (name, checksum) VALUES (%s, %s)",
            (migrate.PROCRASTINATE_ENTRY, "procrastinate 3.1.0"),
        )
        for migration in migrate.load_migrations():
            with conn.transaction():
                conn.execute(migration.sql.encode())
                conn.execute(
                    "INSERT INTO broseph.schema_migrations (name, checksum) VALUES (%s, %s)",
                    (migration.name, migration.checksum),
                )
        for always in migrate.load_always():
            with conn.transaction():
                conn.execute(always.sql.encode())


def _catalog(url: str) -> dict[str, Any]:
    """
    procrastinate's objects as the catalog describes them (bodies aside: the same function
    differs in whitespace between schema.sql and an upgrade file).
    """
    with psycopg.connect(url) as conn:
        return {
            "functions": conn.execute(
                "SELECT array_agg(oid::regprocedure::text ORDER BY oid::regprocedure::text)"
                " FROM pg_proc WHERE proname LIKE 'procrastinate%'"
            ).fetchone(),
            "columns": conn.execute(
                "SELECT array_agg(format('%s.%s %s %s', c.relname, a.attname,"
                " format_type(a.atttypid, a.atttypmod), a.attnotnull)"
                " ORDER BY c.relname, a.attname)"
                " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
                " WHERE c.relname LIKE 'procrastinate%' AND c.relkind = 'r' AND a.attnum > 0"
                " AND NOT a.attisdropped"
            ).fetchone(),
            "indexes": conn.execute(
                "SELECT array_agg(pg_get_indexdef(indexrelid) ORDER BY pg_get_indexdef(indexrelid))"
                " FROM pg_index"
                " WHERE indrelid::regclass::text LIKE 'procrastinate%'"
            ).fetchone(),
            "triggers": conn.execute(
                "SELECT array_agg(pg_get_triggerdef(oid) ORDER BY tgname) FROM pg_trigger"
                " WHERE tgrelid::regclass::text LIKE 'procrastinate%' AND NOT tgisinternal"
            ).fetchone(),
            "enums": conn.execute(
                "SELECT array_agg(format('%s.%s', t.typname, e.enumlabel)"
                " ORDER BY t.typname, e.enumsortorder) FROM pg_enum e"
                " JOIN pg_type t ON t.oid = e.enumtypid WHERE t.typname LIKE 'procrastinate%'"
            ).fetchone(),
            "fetch_v2_settings": conn.execute(
                f"SELECT proconfig FROM pg_proc WHERE oid = {FETCH_V2}"
            ).fetchone(),
        }


async def _run_jobs(url: str) -> None:
    """
    A worker on the database runs an engagement job, and a job that fails twice, retried through
    procrastinate_retry_job_v2 (03.04.00), then fails for good.
    """
    settings = settings_support.worker_settings(url)
    app = worker.create_app(settings, periodic=False)
    async with (
        app.open_async(),
        await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn,
    ):
        services.install(app, services.build(settings, services.pool_of(app)))
        await testing_jobs.install(app, conn, testing_jobs.FAILING)
        gid = await factories.group(conn)
        cur = await conn.execute(
            "SELECT broseph.enqueue('ProcessEngagement', jsonb_build_object("
            "'group_id', %(g)s::text, 'local_date', '2026-03-01')) AS done,"
            " broseph.enqueue('TestAlwaysFails', jsonb_build_object('group_id', %(g)s::text))"
            " AS fails",
            {"g": gid},
        )
        ids = await cur.fetchone()
        assert ids is not None
        running = asyncio.create_task(
            app.run_worker_async(install_signal_handlers=False, fetch_job_polling_interval=0.1)
        )

        async def settled() -> bool:
            if running.done():
                running.result()
            cur = await conn.execute(
                "SELECT array_agg(status ORDER BY job_type) AS s FROM broseph.job_records"
                " WHERE id IN (%s, %s)",
                (ids["done"], ids["fails"]),
            )
            return (await cur.fetchone())["s"] == ["completed", "failed"]

        try:
            await wait_until(settled, within=30)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
        cur = await conn.execute(
            "SELECT attempts, last_error FROM broseph.job_records WHERE id = %s", (ids["fails"],)
        )
        assert await cur.fetchone() == {
            "attempts": 3,
            "last_error": "RuntimeError: boom on attempt 3",
        }


async def test_a_database_of_procrastinate_3_1_upgrades_with_broseph_migrate_and_runs_jobs(
    empty_db: str, admin_url: str
) -> None:
    _as_of_procrastinate_3_1(empty_db)
    # 0012's settings are on 3.1.0's procrastinate_fetch_job_v2, which 03.03.00 re-creates.
    assert _catalog(empty_db)["fetch_v2_settings"] == (
        ["enable_sort=off", "enable_bitmapscan=off"],
    )

    # Before: a worker refuses to start, in one line; `broseph health` says the same.
    refused = broseph_cli(empty_db, "worker", timeout=120)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr.strip().splitlines() == [
        "error: the database's procrastinate schema is 03.01.00 (procrastinate 3.1.0),"
        f" the installed procrastinate {procrastinate.__version__} needs 03.04.00: run broseph"
        f" migrate (pending: {', '.join(UPGRADES)})"
    ]
    health = broseph_cli(empty_db, "health", "--min-workers", "0")
    assert health.returncode == 1
    assert "03.01.00 (procrastinate 3.1.0), the installed procrastinate" in " ".join(
        health.stdout.split()
    )

    migrated = broseph_cli(empty_db, "migrate")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    lines = migrated.stdout.splitlines()
    assert [line for line in lines if line.startswith("applied ")] == [
        f"applied procrastinate/{name}" for name in UPGRADES
    ]
    assert (
        "restored: the plan settings of migrations/0012 on procrastinate_fetch_job_v2 (a"
        " procrastinate upgrade had re-created it)" in lines
    )

    # Each upgrade file recorded with its checksum; the schema is the installed one's.
    with psycopg.connect(empty_db) as conn:
        recorded = dict(
            conn.execute(
                "SELECT name, checksum FROM broseph.schema_migrations"
                " WHERE name LIKE 'procrastinate/%'"
            ).fetchall()
        )
    packaged = {u.name: u for u in procrastinate_schema.packaged()}
    assert recorded == {
        migrate.PROCRASTINATE_ENTRY: "procrastinate 3.1.0",
        **{
            f"procrastinate/{name}": hashlib.sha256(packaged[name].sql.encode()).hexdigest()
            for name in UPGRADES
        },
    }
    # The same procrastinate objects as a database installed fresh, ours back on them.
    fresh = pg.create_database(admin_url, prefix="bupgf")
    try:
        fresh_url = pg.with_dbname(admin_url, fresh)
        await migrate.migrate(fresh_url)
        assert _catalog(empty_db) == _catalog(fresh_url)
    finally:
        pg.drop_database(admin_url, fresh)

    health = broseph_cli(empty_db, "health", "--min-workers", "0", "--json")
    assert health.returncode == 0, health.stdout + health.stderr  # grants locked down again too
    assert json.loads(health.stdout)["procrastinate_schema"] == (
        "03.04.00 (procrastinate 3.1.0, then 5 upgrade files)"
    )
    assert await migrate.migrate(empty_db) == []
    await _run_jobs(empty_db)


async def test_a_procrastinate_schema_installed_by_hand_is_read_then_upgraded(
    admin_url: str,
) -> None:
    name = pg.create_database(admin_url, prefix="bupga")
    url = pg.with_dbname(admin_url, name)
    try:
        # procrastinate 3.1.0's `schema --apply`, then 03.02.00's pre file by hand (mid-upgrade).
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(OLD_SCHEMA.read_bytes())
            conn.execute(_packaged(UPGRADES[0]).sql.encode())
        said: list[str] = []
        applied = await migrate.migrate(url, report=said.append)
        assert applied[: len(UPGRADES)] == [
            migrate.PROCRASTINATE_ENTRY,
            *(f"procrastinate/{name}" for name in UPGRADES[1:]),
        ]
        assert said[0] == (
            "adopted the procrastinate schema found in the database (found installed, schema"
            " 03.01.00)"
        )
        async with await psycopg.AsyncConnection.connect(url) as conn:
            cur = await conn.execute(
                "SELECT checksum FROM broseph.schema_migrations WHERE name = %s",
                (f"procrastinate/{UPGRADES[0]}",),
            )
            assert await cur.fetchone() == (procrastinate_schema.FOUND,)
            report = await procrastinate_schema.check(procrastinate_schema.rows_on(conn))
        assert report.problems == []
        await _run_jobs(url)
    finally:
        pg.drop_database(admin_url, name)


def _packaged(name: str) -> procrastinate_schema.Upgrade:
    [upgrade] = [u for u in procrastinate_schema.packaged() if u.name == name]
    return upgrade


def test_a_found_schema_is_read_by_whole_versions() -> None:
    everything = {u.name for u in procrastinate_schema.packaged()}
    assert procrastinate_schema.adopt(everything) == ("found installed, schema 03.04.00", [])
    # 03.03.00's pre file missing: the base is 03.02.00; the 03.04.00 files present beyond it.
    base, beyond = procrastinate_schema.adopt(everything - {UPGRADES[2]})
    assert base == "found installed, schema 03.02.00"
    assert [u.name for u in beyond] == UPGRADES[3:]
    # Only 3.0's pre file: nothing of 3.0 counts yet.
    base, beyond = procrastinate_schema.adopt({"03.00.00_01_pre_cancel_notification.sql"})
    assert base == "found installed, schema 02.14.01"
    assert [u.name for u in beyond] == ["03.00.00_01_pre_cancel_notification.sql"]
    with pytest.raises(ValueError, match=r"predates procrastinate 3\.0"):
        procrastinate_schema.adopt(set())


async def test_a_procrastinate_schema_older_than_3_is_refused(admin_url: str) -> None:
    name = pg.create_database(admin_url, prefix="bupgo")
    url = pg.with_dbname(admin_url, name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(OLD_SCHEMA.read_bytes())
            # What 3.0's first upgrade file created, gone: a 2.x schema as far as broseph can tell.
            conn.execute(
                "DROP FUNCTION procrastinate_finish_job_v1(bigint, procrastinate_job_status,"
                " boolean)"
            )
        with pytest.raises(migrate.MigrationError, match=r"predates procrastinate 3\.0"):
            await migrate.migrate(url)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM broseph.schema_migrations").fetchone() == (0,)
    finally:
        pg.drop_database(admin_url, name)
