"""
Batch fetch (broseph/engine.py, migrations/0031): one statement takes up to the worker's free slots;
the first job starts at once, the rest wait in the worker's buffer `doing` but not started — their
records untouched — until a slot takes them and the next group statement starts them. What must
hold: a job that never started goes back to waiting unspent (SIGTERM: the worker's last call;
kill -9: the rescue), a higher-priority job waits behind at most the fetched ones, a cancel
reaches a buffered job, `procrastinate shell` (list_jobs) shows each job as it is.
"""

from __future__ import annotations

import json
from typing import Any

import procrastinate
import pytest
from procrastinate import exceptions, job_context, jobs

from broseph import engine, services, sql
from broseph.ops import rescue
from tests import factories
from tests.conftest import wait_until


async def _enqueue(conn: Any, count: int, *, priority: int = 0, **retry: Any) -> list[int]:
    gid = await factories.group(conn)
    ids = []
    for n in range(count):
        cur = await conn.execute(
            "SELECT broseph.enqueue('ProcessEngagement', jsonb_build_object('group_id', %s::text,"
            " 'local_date', %s::text), retry => %s::jsonb) AS id",
            (gid, f"2026-03-{n + 1:02d}", json.dumps(retry)),
        )
        rid = (await cur.fetchone())["id"]
        cur = await conn.execute(
            "SELECT procrastinate_job_id AS id FROM broseph.job_records WHERE id = %s", (rid,)
        )
        ids.append((await cur.fetchone())["id"])
    if priority:
        await conn.execute(
            "UPDATE procrastinate_jobs SET priority = %s WHERE id = ANY(%s)", (priority, ids)
        )
    return ids


async def _state(conn: Any, ids: list[int]) -> list[tuple[Any, ...]]:
    """(queue status, queue attempts, record status, record attempts, unstarted) per job."""
    cur = await conn.execute(
        "SELECT j.status, j.attempts, r.status AS record, r.attempts AS record_attempts,"
        "       EXISTS (SELECT 1 FROM broseph.unstarted_jobs u WHERE u.job_id = j.id) AS unstarted"
        "  FROM procrastinate_jobs j JOIN broseph.job_records r ON r.procrastinate_job_id = j.id"
        " WHERE j.id = ANY(%s) ORDER BY j.id",
        (ids,),
    )
    return [tuple(row.values()) for row in await cur.fetchall()]


def _slots(app: procrastinate.App, concurrency: int) -> engine.WorkerJobManager:
    options = engine.worker_options(app, {"concurrency": concurrency})
    assert engine.start_middleware in options["worker_middleware"]
    job_manager = app.job_manager
    assert isinstance(job_manager, engine.WorkerJobManager)
    return job_manager


async def _take(job_manager: engine.WorkerJobManager, worker_id: int) -> jobs.Job:
    job = await job_manager.fetch_job(queues=None, worker_id=worker_id)
    assert job is not None and job.id is not None
    return job


async def test_one_fetch_takes_the_free_slots_and_starts_only_the_first(
    app: procrastinate.App, conn: Any
) -> None:
    ids = await _enqueue(conn, 6)
    job_manager = _slots(app, 4)
    worker_id = await job_manager.register_worker()
    first = await _take(job_manager, worker_id)
    assert first.id == ids[0]
    # Four taken by one statement (one transaction); only the first started, its record too.
    assert await _state(conn, ids) == [
        ("doing", 0, "processing", 1, False),
        *[("doing", 0, "pending", 0, True)] * 3,
        *[("todo", 0, "pending", 0, False)] * 2,
    ]
    cur = await conn.execute(
        "SELECT count(DISTINCT xmin::text) AS n FROM procrastinate_jobs WHERE status = 'doing'"
    )
    assert (await cur.fetchone())["n"] == 1
    # procrastinate shell's view (list_jobs): the four held by this worker are doing.
    listed = {job.id: job.status for job in await job_manager.list_jobs_async()}
    assert [listed[i] for i in ids[:4]] == ["doing"] * 4
    # The next slots take from the buffer; the group statement starts them before they run.
    taken = [await _take(job_manager, worker_id) for _ in range(3)]
    assert [job.id for job in taken] == ids[1:4]
    assert all([await job_manager.start(job) for job in taken])
    assert await _state(conn, ids[:4]) == [("doing", 0, "processing", 1, False)] * 4


