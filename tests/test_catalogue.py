"""
The two faces of enqueue agree: the SQL registry matches the Python catalogue.
"""

from __future__ import annotations

import datetime
import uuid
from typing import ClassVar

import pytest
from psycopg.rows import dict_row

from broseph import jobs, sql
from broseph.jobs.base import JobPayload, field_spec


async def test_sql_registry_matches_python_catalogue(conn):
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.query("job_types"))
        rows = {row["name"]: row for row in await cur.fetchall()}
    assert set(rows) == set(jobs.CATALOGUE)
    for name, job_type in jobs.CATALOGUE.items():
        row = rows[name]
        assert row["fields"] == field_spec(job_type.payload), name
        assert row["task_name"] == job_type.name
        assert row["queue"] == job_type.queue
        assert row["max_attempts"] == job_type.max_attempts


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
