"""
Transactional enqueue, both faces: Python (psycopg) and raw SQL through psql.
"""

from __future__ import annotations

import datetime
import subprocess
import uuid

import psycopg
import pytest

from broseph import enqueue, jobs
from broseph.jobs.process_engagement import ProcessEngagement
from tests import factories
from tests.conftest import wait_until
from tests.profiles import as_client

DAY = datetime.date(2026, 3, 1)


async def _counts(conn) -> tuple[int, int]:
    cur = await conn.execute(
        "SELECT (SELECT count(*) FROM broseph.job_records) AS records,"
        " (SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'ProcessEngagement') AS jobs"
    )
    row = await cur.fetchone()
    return row["records"], row["jobs"]


async def _status(conn, record_id) -> str | None:
    cur = await conn.execute("SELECT status FROM broseph.job_records WHERE id = %s", (record_id,))
    row = await cur.fetchone()
    return row["status"] if row else None


async def test_python_commit_creates_record_and_job_and_notify_wakes_idle_worker(
    db_url, conn, start_worker
):
    gid = await factories.group(conn)
    # Polling every 60 s: only NOTIFY can start the job within the test's few seconds.
    await start_worker(fetch_job_polling_interval=60, listen_notify=True)  # returns LISTENing
    async with await psycopg.AsyncConnection.connect(db_url) as api:
        async with api.transaction():
            await api.execute("UPDATE public.groups SET name = 'renamed' WHERE id = %s", (gid,))
            rid = await enqueue.enqueue(api, ProcessEngagement(group_id=gid, local_date=DAY))
            # Inside the transaction: nobody else sees the job yet.
            assert await _counts(conn) == (0, 0)
    assert await _counts(conn) == (1, 1)

    async def completed() -> bool:
        return await _status(conn, rid) == "completed"

    await wait_until(completed, within=10)
    cur = await conn.execute(
        "SELECT r.source, r.procrastinate_job_id = j.id AS linked, j.args->>'record_id' AS arg"
        " FROM broseph.job_records r JOIN procrastinate_jobs j ON j.id = r.procrastinate_job_id"
    )
    row = await cur.fetchone()
    assert row["source"] == "api" and row["linked"] and row["arg"] == str(rid)


async def test_python_rollback_leaves_neither(db_url, conn):
    gid = await factories.group(conn)
    async with await psycopg.AsyncConnection.connect(db_url) as api:
        with pytest.raises(RuntimeError):
            async with api.transaction():
                await enqueue.enqueue(api, ProcessEngagement(group_id=gid, local_date=DAY))
                raise RuntimeError("the API request failed after enqueueing")
    assert await _counts(conn) == (0, 0)


async def test_python_duplicate_idempotency_key_gives_one_job(db_url, conn):
    gid = await factories.group(conn)
    payload = ProcessEngagement(group_id=gid, local_date=DAY)
    async with await psycopg.AsyncConnection.connect(db_url) as api:
        first = await enqueue.enqueue(api, payload, idempotency_key="k-1")
        await api.commit()
        again = await enqueue.enqueue(api, payload, idempotency_key="k-1")
        await api.commit()
    assert first == again
    assert await _counts(conn) == (1, 1)


async def test_python_invalid_params_clear_error_nothing_written(conn):
    with pytest.raises(ValueError, match="group_id"):
        jobs.payload_for("ProcessEngagement", {"group_id": "not-a-uuid", "local_date": "x"})
    with pytest.raises(ValueError, match="extra"):
        jobs.payload_for(
            "ProcessEngagement",
            {"group_id": str(uuid.uuid4()), "local_date": "2026-01-01", "text": "hi"},
        )
    with pytest.raises(LookupError, match="unknown job type 'Nope'"):
        jobs.payload_for("Nope", {})
    assert await _counts(conn) == (0, 0)


