"""
The app the operations tests run in worker subprocesses:

    DATABASE_URL=… PYTHONPATH=<repo> procrastinate --app tests.ops_app.app worker

It is the production app (every catalogue job type, the periodic tasks, the resilient connector)
plus one test-only job type, `TestNap`, that sleeps in small steps (checking for an abort between
steps, like a notification batch) and then writes one row to `ops_test.effects` — the tests count
those rows to find lost (none) and duplicated (more than one) executions. It never enters the
production catalogue: `install()` adds its registry row to a test database only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from typing import Any, ClassVar

import psycopg
from procrastinate import exceptions

from broseph import lifecycle, worker
from broseph.jobs import registry
from broseph.jobs.base import JobPayload, JobRun, JobType


class Nap(JobPayload):
    job_type: ClassVar[str] = "TestNap"
    millis: int
    # On attempts after the first, sleep this long instead (a requeued job finishes quickly).
    retry_millis: int | None = None
    steps: int | None = None
    # Free text carried to the effect row, e.g. a batch name.
    tag: str | None = None


async def nap(run: JobRun, payload: Nap) -> None:
    steps = max(payload.steps or 1, 1)
    millis = (
        payload.millis if run.attempt == 1 or payload.retry_millis is None else payload.retry_millis
    )
    for step in range(steps):
        # Between steps, like a notification batch: stop when asked to.
        if run.should_abort():
            raise exceptions.JobAborted(f"aborted at step {step} of {steps}")
        await asyncio.sleep(millis / steps / 1000)
        if steps > 1:
            await run.progress(int(100 * (step + 1) / steps), f"step {step + 1} of {steps}")
    async with run.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO ops_test.effects (record_id, pid, attempt, tag) VALUES (%s, %s, %s, %s)",
            (run.record_id, os.getpid(), run.attempt, payload.tag),
        )


NAP = JobType(
    name="TestNap", payload=Nap, handle=nap, queue="test", max_attempts=5, backoff_base_seconds=0.2
)
# The same job, but jobs with the same tag never run at once (procrastinate lock).
NAP_LOCKED = dataclasses.replace(NAP, name="TestNapLocked", lock_fields=("tag",))


async def block_loop(run: JobRun, payload: Nap) -> None:
    # A handler that blocks the worker's event loop (a synchronous call where an await belongs):
    # what /livez exists to notice (tests/test_probes_processes.py).
    time.sleep(payload.millis / 1000)  # noqa: ASYNC251 (blocking is the point)


# The same payload, run by a handler that blocks the event loop for `millis`.
BLOCK_LOOP = JobType(name="TestBlockLoop", payload=Nap, handle=block_loop, queue="test")

app = worker.create_app(owns_logging=True)  # like broseph.worker.app: scrubbed logs
for _job_type in (NAP, NAP_LOCKED, BLOCK_LOOP):
    lifecycle.register(app, _job_type)


async def install(conn: psycopg.AsyncConnection[Any]) -> None:
    """
    The TestNap registry row and the effects table, in one test database.
    """
    await conn.execute(
        "CREATE SCHEMA IF NOT EXISTS ops_test;"
        "CREATE TABLE IF NOT EXISTS ops_test.effects ("
        " id bigserial PRIMARY KEY, record_id uuid NOT NULL, pid integer NOT NULL,"
        " attempt integer NOT NULL, tag text, at timestamptz NOT NULL DEFAULT clock_timestamp())"
    )
    await registry.write(conn, [NAP, NAP_LOCKED, BLOCK_LOOP])
