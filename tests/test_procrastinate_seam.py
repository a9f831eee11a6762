"""
The seam (broseph/engine.py): every use of procrastinate's internals behind one class that checks
them when it is built. A changed procrastinate — simulated by monkeypatching the installed one —
is refused with one line naming what changed; the database side is checked when a worker starts.
"""

from __future__ import annotations

import asyncio
import inspect
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import procrastinate
import psycopg
import pytest
from procrastinate import exceptions, jobs, manager, periodic, schema, sql
from procrastinate import worker as procrastinate_worker

from broseph import engine, migrate, procrastinate_schema, records
from broseph import sql as broseph_sql
from tests import factories
from tests.conftest import env_with, wait_until
from tests.profiles import broseph_cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def fresh_checks() -> Iterator[None]:
    """
    The checks are cached per process; each test sees the procrastinate it patched.
    """
    engine.internals.cache_clear()
    procrastinate_schema.packaged.cache_clear()
    yield
    engine.internals.cache_clear()
    procrastinate_schema.packaged.cache_clear()


def test_the_installed_procrastinate_passes_every_check() -> None:
    assert engine.Internals().version == procrastinate.__version__


# --- a changed procrastinate is refused, naming the change ---------------------------------------


def _schema_with(old: str, new: str) -> Callable[[pytest.MonkeyPatch, Path], None]:
    """
    A change: procrastinate's schema file with `old` (which it must hold) replaced by `new`.
    """

    def simulate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        text = schema.SchemaManager.get_schema()
        assert old in text
        monkeypatch.setattr(
            schema.SchemaManager, "get_schema", staticmethod(lambda: text.replace(old, new))
        )

    return simulate


def _private_method_gone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delattr(procrastinate.PsycopgConnector, "_loop_notify")


