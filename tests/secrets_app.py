"""
The app the secrets tests run in worker subprocesses:

    DATABASE_URL=… PYTHONPATH=<repo> procrastinate --app tests.secrets_app.app worker

It is the production app (`worker.create_app`, which owns the process's logging like
`broseph.worker.app`) plus two test-only job types that never enter the catalogue:

- `TestLeaky` fails the way a careless library does: its exception message holds the whole
  DATABASE_URL, password included, and so do its frame's local variables.
- `TestLoud` logs one value of `size` characters (a megabyte `source`, say) and completes.
"""

from __future__ import annotations

from typing import Any, ClassVar

import psycopg

from broseph import db, lifecycle, worker
from broseph.jobs import registry
from broseph.jobs.base import JobPayload, JobRun, JobType


class Leaky(JobPayload):
    job_type: ClassVar[str] = "TestLeaky"
    note: str | None = None


async def leaky(run: JobRun, payload: Leaky) -> None:
    settings = run.services.settings  # a local a traceback with locals would print
    url = db.database_url(settings)  # and one holding the password itself
    raise RuntimeError(f"could not use {url} ({payload.note})")


class Loud(JobPayload):
    job_type: ClassVar[str] = "TestLoud"
    size: int


async def loud(run: JobRun, payload: Loud) -> None:
    # Word characters only: the shape that made the old URL-password pattern quadratic.
    run.log.info("loud_value", value="a" * payload.size)


LEAKY = JobType(name="TestLeaky", payload=Leaky, handle=leaky, queue="test", max_attempts=1)
LOUD = JobType(name="TestLoud", payload=Loud, handle=loud, queue="test", max_attempts=1)

app = worker.create_app(owns_logging=True)
for _job_type in (LEAKY, LOUD):
    lifecycle.register(app, _job_type)


async def install(conn: psycopg.AsyncConnection[Any]) -> None:
    """
    The test job types' registry rows, in one test database.
    """
    await registry.write(conn, [LEAKY, LOUD])