async def test_sigterm_releases_buffered_jobs_unspent_and_never_retrying(
    app: procrastinate.App, conn: Any
) -> None:
    ids = await _enqueue(conn, 4)
    job_manager = _slots(app, 4)
    worker_id = await job_manager.register_worker()
    running = await _take(job_manager, worker_id)
    # The worker's shutdown ends with this call (procrastinate's Worker._shutdown).
    await job_manager.unregister_worker(worker_id)
    assert await _state(conn, ids) == [
        ("doing", 0, "processing", 1, False),  # the one it runs: its own finish will come
        *[("todo", 0, "pending", 0, False)] * 3,
    ]
    cur = await conn.execute(
        "SELECT count(*) AS n FROM broseph.job_records r JOIN procrastinate_jobs j"
        " ON j.id = r.procrastinate_job_id WHERE j.id = ANY(%s) AND r.status = 'retrying'",
        (ids,),
    )
    assert (await cur.fetchone())["n"] == 0
    listed = {job.id: job.status for job in await job_manager.list_jobs_async()}
    assert [listed[i] for i in ids[1:]] == ["todo"] * 3
    # Another worker takes them as first attempts.
    other = await job_manager.register_worker()
    again = await _take(job_manager, other)
    assert again.id == ids[1] and again.attempts == 0
    assert running.id == ids[0]


async def test_kill_9_rescue_releases_never_started_jobs_without_an_attempt(
    app: procrastinate.App, conn: Any
) -> None:
    # On their last attempt: a started one is failed by the rescue, a never-started one is not.
    ids = await _enqueue(conn, 4, max_attempts=1)
    job_manager = _slots(app, 4)
    worker_id = await job_manager.register_worker()
    await _take(job_manager, worker_id)
    second = await _take(job_manager, worker_id)
    assert await job_manager.start(second)
    # kill -9: nothing more from that process; its heartbeat stops.
    await conn.execute(
        "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 minute'"
        " WHERE id = %s",
        (worker_id,),
    )
    rescued = await rescue.rescue_lost_jobs(services.pool_of(app), lost_after_seconds=3)
    assert sorted((r.job_id, r.action) for r in rescued) == [
        (ids[0], "failed"), (ids[1], "failed"), (ids[2], "released"), (ids[3], "released")
    ]  # fmt: skip
    assert await _state(conn, ids) == [
        ("failed", 1, "failed", 1, False),
        ("failed", 1, "failed", 1, False),
        *[("todo", 0, "pending", 0, False)] * 2,
    ]


async def test_a_higher_priority_job_waits_behind_at_most_the_fetched_ones(
    app: procrastinate.App, conn: Any
) -> None:
    low = await _enqueue(conn, 8)
    job_manager = _slots(app, 3)
    worker_id = await job_manager.register_worker()
    order = [(await _take(job_manager, worker_id)).id]
    [urgent] = await _enqueue(conn, 1, priority=100)
    # Three slots in use now: the next fetch may take one job only (k ≤ free slots).
    order += [(await _take(job_manager, worker_id)).id for _ in range(3)]
    assert order == [low[0], low[1], low[2], urgent]
    cur = await conn.execute("SELECT count(*) AS n FROM procrastinate_jobs WHERE status = 'doing'")
    assert (await cur.fetchone())["n"] == 4


