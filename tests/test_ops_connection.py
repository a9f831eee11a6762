"""
Connection loss: a Postgres restart, or every worker connection terminated, while 1,000 jobs
stream through — all complete, none lost or duplicated, and the worker is woken by NOTIFY again
afterwards (pick-up under 50 ms while it polls only every 2 s). An outage longer than
DB_OUTAGE_TIMEOUT makes the worker exit non-zero; restarted, its jobs are rescued.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import psycopg
import psycopg_pool
import pytest
from procrastinate import exceptions
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from broseph.ops.connector import connection_lost
from tests.ops_support import (
    TEST_APP_NAME,
    Producer,
    db_now,
    enqueue_naps,
    report,
    until,
    wait_for,
)

pytest_plugins = ("tests.ops_fixtures",)  # cluster, ops_url, ops_conn, workers

JOBS = 1000
POLL = 2.0  # seconds: a pick-up under 50 ms can only come from NOTIFY


def _wrapped(error: Exception) -> exceptions.ConnectorException:
    try:
        raise exceptions.ConnectorException from error
    except exceptions.ConnectorException as wrapper:
        return wrapper


def test_connection_lost_tells_a_dead_connection_from_a_failed_statement():
    lost = [
        psycopg.OperationalError("server closed the connection unexpectedly"),
        psycopg.errors.AdminShutdown(),  # 57P01: terminated, or the server is stopping
        psycopg.errors.CannotConnectNow(),  # 57P03: the server is starting up
        psycopg.errors.ConnectionFailure(),  # 08006
        psycopg_pool.PoolTimeout(),
    ]
    kept = [
        psycopg.errors.QueryCanceled(),  # a statement timeout is the statement's own problem
        psycopg.errors.UniqueViolation(),
        psycopg_pool.PoolClosed(),  # we are shutting down
    ]
    assert all(connection_lost(e) and connection_lost(_wrapped(e)) for e in lost)
    assert not any(connection_lost(e) or connection_lost(_wrapped(e)) for e in kept)


async def _connect(url: str) -> psycopg.AsyncConnection:
    return await psycopg.AsyncConnection.connect(
        url, autocommit=True, row_factory=dict_row, application_name=TEST_APP_NAME
    )


async def pickup_latencies(url: str, count: int = 5) -> list[float]:
    """
    Enqueue one job at a time on an idle worker; milliseconds from commit to start.
    """
    latencies = []
    async with await _connect(url) as conn:
        for _ in range(count):
            [rid] = await enqueue_naps(conn, 1, millis=0)
            deadline = time.monotonic() + 2 * POLL + 5
            while True:
                cur = await conn.execute(
                    "SELECT extract(epoch FROM started_at - created_at)::float8 * 1000 AS ms"
                    " FROM broseph.job_records WHERE id = %s AND started_at IS NOT NULL",
                    (rid,),
                )
                row = await cur.fetchone()
                if row:
                    latencies.append(row["ms"])
                    break
                assert time.monotonic() < deadline, "job never started"
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)  # idle again
    return latencies


async def _stream_through_fault(
    url: str, fault: Callable[[], Awaitable[None]], scenario: str
) -> None:
    producer = Producer(url, prefix="stream")
    stream = asyncio.create_task(producer.stream(JOBS, per_batch=10, every=0.02, millis=20))

    async def streaming() -> bool:
        return len(producer.ids) >= JOBS * 0.4

    await until(streaming, within=60, what="40 % of the stream enqueued")
    async with await _connect(url) as conn:
        fault_at = await db_now(conn)
    await fault()
    async with await _connect(url) as conn:
        back_at = await db_now(conn)
    await stream
    await producer.close()

    async with await _connect(url) as conn:
        result = await wait_for(conn, producer.ids, within=90)
        cur = await conn.execute(
            "SELECT min(finished_at) AS first FROM broseph.job_records"
            " WHERE id = ANY(%s) AND finished_at > %s",
            (producer.ids, back_at),
        )
        first_after = (await cur.fetchone())["first"]
    latencies = await pickup_latencies(url)
    report(
        scenario,
        result,
        (first_after - fault_at).total_seconds(),
        down=f"{(back_at - fault_at).total_seconds():.2f}s",
        producer_retries=producer.retries,
        pickup_ms_after=[round(ms, 1) for ms in latencies],
    )
    assert len(set(producer.ids)) == JOBS
    assert result.completed == JOBS and result.lost == 0 and result.stuck == 0
    assert result.duplicated == 0
    # NOTIFY works again: every pick-up far below the 2 s poll, the typical one under 50 ms.
    assert max(latencies) < POLL * 1000 / 4
    assert statistics.median(latencies) < 50


@pytest.mark.slow
async def test_postgres_restart_while_1000_jobs_stream_through(cluster, ops_url, workers):
    worker = await workers("w", POLL_INTERVAL=str(POLL), RESCUE_AFTER_SECONDS="30")

    async def restart() -> None:
        await asyncio.to_thread(cluster.restart, down_for=1.0)

    await _stream_through_fault(ops_url, restart, "Postgres restarted (down 1 s) mid-stream")
    assert worker.process.poll() is None  # rode it out, no restart needed
    assert "listen_restored" in worker.log()


@pytest.mark.slow
async def test_every_worker_connection_terminated_while_1000_jobs_stream_through(
    cluster, ops_url, workers
):
    worker = await workers("w", POLL_INTERVAL=str(POLL), RESCUE_AFTER_SECONDS="30")
    dbname = str(conninfo_to_dict(ops_url)["dbname"])
    terminated = []

    async def terminate() -> None:
        terminated.append(cluster.terminate_backends(dbname, spare_application=TEST_APP_NAME))

    await _stream_through_fault(ops_url, terminate, "pg_terminate_backend on every worker conn")
    assert terminated[0] >= 2  # the LISTEN connection and at least one pooled connection
    assert worker.process.poll() is None
    assert "listen_restored" in worker.log()


@pytest.mark.slow
async def test_outage_beyond_timeout_exits_non_zero_and_restart_rescues(
    cluster, ops_url, ops_conn, workers
):

    first = await workers(
        "first", DB_OUTAGE_TIMEOUT="2", RESCUE_AFTER_SECONDS="3", SHUTDOWN_TIMEOUT="3"
    )
    ids = await enqueue_naps(ops_conn, 5, millis=3000)

    async def all_running() -> bool:
        cur = await ops_conn.execute(
            "SELECT count(*) AS n FROM procrastinate_jobs WHERE status = 'doing'"
            " AND task_name = 'TestNap'"
        )
        return (await cur.fetchone())["n"] == 5

    await until(all_running, within=20, what="5 jobs running")

    cluster.stop()
    returncode = await asyncio.to_thread(first.wait, 30)
    cluster.start()
    async with await _connect(ops_url) as conn:
        back_at = await db_now(conn)
    assert returncode != 0  # the supervisor (systemd, k8s) sees a failure and restarts it
    assert "database_unavailable_gave_up" in first.log()

    # The supervisor's restart: a new worker; the dead one's jobs are rescued after the window.
    await workers("restarted", RESCUE_AFTER_SECONDS="3")
    async with await _connect(ops_url) as conn:
        result = await wait_for(conn, ids, within=30)
        cur = await conn.execute(
            "SELECT max(finished_at) AS last FROM broseph.job_records WHERE id = ANY(%s)", (ids,)
        )
        last = (await cur.fetchone())["last"]
    report(
        "Postgres down past DB_OUTAGE_TIMEOUT (2 s): exit 1, supervisor restart",
        result,
        (last - back_at).total_seconds(),
    )
    assert result.completed == 5 and result.lost == 0 and result.stuck == 0
