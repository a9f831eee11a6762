"""
The shared lifecycle: retries, failure, missing records, and the record/queue-row invariant.
"""

from __future__ import annotations

import asyncio

import structlog

from tests import factories, records, testing_jobs
from tests.conftest import wait_until

# A record that says completed/failed/cancelled while its queue row can still run (todo/doing),
# or says pending/processing/retrying for a queue row that has finished — must never exist.
DISAGREEMENTS = """
SELECT count(*) AS n
  FROM broseph.job_records r
  JOIN procrastinate_jobs j ON j.id = r.procrastinate_job_id
 WHERE (r.status IN ('completed', 'failed', 'cancelled') AND j.status IN ('todo', 'doing'))
    OR (r.status IN ('pending', 'processing', 'retrying')
        AND j.status IN ('succeeded', 'failed', 'cancelled', 'aborted'))
"""


async def test_failing_handler_retries_then_fails_and_never_disagrees(app, conn, start_worker):
    await testing_jobs.install(app, conn, testing_jobs.FAILING)
    gid = await factories.group(conn)
    rid = await factories.enqueued(conn, "TestAlwaysFails", {"group_id": str(gid)})
    seen: list[str] = []
    disagreements = 0

    async def failed() -> bool:
        nonlocal disagreements
        # Sample both sides in ONE statement (one snapshot) as often as we can.
        cur = await conn.execute(DISAGREEMENTS)
        disagreements += (await cur.fetchone())["n"]
        row = await records.record(conn, rid)
        if not seen or seen[-1] != row["status"]:
            seen.append(row["status"])
        return row["status"] == "failed"

    assert not await failed()  # first sample, before any worker runs: pending
    with structlog.testing.capture_logs() as logs:
        await start_worker(fetch_job_polling_interval=0.1)
        await wait_until(failed, within=20, interval=0.01)

    row = await records.record(conn, rid)
    assert row["attempts"] == 3
    assert row["last_error"] == "RuntimeError: boom on attempt 3"
    assert row["finished_at"] is not None and row["next_attempt_at"] is None
    assert disagreements == 0
    # The path it took: pending → (processing → retrying) × 2 → processing → failed; fast
    # transitions may be missed by sampling, but the retrying state (0.2 s, 0.4 s) must show.
    assert seen[0] == "pending" and seen[-1] == "failed"
    assert "retrying" in seen and "completed" not in seen
    # (The worker's periodic roll-up may run other jobs meanwhile: look at ours only.)
    failures = [
        e for e in logs if e["event"] == "job_failed" and e["job_type"] == "TestAlwaysFails"
    ]
    assert [e["attempt"] for e in failures] == [1, 2, 3]
    assert [e["retrying"] for e in failures] == [True, True, False]
    assert all("boom" in e["error"] for e in failures)
    starts = [e for e in logs if e["event"] == "job_start" and e["job_type"] == "TestAlwaysFails"]
    assert len(starts) == 3


async def test_retrying_record_shows_reason_and_next_attempt(app, conn, start_worker):
    failing = testing_jobs.FAILING.__class__(
        **{**testing_jobs.FAILING.__dict__, "backoff_base_seconds": 30.0}
    )
    await testing_jobs.install(app, conn, failing)
    gid = await factories.group(conn)
    rid = await factories.enqueued(conn, "TestAlwaysFails", {"group_id": str(gid)})
    await start_worker()

    row = await records.wait_status(conn, rid, "retrying", within=15)
    assert row["last_error"] == "RuntimeError: boom on attempt 1"
    assert row["attempts"] == 1
    cur = await conn.execute(
        "SELECT extract(epoch FROM %s - now()) AS s", (row["next_attempt_at"],)
    )
    assert 20 < (await cur.fetchone())["s"] <= 30


async def test_deleted_record_fails_with_reason_and_worker_keeps_running(conn, start_worker):
    gid = await factories.group(conn)
    doomed = await factories.enqueued(
        conn, "ProcessEngagement", {"group_id": str(gid), "local_date": "2026-01-01"}
    )
    cur = await conn.execute(
        "SELECT procrastinate_job_id AS j FROM broseph.job_records WHERE id = %s", (doomed,)
    )
    job_id = (await cur.fetchone())["j"]
    await conn.execute("DELETE FROM broseph.job_records WHERE id = %s", (doomed,))

    with structlog.testing.capture_logs() as logs:
        await start_worker()

        async def job_failed() -> bool:
            cur = await conn.execute(
                "SELECT status, attempts FROM procrastinate_jobs WHERE id = %s", (job_id,)
            )
            row = await cur.fetchone()
            return row["status"] == "failed"

        await wait_until(job_failed)
        # The worker is still alive and runs the next job.
        survivor = await factories.enqueued(
            conn, "ProcessEngagement", {"group_id": str(gid), "local_date": "2026-01-02"}
        )

        await records.wait_status(conn, survivor, "completed", within=15)
    cur = await conn.execute("SELECT attempts FROM procrastinate_jobs WHERE id = %s", (job_id,))
    assert (await cur.fetchone())["attempts"] == 1  # permanent: not retried
    failure = next(e for e in logs if e["event"] == "job_failed")
    assert f"job record {doomed} not found" in failure["error"]
    assert failure["permanent"] is True and failure["retrying"] is False


async def test_subject_missing_fails_permanently_with_reason(conn, start_worker):
    cur = await conn.execute(
        "SELECT broseph.enqueue('ProcessEngagement', jsonb_build_object('group_id',"
        " gen_random_uuid()::text, 'local_date', '2026-01-01')) AS id"
    )
    rid = (await cur.fetchone())["id"]
    await start_worker()

    row = await records.wait_status(conn, rid, "failed", within=15)
    assert row["attempts"] == 1 and "not found" in row["last_error"]


async def test_record_params_changed_to_invalid_fail_without_retry(conn, start_worker):
    gid = await factories.group(conn)
    rid = await factories.enqueued(
        conn, "ProcessEngagement", {"group_id": str(gid), "local_date": "2026-01-01"}
    )
    # The record is the source of truth: corrupt it behind the contract's back.
    await conn.execute(
        "UPDATE broseph.job_records SET params = params || '{\"extra\": 1}' WHERE id = %s", (rid,)
    )
    await start_worker()

    row = await records.wait_status(conn, rid, "failed", within=15)
    assert row["attempts"] == 1 and row["last_error"].startswith("PermanentJobError: invalid")
    assert "extra" in row["last_error"]


async def test_deleting_a_pending_queue_row_cancels_its_record(conn):
    gid = await factories.group(conn)
    rid = await factories.enqueued(
        conn, "ProcessEngagement", {"group_id": str(gid), "local_date": "2026-01-01"}
    )
    await conn.execute("DELETE FROM procrastinate_jobs")
    row = await records.record(conn, rid)
    assert row["status"] == "cancelled" and "deleted" in row["last_error"]
    await asyncio.sleep(0)