async def test_a_cancelled_buffered_job_ends_cancelled_without_running(
    app: procrastinate.App, conn: Any
) -> None:
    ids = await _enqueue(conn, 2)
    job_manager = _slots(app, 2)
    worker_id = await job_manager.register_worker()
    await _take(job_manager, worker_id)
    # `broseph jobs cancel` (and procrastinate's abort): a doing job gets an abort request.
    cur = await conn.execute("SELECT procrastinate_cancel_job_v1(%s, true, false) AS id", (ids[1],))
    assert (await cur.fetchone())["id"] == ids[1]
    buffered = await _take(job_manager, worker_id)
    ran: list[int] = []

    async def task() -> None:
        ran.append(1)

    context = job_context.JobContext(
        app=app, job=buffered, abort_reason=lambda: None, start_timestamp=0.0
    )
    with pytest.raises(exceptions.JobAborted):
        await engine.start_middleware(task, context, None)  # type: ignore[arg-type]
    assert ran == []
    # procrastinate's worker then finishes it as aborted: already recorded, nothing raised.
    await job_manager.finish_job(buffered, jobs.Status.ABORTED, delete_job=False)
    assert (await _state(conn, ids))[1] == ("aborted", 0, "cancelled", 0, False)


async def test_a_worker_fetches_in_batches_and_every_job_runs_once(
    app: procrastinate.App, conn: Any, start_worker: Any
) -> None:
    ids = await _enqueue(conn, 30)
    await start_worker(concurrency=5, fetch_job_polling_interval=0.1)

    async def done() -> bool:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM procrastinate_jobs WHERE id = ANY(%s)"
            " AND status = 'succeeded' AND attempts = 1",
            (ids,),
        )
        return (await cur.fetchone())["n"] == len(ids)

    await wait_until(done, within=60)
    cur = await conn.execute(
        "SELECT count(*) FILTER (WHERE r.status = 'completed' AND r.attempts = 1) AS completed,"
        "       count(DISTINCT e.xmin::text) AS fetches"
        "  FROM procrastinate_jobs j JOIN broseph.job_records r ON r.procrastinate_job_id = j.id"
        "  JOIN procrastinate_events e ON e.job_id = j.id AND e.type = 'started'"
        " WHERE j.id = ANY(%s)",
        (ids,),
    )
    row = await cur.fetchone()
    assert row["completed"] == len(ids)
    assert row["fetches"] < len(ids)  # some fetch statement took more than one job
    cur = await conn.execute("SELECT count(*) AS n FROM broseph.unstarted_jobs")
    assert (await cur.fetchone())["n"] == 0


async def test_the_fetch_reads_its_records_by_index_not_the_whole_table(conn: Any) -> None:
    # migrations/0042: planned for PostgreSQL's default 1,000 rows of a set-returning function,
    # the fetch joined its few jobs to their records by a sequential scan of every record.
    gid = await factories.group(conn)
    await conn.execute(
        "SELECT broseph.enqueue_many('ProcessEngagement', array_agg(jsonb_build_object("
        " 'group_id', %s::text, 'local_date', to_char(date '2026-01-01' + n, 'YYYY-MM-DD'))))"
        "  FROM generate_series(0, 1999) AS n",
        (gid,),
    )
    await conn.execute("ANALYZE broseph.job_records")
    cur = await conn.execute(
        b"EXPLAIN (FORMAT JSON) " + sql.query("fetch_jobs_with_record").encode(),
        {"queues": None, "worker_id": 1, "k": 10},
    )
    plan = (await cur.fetchone())["QUERY PLAN"]
    scans = [node for node in _nodes(plan) if node.get("Relation Name") == "job_records"]
    assert scans and all(node["Node Type"] != "Seq Scan" for node in scans), scans


def _nodes(tree: Any) -> list[dict[str, Any]]:
    if isinstance(tree, list):
        return [node for item in tree for node in _nodes(item)]
    if isinstance(tree, dict):
        found = [tree] if "Node Type" in tree else []
        return found + [node for value in tree.values() for node in _nodes(value)]
    return []
