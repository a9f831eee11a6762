"""
Group commit of the worker's finishes (broseph/engine.py, migrations/0031): the finishes of one
worker end in one statement — one transaction — each with what the lifecycle writes on its record
(result, error, last progress), so the record still changes in the queue row's transaction. A job
the group cannot finish is finished alone; a group that fails is finished one by one.

Rows written by one transaction carry its id (`xmin`): that is how "one transaction" is checked.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import procrastinate
import psycopg
import pytest
from procrastinate import exceptions, jobs

from broseph import engine, records
from tests import factories, testing_jobs
from tests.conftest import wait_until


async def _enqueue(conn: Any, count: int) -> list[uuid.UUID]:
    gid = await factories.group(conn)
    ids = []
    for day in range(count):
        cur = await conn.execute(
            "SELECT broseph.enqueue('ProcessEngagement', jsonb_build_object('group_id', %s::text,"
            " 'local_date', %s::text)) AS id",
            (gid, f"2026-03-{day + 1:02d}"),
        )
        ids.append(uuid.UUID(str((await cur.fetchone())["id"])))
    return ids


async def _fetch_all(app: procrastinate.App, count: int) -> list[jobs.Job]:
    worker_id = await app.job_manager.register_worker()
    fetched = [await app.job_manager.fetch_job(queues=None, worker_id=worker_id)
               for _ in range(count)]  # fmt: skip
    assert all(job is not None for job in fetched)
    return [job for job in fetched if job is not None]


async def _rows(conn: Any, job_ids: list[int]) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT j.id, j.status AS job_status, j.attempts, j.xmin::text AS job_xact,"
        "       r.status, r.result, r.progress, r.progress_message, r.last_error,"
        "       r.xmin::text AS record_xact"
        "  FROM procrastinate_jobs j JOIN broseph.job_records r ON r.procrastinate_job_id = j.id"
        " WHERE j.id = ANY(%s) ORDER BY j.id",
        (job_ids,),
    )
    return list(await cur.fetchall())


async def test_finishes_together_commit_in_one_transaction_with_their_notes(
    app: procrastinate.App, conn: Any
) -> None:
    await _enqueue(conn, 4)
    fetched = await _fetch_all(app, 4)
    for n, job in enumerate(fetched):
        record = engine.record_of(job)
        assert record is not None
        note = engine.Note(record.id, result={"n": n}, progress=(70, "nearly"))
        assert engine.note_outcome(job, app, note)
    await asyncio.gather(*(
        app.job_manager.finish_job(job, jobs.Status.SUCCEEDED, delete_job=False)
        for job in fetched
    ))  # fmt: skip
    rows = await _rows(conn, [job.id for job in fetched if job.id])
    assert [(r["job_status"], r["attempts"], r["status"]) for r in rows] == [
        ("succeeded", 1, "completed")
    ] * 4
    assert [r["result"] for r in rows] == [{"n": n} for n in range(4)]
    # The note's progress was written while the record was processing; success then made it 100.
    assert {(r["progress"], r["progress_message"]) for r in rows} == {(100, "nearly")}
    # One transaction: every queue row and every record carries the same transaction id.
    assert len({r["job_xact"] for r in rows} | {r["record_xact"] for r in rows}) == 1
    assert app.job_manager.notes == {}


async def test_a_job_no_longer_doing_is_left_out_and_the_group_still_commits(
    app: procrastinate.App, conn: Any
) -> None:
    await _enqueue(conn, 3)
    fetched = await _fetch_all(app, 3)
    gone = fetched[1]
    for job in fetched:
        record = engine.record_of(job)
        assert record is not None
        engine.note_outcome(job, app, engine.Note(record.id, error="RuntimeError: late"))
    # Someone else ended it meanwhile (an operator, a rescue).
    await conn.execute("SELECT procrastinate_finish_job_v1(%s, 'aborted', false)", (gone.id,))
    outcomes = await asyncio.gather(
        *(app.job_manager.finish_job(job, jobs.Status.FAILED, delete_job=False) for job in fetched),
        return_exceptions=True,
    )
    # procrastinate's own error for that job alone, as an ungrouped finish would raise.
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], exceptions.ConnectorException)
    assert "Job was not found" in str(outcomes[1].__cause__)
    rows = await _rows(conn, [job.id for job in fetched if job.id])
    assert [(r["job_status"], r["status"]) for r in rows] == [
        ("failed", "failed"), ("aborted", "cancelled"), ("failed", "failed")
    ]  # fmt: skip
    # The note of the job it could not finish was not written (its status did not move).
    assert [r["last_error"] for r in rows] == ["RuntimeError: late", "cancelled",
                                              "RuntimeError: late"]  # fmt: skip
    assert rows[0]["job_xact"] == rows[2]["job_xact"] == rows[2]["record_xact"]


async def test_a_group_that_fails_is_finished_one_by_one_losing_nothing(
    app: procrastinate.App, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _enqueue(conn, 2)
    fetched = await _fetch_all(app, 2)
    for job in fetched:
        record = engine.record_of(job)
        assert record is not None
        engine.note_outcome(job, app, engine.Note(record.id, result={"ok": True}))
    group_query = engine.broseph_sql.query("finish_jobs")
    real = procrastinate.PsycopgConnector.execute_query_all_async
    groups: list[int] = []

    async def deadlocked_once(self: Any, query: str, **arguments: Any) -> Any:
        if query == group_query:
            groups.append(len(arguments["job_ids"]))
            if len(groups) == 1:
                try:
                    raise psycopg.errors.DeadlockDetected("deadlock detected")
                except psycopg.Error as exc:
                    raise exceptions.ConnectorException from exc
        return await real(self, query, **arguments)

    monkeypatch.setattr(procrastinate.PsycopgConnector, "execute_query_all_async", deadlocked_once)
    await asyncio.gather(*(
        app.job_manager.finish_job(job, jobs.Status.SUCCEEDED, delete_job=False)
        for job in fetched
    ))  # fmt: skip
    assert groups == [2, 1, 1]  # the group, then each job alone (with its note)
    rows = await _rows(conn, [job.id for job in fetched if job.id])
    assert [(r["status"], r["result"]) for r in rows] == [("completed", {"ok": True})] * 2
    assert rows[0]["job_xact"] != rows[1]["job_xact"]
    assert all(r["job_xact"] == r["record_xact"] for r in rows)


async def test_the_lifecycle_writes_its_notes_in_the_finish_and_the_retry(
    app: procrastinate.App, conn: Any, start_worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await testing_jobs.install(app, conn, testing_jobs.REPORTING)
    await testing_jobs.install(app, conn, testing_jobs.FAILING)
    own_writes: list[uuid.UUID] = []
    note_outcome = records._note_outcome

    async def counted(pool: Any, record_id: uuid.UUID, **kwargs: Any) -> None:
        own_writes.append(record_id)
        await note_outcome(pool, record_id, **kwargs)

    monkeypatch.setattr(records, "_note_outcome", counted)
    gid = await factories.group(conn)
    rids = []
    for job_type in ("TestReports", "TestReports", "TestAlwaysFails"):
        cur = await conn.execute(
            "SELECT broseph.enqueue(%s, jsonb_build_object('group_id', %s::text)) AS id",
            (job_type, gid),
        )
        rids.append((await cur.fetchone())["id"])
    await start_worker(fetch_job_polling_interval=0.1)

    async def settled() -> bool:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM broseph.job_records WHERE id = ANY(%s)"
            " AND status IN ('completed', 'failed')",
            (rids,),
        )
        return (await cur.fetchone())["n"] == 3

    await wait_until(settled, within=30)
    cur = await conn.execute(
        "SELECT status, result, progress, progress_message, last_error, attempts"
        " FROM broseph.job_records WHERE id = ANY(%s) ORDER BY job_type DESC",
        (rids,),
    )
    rows = await cur.fetchall()
    assert [(r["status"], r["result"], r["progress"], r["progress_message"]) for r in rows[:2]] == [
        ("completed", {"attempt": 1}, 100, "almost")
    ] * 2
    # Retried twice (broseph.retry_job with the error), then failed (the grouped finish).
    assert (rows[2]["status"], rows[2]["attempts"]) == ("failed", 3)
    assert rows[2]["last_error"] == "RuntimeError: boom on attempt 3"
    assert own_writes == []  # every note went with its job's finish or retry


async def test_a_finish_writes_each_record_once_with_its_note_and_its_end(
    app: procrastinate.App, conn: Any
) -> None:
    # migrations/0043: the note and the end status in one record write (before: the note, then
    # the trigger's end — two row versions per job), with the values the two wrote.
    await _enqueue(conn, 3)
    fetched = await _fetch_all(app, 3)
    records_ = [engine.record_of(job) for job in fetched]
    assert all(records_)
    async with conn.transaction():
        await conn.execute(
            "SELECT * FROM broseph.finish_jobs(%s, %s::public.procrastinate_job_status[],"
            " %s, %s, %s, %s::jsonb[], %s, %s, '{}')",
            (
                [job.id for job in fetched],
                ["succeeded", "failed", "aborted"],
                [False] * 3,
                [record.id for record in records_ if record],
                [None, "boom", None],
                ['{"n": 1}', None, None],
                [60, 40, 20],
                ["sixty", "forty", "twenty"],
            ),
        )
        cur = await conn.execute(
            "SELECT pg_stat_get_xact_tuples_updated('broseph.job_records'::regclass) AS n"
        )
        assert (await cur.fetchone())["n"] == 3
    rows = await _rows(conn, [job.id for job in fetched if job.id])
    got = [
        (r["job_status"], r["attempts"], r["status"], r["result"], r["progress"],
         r["progress_message"], r["last_error"])
        for r in rows
    ]  # fmt: skip
    assert got == [
        ("succeeded", 1, "completed", {"n": 1}, 100, "sixty", None),
        ("failed", 1, "failed", None, 40, "forty", "boom"),
        ("aborted", 1, "cancelled", None, 20, "twenty", "cancelled"),
    ]
    cur = await conn.execute(
        "SELECT count(*) AS n FROM broseph.job_records WHERE id = ANY(%s)"
        " AND finished_at IS NOT NULL AND next_attempt_at IS NULL AND attempts = 1",
        ([record.id for record in records_ if record],),
    )
    assert (await cur.fetchone())["n"] == 3
