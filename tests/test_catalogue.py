"""
The two faces of enqueue agree: the SQL registry matches the Python catalogue.
"""

from __future__ import annotations

from psycopg.rows import dict_row

from broseph import jobs, sql
from broseph.jobs.base import field_spec


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
