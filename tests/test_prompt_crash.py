"""
A worker killed between storing the prompt and completing the job: the retry stores nothing new.

The kill is real: a `broseph worker` subprocess, SIGKILLed once the prompt row is committed while
its job's queue row is held, so the job can never be marked finished.
"""

from __future__ import annotations

import asyncio
import datetime
import signal
import subprocess
from collections.abc import Iterator

import psycopg
import pytest

from broseph import services
from tests import factories
from tests.conftest import env_with, venv_bin, wait_until
from tests.prompt_support import (
    API_KEY,
    DAY,
    GOOD,
    OTHER,
    ai_settings,
    enqueue_prompt,
    finish,
    has_requests,
    prompts,
    record,
    stored,
)
from tests.standins.openai_server import OpenAIStandIn, Reply


@pytest.fixture
def standin() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn() as server:
        yield server


async def test_worker_killed_after_storing_the_prompt_the_retry_stores_nothing_new(
    app, conn, db_url, settings, standin, start_worker, tmp_path
):
    group = await factories.group(conn, name="Crash crew")
    rid = await enqueue_prompt(conn, group)
    job_id = (await record(conn, rid))["procrastinate_job_id"]
    # The AI takes two seconds, so the queue row can be locked while the job is mid-way.
    standin.script(Reply.delay(2.0, then=Reply.json_output(GOOD)))
    worker = await asyncio.create_subprocess_exec(
        str(venv_bin("broseph")),
        "worker",
        "--queue",
        "prompts",
        "--concurrency",
        "1",
        cwd=tmp_path,
        env=env_with(
            DATABASE_URL=db_url,
            OPENAI_API_KEY=API_KEY,
            OPENAI_BASE_URL=standin.base_url,
            OPENAI_MAX_RETRIES="0",
            PGAPPNAME="crash-worker",
            LOG_FORMAT="json",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await wait_until(lambda: has_requests(standin, 1), within=30)
        # Hold the queue row: the worker can store the prompt, but cannot finish the job (its
        # result goes with the finish, in the same statement: broseph/engine.py).
        async with await psycopg.AsyncConnection.connect(db_url) as blocker:
            await blocker.execute(
                "SELECT 1 FROM procrastinate_jobs WHERE id = %s FOR UPDATE", (job_id,)
            )

            async def stored_and_finishing() -> bool:
                if not [p for p in await prompts(conn, group) if p["local_date"] == DAY]:
                    return False
                cur = await conn.execute(
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name ="
                    " 'crash-worker' AND wait_event_type = 'Lock'"
                )
                return bool((await cur.fetchone())["n"])

            await wait_until(stored_and_finishing)
            worker.send_signal(signal.SIGKILL)
            await asyncio.wait_for(worker.wait(), 10)
            # The process is gone; so are its server sessions (as when a host dies).
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'crash-worker'"
            )
            await blocker.rollback()
    finally:
        if worker.returncode is None:
            worker.kill()
            await asyncio.wait_for(worker.wait(), 10)

    before = await prompts(conn, group)
    crashed = await record(conn, rid)
    assert crashed["status"] == "processing"  # stalled: stored, never completed
    assert crashed["result"] is None  # the result would have come with the finish
    # A rescue requeues the stalled job; the AI would now answer differently if asked.
    await app.job_manager.retry_job_by_id_async(
        job_id, retry_at=datetime.datetime.now(datetime.UTC)
    )
    standin.set_default(output=OTHER)
    svc = services.build(ai_settings(settings, standin), services.pool_of(app))
    services.install(app, svc)
    await start_worker(queues=["prompts"])
    done, _ = await finish(conn, rid)

    assert done["status"] == "completed" and done["attempts"] == 2
    assert done["result"]["stored"] is False
    assert done["progress_message"] == "already stored"
    assert await prompts(conn, group) == before  # same row: id, text, created_at
    assert (await stored(conn, group))["text"] == GOOD["text"]
    assert len(standin.requests) == 1  # the retry did not even ask the AI
    await svc.aclose()