def _fetch_job_takes_more(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    async def fetch_job(self: Any, queues: Any, worker_id: int, limit: int = 1) -> None:
        return None

    monkeypatch.setattr(manager.JobManager, "fetch_job", fetch_job)


def _worker_calls_something_else(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = inspect.getsource

    def getsource(obj: Any) -> str:
        text = real(obj)
        if obj is procrastinate_worker.Worker:
            return text.replace("job_manager.fetch_job(", "job_manager.fetch_jobs(")
        return text

    monkeypatch.setattr(inspect, "getsource", getsource)


def _fetch_selects_another_column(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    query = sql.queries["fetch_job"]
    assert ", worker_id\n" in query
    monkeypatch.setitem(
        sql.queries, "fetch_job", query.replace(", worker_id\n", ", worker_id, abort_requested\n")
    )


def _from_row_reads_another_column(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    original = jobs.Job.from_row.__func__  # type: ignore[attr-defined]

    def from_row(cls: type[jobs.Job], row: dict[str, Any]) -> jobs.Job:
        row["priority_bucket"]
        return original(cls, row)  # type: ignore[no-any-return]

    monkeypatch.setattr(jobs.Job, "from_row", classmethod(from_row))


def _new_upgrade_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(schema.SchemaManager.get_migrations_path(), folder)
    (folder / "03.11.00_01_pre_add_priority_bucket.sql").write_text("SELECT 1;\n")
    monkeypatch.setattr(
        schema.SchemaManager, "get_migrations_path", staticmethod(lambda: str(folder))
    )


def _periodic_registry_renamed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def __init__(self: periodic.PeriodicRegistry) -> None:
        self.tasks: dict[Any, Any] = {}

    monkeypatch.setattr(periodic.PeriodicRegistry, "__init__", __init__)


CHANGES: dict[str, tuple[Callable[[pytest.MonkeyPatch, Path], None], str]] = {
    "private method gone": (_private_method_gone, "PsycopgConnector._loop_notify is gone"),
    "fetch_job's parameters": (
        _fetch_job_takes_more,
        "JobManager.fetch_job now takes (queues, worker_id, limit)",
    ),
    "worker calls another method": (
        _worker_calls_something_else,
        "procrastinate's Worker no longer calls job_manager.fetch_job(…)",
    ),
    "fetch columns": (
        _fetch_selects_another_column,
        "its fetch_job selects (id, status, task_name, priority, lock, queueing_lock, args,"
        " scheduled_at, queue_name, attempts, worker_id, abort_requested), broseph's",
    ),
    "Job.from_row": (
        _from_row_reads_another_column,
        "Job.from_row no longer accepts the fetched row (KeyError: 'priority_bucket')",
    ),
    "SQL function signature": (
        _schema_with("    new_lock character varying\n", "    new_lock text\n"),
        "SQL function procrastinate_retry_job_v2(bigint, timestamp with time zone, integer,"
        " character varying, character varying) is now procrastinate_retry_job_v2(bigint,"
        " timestamp with time zone, integer, character varying, text)",
    ),
    "error text": (
        _schema_with(
            '\'Job was not found or not in "doing" or', '\'No such job, or not in "doing" or'
        ),
        "procrastinate_finish_job_v1 no longer raises 'Job was not found or …'",
    ),
    "column": (
        _schema_with(
            "    worker_id bigint REFERENCES procrastinate_workers(id) ON DELETE SET NULL,\n", ""
        ),
        "table procrastinate_jobs lacks worker_id",
    ),
    "NOTIFY": (
        _schema_with(
            "SELECT json_build_object('type', 'job_inserted',",
            "SELECT json_build_object('kind', 'job_inserted',",
        ),
        "its job_inserted NOTIFY (channels or payload) changed",
    ),
    "periodic registry": (
        _periodic_registry_renamed,
        "its periodic task registry changed (AttributeError: 'PeriodicRegistry' object has no"
        " attribute 'periodic_tasks')",
    ),
    "upgrade file": (
        _new_upgrade_file,
        "it ships upgrade files broseph has not reviewed (03.11.00_01_pre_add_priority_bucket.sql;",
    ),
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_changed_procrastinate_is_refused_naming_the_change(
    change: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    simulate, named = CHANGES[change]
    simulate(monkeypatch, tmp_path)
    with pytest.raises(engine.IncompatibleProcrastinate) as refused:
        engine.Internals()
    message = str(refused.value)
    assert named in message
    assert message.startswith(f"procrastinate {procrastinate.__version__} differs from")
    assert "\n" not in message


def test_migrate_applies_nothing_for_a_changed_procrastinate(
    monkeypatch: pytest.MonkeyPatch, admin_url: str
) -> None:
    from tests import pg

    name = pg.create_database(admin_url, prefix="bseam")
    url = pg.with_dbname(admin_url, name)
    try:
        _private_method_gone(monkeypatch, Path())
        with pytest.raises(migrate.MigrationError, match="_loop_notify is gone"):
            asyncio.run(migrate.migrate(url))
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT to_regclass('public.procrastinate_jobs')").fetchone()
        assert row == (None,)
    finally:
        pg.drop_database(admin_url, name)


def test_broseph_worker_refuses_a_changed_procrastinate_in_one_line(db_url: str) -> None:
    # The operator's command, in a process whose procrastinate lost a method the seam uses.
    code = (
        "import sys, procrastinate; del procrastinate.PsycopgConnector._loop_notify;"
        " from broseph.cli import main; sys.argv = ['broseph', 'worker']; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env_with(DATABASE_URL=db_url, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: procrastinate ")
    assert "PsycopgConnector._loop_notify is gone" in lines[0]


# --- the record hand-off -------------------------------------------------------------------------


async def _engagement(conn: psycopg.AsyncConnection[Any]) -> uuid.UUID:
    gid = await factories.group(conn)
    return await factories.enqueued(
        conn, "ProcessEngagement", {"group_id": str(gid), "local_date": "2026-03-01"}
    )


async def test_the_fetch_returns_the_job_with_its_record(app: procrastinate.App, conn: Any) -> None:
    rid = await _engagement(conn)
    worker_id = await app.job_manager.register_worker()
    job = await app.job_manager.fetch_job(queues=None, worker_id=worker_id)
    assert job is not None
    record = engine.record_of(job)
    assert record is not None and record.id == rid
    assert (record.job_type, record.status, record.attempts) == (
        "ProcessEngagement",
        "processing",
        1,
    )
    assert record.params == {
        "group_id": str(job.task_kwargs["group_id"]),
        "local_date": "2026-03-01",
    }
    # The record (params) stays out of procrastinate's log context and the job's repr.
    assert "record" not in job.log_context() and "params" not in repr(job)
    assert await app.job_manager.fetch_job(queues=None, worker_id=worker_id) is None
    # A job that did not come through the seam's fetch carries no record.
    assert (
        engine.record_of(jobs.Job(queue="q", lock=None, queueing_lock=None, task_name="t")) is None
    )


async def test_the_lifecycle_runs_on_the_fetched_record_without_loading_it(
    conn: Any, start_worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[uuid.UUID] = []
    load = records.load

    async def counting_load(pool: Any, record_id: uuid.UUID) -> records.Record | None:
        loads.append(record_id)
        return await load(pool, record_id)

    monkeypatch.setattr(records, "load", counting_load)
    rid = await _engagement(conn)
    await start_worker()

    async def completed() -> bool:
        cur = await conn.execute("SELECT status FROM broseph.job_records WHERE id = %s", (rid,))
        return (await cur.fetchone())["status"] == "completed"

    await wait_until(completed)
    assert loads == []


# --- what is retried after a lost connection -----------------------------------------------------


def _lost() -> exceptions.ConnectorException:
    try:
        raise exceptions.ConnectorException from psycopg.errors.AdminShutdown()
    except exceptions.ConnectorException as wrapper:
        return wrapper


def _already_recorded() -> exceptions.ConnectorException:
    try:
        raise exceptions.ConnectorException from psycopg.errors.RaiseException(
            'Job was not found or not in "doing" or "todo" status (job id: 7)'
        )
    except exceptions.ConnectorException as wrapper:
        return wrapper


def _scripted(monkeypatch: pytest.MonkeyPatch, name: str, script: list[Any]) -> list[str]:
    """
    procrastinate's own PsycopgConnector.<name> answers from `script` (an exception is raised);
    returns the queries it was asked to run.
    """
    seen: list[str] = []

    async def answer(self: Any, query: str, **arguments: Any) -> Any:
        seen.append(query)
        outcome = script.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(procrastinate.PsycopgConnector, name, answer)
    return seen


def _connector() -> engine.WorkerConnector:
    return engine.WorkerConnector(outage_timeout=5.0, conninfo="", min_size=1, max_size=2)


async def test_a_finish_whose_first_try_committed_counts_as_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The grouped finish (broseph.finish_jobs) leaves out a job no longer todo/doing: after a
    # lost connection, that means its first try committed.
    seen = _scripted(monkeypatch, "execute_query_all_async", [_lost(), []])
    job_manager = engine.WorkerJobManager(_connector())
    job = jobs.Job(id=7, queue="q", lock=None, queueing_lock=None, task_name="t")
    await job_manager.finish_job(job, jobs.Status.SUCCEEDED, delete_job=False)
    assert seen == [broseph_sql.query("finish_jobs")] * 2
    # Left out of a group that met no loss: finished alone, by procrastinate's own finish, whose
    # "not found" is then a real error.
    _scripted(monkeypatch, "execute_query_all_async", [[]])
    seen = _scripted(monkeypatch, "execute_query_async", [_already_recorded()])
    with pytest.raises(exceptions.ConnectorException):
        await job_manager.finish_job(job, jobs.Status.SUCCEEDED, delete_job=False)
    assert seen == [sql.queries["finish_job"]]
    # The same error without a lost connection first is a real error.
    _scripted(monkeypatch, "execute_query_async", [_already_recorded()])
    with pytest.raises(exceptions.ConnectorException):
        await job_manager.retry_job(job)


async def test_a_defer_is_never_repeated_other_queries_are(monkeypatch: pytest.MonkeyPatch) -> None:
    connector = _connector()
    job_manager = engine.WorkerJobManager(connector)
    job = jobs.Job(queue="q", lock=None, queueing_lock=None, task_name="t")
    seen = _scripted(monkeypatch, "execute_query_all_async", [_lost()])
    with pytest.raises(exceptions.ConnectorException):
        await job_manager.batch_defer_jobs_async([job])
    assert seen == [sql.queries["defer_jobs"]]
    seen = _scripted(monkeypatch, "execute_query_all_async", [_lost(), [{"n": 1}]])
    assert await connector.execute_query_all_async("SELECT 1 AS n") == [{"n": 1}]
    assert seen == ["SELECT 1 AS n"] * 2


# --- the database side, checked when a worker starts ---------------------------------------------


async def test_a_worker_refuses_a_newer_procrastinate_schema(
    app: procrastinate.App, conn: Any, db_url: str
) -> None:
    await conn.execute(
        "INSERT INTO broseph.schema_migrations (name, checksum)"
        " VALUES ('procrastinate/03.11.00_01_pre_add_priority_bucket.sql', 'abc')"
    )
    with pytest.raises(engine.SchemaMismatch, match="newer than the installed procrastinate"):
        await app.run_worker_async(install_signal_handlers=False, wait=False)
    done = broseph_cli(db_url, "worker", timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line == (
        "error: the database's procrastinate schema (upgrade file"
        " 03.11.00_01_pre_add_priority_bucket.sql) is newer than the installed procrastinate"
        f" {procrastinate.__version__} knows (schema 03.04.00): install the procrastinate"
        " version that migrated it"
    )
    health = broseph_cli(db_url, "health", "--min-workers", "0")
    assert health.returncode == 1
    assert "03.11.00_01_pre_add_priority_bucket.sql) is newer" in " ".join(health.stdout.split())


DEFINITIONS = """
SELECT (SELECT array_agg(pg_get_triggerdef(oid) ORDER BY tgname) FROM pg_trigger
         WHERE tgrelid = 'public.procrastinate_jobs'::regclass AND tgname LIKE 'broseph%')
           AS triggers,
       pg_get_indexdef('public.procrastinate_jobs_waiting_lock_idx'::regclass) AS index,
       (SELECT proconfig FROM pg_proc
         WHERE oid = 'public.procrastinate_fetch_job_v2(character varying[], bigint)'::regprocedure)
           AS settings
"""


async def test_what_an_upgrade_undoes_is_refused_then_restored_as_it_was(
    app: procrastinate.App, conn: Any, db_url: str
) -> None:
    before = await (await conn.execute(DEFINITIONS)).fetchone()
    await conn.execute("DROP TRIGGER broseph_sync_job_record_update ON public.procrastinate_jobs")
    await conn.execute(
        "ALTER TABLE public.procrastinate_jobs DISABLE TRIGGER broseph_sync_job_record_delete"
    )
    await conn.execute("DROP INDEX public.procrastinate_jobs_waiting_lock_idx")
    # What procrastinate 03.03.00 does to procrastinate_fetch_job_v2: re-created, settings gone.
    await conn.execute(
        "ALTER FUNCTION public.procrastinate_fetch_job_v2(character varying[], bigint) RESET ALL"
    )
    report = await procrastinate_schema.check(procrastinate_schema.rows_on(conn))
    assert sorted(report.problems) == [
        "index procrastinate_jobs_waiting_lock_idx (migrations/0012) is missing (run broseph"
        " migrate)",
        "procrastinate_fetch_job_v2 lacks the plan settings of migrations/0012 (run broseph"
        " migrate)",
        "trigger broseph_sync_job_record_delete on procrastinate_jobs is missing or disabled: job"
        " records no longer follow their queue rows (run broseph migrate)",
        "trigger broseph_sync_job_record_update on procrastinate_jobs is missing or disabled: job"
        " records no longer follow their queue rows (run broseph migrate)",
    ]
    with pytest.raises(engine.SchemaMismatch, match="migrations/0012"):
        await app.run_worker_async(install_signal_handlers=False, wait=False)

    said: list[str] = []
    assert await migrate.migrate(db_url, report=said.append) == []
    assert [line for line in said if line.startswith("restored:")] == [
        "restored: the plan settings of migrations/0012 on procrastinate_fetch_job_v2 (a"
        " procrastinate upgrade had re-created it)",
        "restored: index procrastinate_jobs_waiting_lock_idx of migrations/0012",
        "restored: trigger broseph_sync_job_record_update of migrations/0003",
        "restored: broseph's triggers on procrastinate_jobs were disabled; enabled",
    ]
    assert await (await conn.execute(DEFINITIONS)).fetchone() == before
    assert (await procrastinate_schema.check(procrastinate_schema.rows_on(conn))).problems == []
    # Nothing to restore the second time.
    said.clear()
    await migrate.migrate(db_url, report=said.append)
    assert not [line for line in said if line.startswith("restored:")]


async def test_a_worker_connecting_as_service_role_can_check_the_schema(profile_conn: Any) -> None:
    async def check_as_service_role() -> list[str]:
        async with profile_conn.transaction():
            await profile_conn.execute("SET LOCAL ROLE service_role")
            report = await procrastinate_schema.check(procrastinate_schema.rows_on(profile_conn))
        return report.problems

    assert await check_as_service_role() == []
    # Without migrations/0023's grant it could not tell.
    await profile_conn.execute("REVOKE SELECT ON broseph.schema_migrations FROM service_role")
    assert await check_as_service_role() == [
        "this role cannot read broseph.schema_migrations (run broseph migrate)"
    ]
