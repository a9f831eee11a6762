"""
The two faces of enqueue agree: the SQL registry matches the Python catalogue.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from typing import ClassVar

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from broseph import jobs, migrate, sql
from broseph.jobs import registry
from broseph.jobs.base import JobPayload, JobRun, field_spec
from broseph.retry import budget
from tests import testing_jobs
from tests.testing_jobs import Probe


async def _unused(run: JobRun, payload: Probe) -> None:
    raise AssertionError("never run: these tests only enqueue")


# A job type only this module knows: no migration mentions it.
FRESH = dataclasses.replace(
    testing_jobs.FAILING,
    name="TestFresh",
    handle=_unused,
    description="a job type added in Python alone",
    lock_fields=("group_id",),
)


async def test_sql_registry_matches_python_catalogue(conn):
    rows = {row["name"]: row for row in await sql.rows(conn, "job_types")}
    assert set(rows) == set(jobs.CATALOGUE)
    for name, job_type in jobs.CATALOGUE.items():
        assert rows[name] == registry.row(job_type), name
        assert rows[name]["fields"] == field_spec(job_type.payload), name


async def _enqueue_sql(conn, job_type: str, params: dict, retry: dict | None = None) -> dict:
    """
    Enqueue through the SQL face; the record and its queue row's args.
    """
    record_id = await sql.value(
        conn,
        "enqueue",
        {"job_type": job_type, "params": Jsonb(params), "idempotency_key": None,
         "run_at": None, "priority": 0, "source": "sql", "retry": Jsonb(retry) if retry else None,
         "traceparent": None, "tracestate": None},
    )  # fmt: skip
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT r.max_attempts, j.args, j.queue_name, j.task_name, j.lock"
            "  FROM broseph.job_records r"
            "  JOIN procrastinate_jobs j ON j.id = r.procrastinate_job_id"
            " WHERE r.id = %s",
            (record_id,),
        )
        found = await cur.fetchone()
    assert found is not None
    return found


async def test_a_new_job_type_needs_no_sql_of_its_own(db_url, conn):
    # Not in the registry yet: the SQL face refuses it.
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="unknown job type"):
        await _enqueue_sql(conn, FRESH.name, {"group_id": str(uuid.uuid4())})

    lines: list[str] = []
    await migrate.migrate(db_url, report=lines.append, catalogue=[*jobs.CATALOGUE.values(), FRESH])

    # Only the new type's row was written: the production types' rows already matched.
    assert [line for line in lines if line.startswith("wrote")] == [
        f"wrote job type {FRESH.name} to broseph.job_types"
    ]
    rows = {row["name"]: row for row in await sql.rows(conn, "job_types")}
    assert rows[FRESH.name] == registry.row(FRESH)
    group = str(uuid.uuid4())
    queued = await _enqueue_sql(conn, FRESH.name, {"group_id": group})
    assert (queued["queue_name"], queued["task_name"]) == (FRESH.queue, FRESH.name)
    assert queued["lock"] is not None  # lock_fields reached the queue row
    # The field spec came along: the SQL face checks params as the model does.
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="group_id"):
        await _enqueue_sql(conn, FRESH.name, {"group_id": "not-a-uuid"})

    # A change in Python reaches the row at the next migrate, and only that one.
    changed = dataclasses.replace(FRESH, max_attempts=7, lock_fields=None)
    lines.clear()
    await migrate.migrate(
        db_url, report=lines.append, catalogue=[*jobs.CATALOGUE.values(), changed]
    )
    assert [line for line in lines if line.startswith("wrote")] == [
        f"wrote job type {FRESH.name} to broseph.job_types"
    ]
    rows = {row["name"]: row for row in await sql.rows(conn, "job_types")}
    assert rows[FRESH.name] == registry.row(changed)


@pytest.mark.parametrize("override", [None, {"max_attempts": 2}])
async def test_the_records_attempt_budget_is_the_retry_strategys(conn, override):
    # One authority, JobType.max_attempts: the record's budget (written by the SQL face from
    # the registry row) and the retry strategy's (broseph/retry.py) are the same number.
    await registry.write(conn, [FRESH])
    queued = await _enqueue_sql(conn, FRESH.name, {"group_id": str(uuid.uuid4())}, override)
    strategy = budget(FRESH, queued["args"]).max_attempts
    expected = override["max_attempts"] if override else FRESH.max_attempts
    assert queued["max_attempts"] == strategy == expected


def test_every_job_type_and_periodic_task_is_registered():
    from broseph.worker import app

    for name, job_type in jobs.CATALOGUE.items():
        assert app.tasks[name].queue == job_type.queue
    periodic = {task.task.name for task in app.periodic_registry.periodic_tasks.values()}
    assert {p.name for p in jobs.PERIODIC} <= periodic


def test_a_field_default_must_name_an_optional_field_and_a_known_rule():
    class Fine(JobPayload):
        defaults: ClassVar[dict[str, str]] = {"day": "group_local_date"}
        group_id: uuid.UUID
        day: datetime.date | None = None

    assert field_spec(Fine)["day"] == {
        "type": "date", "required": False, "default": "group_local_date"
    }  # fmt: skip

    class Required(Fine):
        day: datetime.date  # type: ignore[assignment]

    class UnknownRule(Fine):
        defaults: ClassVar[dict[str, str]] = {"day": "tomorrow"}

    class NoSuchField(Fine):
        defaults: ClassVar[dict[str, str]] = {"dya": "group_local_date"}

    class NoGroup(JobPayload):
        defaults: ClassVar[dict[str, str]] = {"day": "group_local_date"}
        day: datetime.date | None = None

    for model in (Required, UnknownRule, NoSuchField, NoGroup):
        with pytest.raises(TypeError, match="default"):
            field_spec(model)
