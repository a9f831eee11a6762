"""
Test-only job types, registered on a test app and in the test database's registry — never in the
production catalogue.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, ClassVar

import procrastinate
import psycopg

from broseph import lifecycle
from broseph.jobs import registry
from broseph.jobs.base import JobPayload, JobRun, JobType


class Probe(JobPayload):
    job_type: ClassVar[str] = "TestProbe"
    group_id: uuid.UUID


async def _always_fails(run: JobRun, payload: Probe) -> None:
    await run.progress(10, "about to fail")
    raise RuntimeError(f"boom on attempt {run.attempt}")


async def _sleeps(run: JobRun, payload: Probe) -> None:
    await asyncio.sleep(float(run.services.settings.poll_interval))


class Reports(Probe):
    job_type: ClassVar[str] = "TestReports"


FAILING = JobType(
    name="TestAlwaysFails",
    payload=Probe,
    handle=_always_fails,
    queue="test",
    max_attempts=3,
    backoff_base_seconds=0.2,
)
SLEEPING = JobType(name="TestSleeps", payload=Probe, handle=_sleeps, queue="test")


# Succeeds after progress reports and a result: the happy path of a job, as the processing bench
# runs it.
async def _reports(run: JobRun, payload: Reports) -> None:
    await run.progress(50, "half way")
    await run.progress(90, "almost")  # inside the reporter's interval: left for the last write
    run.result["attempt"] = run.attempt


REPORTING = JobType(name="TestReports", payload=Reports, handle=_reports, queue="test")


async def install(
    app: procrastinate.App, conn: psycopg.AsyncConnection[Any], job_type: JobType
) -> None:
    """
    Register a test job type on the app and in the database's registry.
    """
    lifecycle.register(app, job_type)
    await registry.write(conn, [job_type])