async def test_batch_enqueue_fan_out_in_one_transaction(db_url, conn):
    gids = [uuid.uuid4() for _ in range(3000)]
    payloads = [ProcessEngagement(group_id=g, local_date=DAY) for g in gids]
    keys = [f"fan:{g}" for g in gids]
    async with await psycopg.AsyncConnection.connect(db_url) as api:
        ids = await enqueue.enqueue_many(api, payloads, idempotency_keys=keys, chunk_size=1000)
        assert await _counts(conn) == (0, 0)  # not committed yet
        await api.commit()
        # Re-running the whole fan-out (a retried tick) creates nothing new, same ids back.
        again = await enqueue.enqueue_many(api, payloads, idempotency_keys=keys)
        await api.commit()
    assert len(ids) == 3000 and len(set(ids)) == 3000 and again == ids
    assert await _counts(conn) == (3000, 3000)
    cur = await conn.execute(
        "SELECT count(*) AS n FROM broseph.job_records r JOIN procrastinate_jobs j"
        " ON j.id = r.procrastinate_job_id AND j.args->>'record_id' = r.id::text"
    )
    assert (await cur.fetchone())["n"] == 3000


def _psql(url: str, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["psql", url, "-v", "ON_ERROR_STOP=1", "-X", "-q", "-t", "-A"],
        input=script,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def test_raw_sql_in_psql_commit_rollback_duplicate_invalid(db_url, conn, start_worker):
    gid = await factories.group(conn)
    params = f'\'{{"group_id": "{gid}", "local_date": "2026-03-01"}}\''

    rolled_back = _psql(
        db_url,
        f"BEGIN;\nSELECT broseph.enqueue('ProcessEngagement', {params});\nROLLBACK;\n",
    )
    assert rolled_back.returncode == 0, rolled_back.stderr
    assert await _counts(conn) == (0, 0)

    await start_worker(fetch_job_polling_interval=60)
    committed = _psql(
        db_url,
        "BEGIN;\n"
        f"UPDATE public.groups SET name = 'from psql' WHERE id = '{gid}';\n"
        f"SELECT broseph.enqueue('ProcessEngagement', {params}, 'psql-key');\n"
        f"SELECT broseph.enqueue('ProcessEngagement', {params}, 'psql-key');\n"
        "COMMIT;\n",
    )
    assert committed.returncode == 0, committed.stderr
    first, second = committed.stdout.split()
    assert first == second  # duplicate key → the same record
    assert await _counts(conn) == (1, 1)

    async def completed() -> bool:
        return await _status(conn, first) == "completed"

    await wait_until(completed, within=10)

    for bad, message in [
        ('\'{"group_id": "nope", "local_date": "2026-03-01"}\'', 'field "group_id" must be'),
        ('\'{"local_date": "2026-03-01"}\'', 'missing field "group_id"'),
        (
            f'\'{{"group_id": "{gid}", "local_date": "2026-02-30"}}\'',
            'field "local_date" must be a date',
        ),
        (
            f'\'{{"group_id": "{gid}", "local_date": "2026-03-01", "body": "x"}}\'',
            'unknown field "body"',
        ),
        ("'[1, 2]'", "must be a JSON object"),
    ]:
        result = _psql(db_url, f"SELECT broseph.enqueue('ProcessEngagement', {bad});\n")
        assert result.returncode != 0 and message in result.stderr, (bad, result.stderr)
    result = _psql(db_url, "SELECT broseph.enqueue('SendPigeon', '{}');\n")
    assert 'unknown job type "SendPigeon"' in result.stderr
    assert await _counts(conn) == (1, 1)


@pytest.mark.parametrize("role", ["anon", "authenticated"])
async def test_enqueue_is_not_executable_by_clients(profile_conn, role):
    # On plain PostgreSQL and on a Supabase-like database (tests/profiles.py).
    gid = await factories.group(profile_conn)
    for call in (
        "SELECT broseph.enqueue('ProcessEngagement', %s)",
        "SELECT broseph.enqueue_many('ProcessEngagement', ARRAY[%s::jsonb])",
    ):
        async with profile_conn.transaction():
            await as_client(profile_conn, role)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                await profile_conn.execute(
                    call, (f'{{"group_id": "{gid}", "local_date": "2026-03-01"}}',)
                )
            raise psycopg.Rollback()
    cur = await profile_conn.execute("SELECT count(*) AS n FROM broseph.job_records")
    assert (await cur.fetchone())["n"] == 0
