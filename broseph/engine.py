"""
procrastinate, the queue engine, behind one checked seam.

Every use broseph makes of procrastinate beyond its documented API is in this module, and
`Internals` checks all of it when the worker's connector is built (`import broseph.worker`,
`broseph migrate`): after a procrastinate upgrade that changed any of it, nothing starts, with a
message naming what changed (IncompatibleProcrastinate) — never a failure at the first fetch.
Checked: the private PsycopgConnector methods the connector overrides or calls; the JobManager
methods the worker calls and `WorkerJobManager` replaces, and that procrastinate's Worker still
calls them; the fetch (procrastinate's `fetch_job` selects exactly the job columns of broseph's
`fetch_jobs_with_record`, and `Job.from_row` builds a job from that row); procrastinate's SQL in
the package (the functions and columns broseph's migrations and queries use, with argument types;
the error text of an already-recorded finish or retry; the NOTIFY channels and payload); its
upgrade files (each recognisable in a database, broseph/queries/procrastinate.sql); its registry
of periodic tasks, which the overview reads (`schedules`).

The database side is checked when a worker starts (`WorkerJobManager.register_worker`): its
procrastinate schema at the installed package's version, and what broseph relies on and put on
procrastinate's objects in place (broseph/procrastinate_schema.py); else SchemaMismatch, one line.

The seam owns the worker's fetch, finish and retry, and the hand-off of the job's record.
procrastinate's Worker asks `WorkerJobManager` for one job per free slot (`fetch_job`) and reports
each outcome to it (`finish_job`, `retry_job`); the seam batches both. The fetch
(`broseph.fetch_jobs`, migrations/0031) takes up to the free slots' jobs in one statement, each
with its record (`FetchedJob.record`, read with `record_of`); the first runs at once, the rest wait
in a local buffer, `doing` but marked not started, for the slots asking next, and are started in
the next grouped statement before their handlers begin (`start_middleware`, a procrastinate
worker middleware `worker_options` adds). Finishes are collected for up to FINISH_WINDOW and ended
in one statement (`broseph.finish_jobs`, migrations/0032) with the lifecycle's writes folded in
(`note_outcome`): the record changes in the queue row's transaction. The worker's last call
(`unregister_worker`) releases jobs fetched but never started, unspent; after a kill the rescue
does (migrations/0031).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import datetime
import enum
import functools
import inspect
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, LiteralString, TypeVar, cast

import attr
import procrastinate
import psycopg
import psycopg_pool
from procrastinate import (
    blueprints,
    connector,
    exceptions,
    job_context,
    manager,
    middleware,
    periodic,
    schema,
    sql,
)
from procrastinate import jobs as procrastinate_jobs
from procrastinate import worker as procrastinate_worker
from psycopg.rows import DictRow

from broseph import db, problems, procrastinate_schema, records
from broseph import sql as broseph_sql
from broseph.ops.connector import Patience, connection_lost, logger, since

T = TypeVar("T")
SchemaMismatch = procrastinate_schema.SchemaMismatch

# A finish or retry retried after a lost connection finds the job no longer in `doing` when its
# first try committed: procrastinate_finish_job_v1 / procrastinate_retry_job_v2 raise this.
ALREADY_RECORDED = "Job was not found or "
# What the worker is told after LISTEN comes back: "there may be new jobs" (a fetch follows).
WAKE_UP = json.dumps({"type": "job_inserted", "job_id": None})
# procrastinate's channels (broseph.rescue_lost_jobs, migrations/0009, notifies them too).
CHANNELS = ("procrastinate_any_queue_v1", "procrastinate_queue_v1#")


class IncompatibleProcrastinate(RuntimeError):
    """
    The installed procrastinate differs from what the seam was written against.
    """


class Internals:
    """
    Everything this module relies on in procrastinate, checked at construction.
    """

    def __init__(self) -> None:
        self.version = procrastinate.__version__
        problems = [
            *_signatures(),
            *_periodic_registry(),
            *_worker_calls(),
            *_fetch_columns(),
            *_packaged_sql(schema.SchemaManager.get_schema()),
            *_upgrade_files(),
        ]
        if problems:
            raise IncompatibleProcrastinate(
                f"procrastinate {self.version} differs from what broseph/engine.py was written"
                f" against (3.10): {'; '.join(problems)} — update broseph/engine.py (and"
                " procrastinate_schema.py) or install procrastinate 3.10"
            )


@functools.cache
def internals() -> Internals:
    return Internals()


# --- the worker's connector ----------------------------------------------------------------------


class _Mode(enum.Enum):
    PATIENT = "patient"  # retried after a lost connection
    ONCE = "once"  # never repeated: the first try may have committed
    OUTCOME = "outcome"  # retried; "not found" after a loss means the first try committed


_MODE: contextvars.ContextVar[_Mode] = contextvars.ContextVar(
    "broseph_query", default=_Mode.PATIENT
)


@contextlib.contextmanager
def _mode(mode: _Mode) -> Iterator[None]:
    token = _MODE.set(mode)
    try:
        yield
    finally:
        _MODE.reset(token)


def _already_recorded(exc: exceptions.ConnectorException) -> bool:
    return ALREADY_RECORDED in str(exc.__cause__ or "")


class WorkerConnector(procrastinate.PsycopgConnector):
    """
    procrastinate's psycopg connector, riding out database restarts (broseph/ops/connector.py),
    with one round trip per statement.

    procrastinate runs each of its statements (fetch, finish, retry, heartbeat) alone on a pooled
    connection inside the pool's implicit transaction: BEGIN, the statement, COMMIT. Here they
    run in autocommit — the same single-statement transaction without two of its three round
    trips. Statements on a caller's connection are left alone (the caller owns it).
    """

    def __init__(self, *, outage_timeout: float, **kwargs: Any) -> None:
        self.internals = internals()
        # One wait for a pooled connection must not outlast the outage budget (psycopg_pool
        # waits 30 s by default); handlers sharing the pool then fail and retry sooner too.
        kwargs.setdefault("timeout", min(outage_timeout, 30.0))
        super().__init__(**kwargs)
        self.patience = Patience(outage_timeout)
        # Whether LISTEN is established right now (read by the worker's /readyz).
        self.listening = False
        self._conninfo: str = kwargs.get("conninfo", "")
        self._connect_kwargs: dict[str, Any] = kwargs.get("kwargs", {})

    async def open_async(self, pool: psycopg_pool.AsyncConnectionPool[Any] | None = None) -> None:
        """
        Open the pool once the database is known to accept a connection: a wrong URL or
        password fails here at once with its cause (`problems`), instead of the pool retrying
        it for its whole timeout and ending in a PoolTimeout; a database that is starting or
        down is waited for, up to DB_OUTAGE_TIMEOUT.
        """
        if pool is None and self._async_pool is None:
            if not self._conninfo:
                raise problems.explain(db.DatabaseNotConfigured()).alone()
            await db.reach(
                self._conninfo, patience=self.patience.outage_timeout, **self._connect_kwargs
            )
        await super().open_async(pool)

    @property
    def gave_up(self) -> bool:
        return self.patience.gave_up

    async def _patiently(self, call: Callable[[], Awaitable[T]]) -> T:
        mode = _MODE.get()
        result = await self.patience.run(
            call,
            repeatable=mode is not _Mode.ONCE,
            settled=_already_recorded if mode is _Mode.OUTCOME else None,
        )
        return cast(T, result)  # None only for a settled outcome, whose queries return nothing

    async def execute_query_async(self, query: LiteralString, **arguments: Any) -> None:
        parent = super().execute_query_async
        await self._patiently(lambda: parent(query, **arguments))

    async def execute_query_one_async(
        self, query: LiteralString, **arguments: Any
    ) -> dict[str, Any]:
        parent = super().execute_query_one_async
        return await self._patiently(lambda: parent(query, **arguments))

    async def execute_query_all_async(
        self, query: LiteralString, **arguments: Any
    ) -> list[dict[str, Any]]:
        parent = super().execute_query_all_async
        return await self._patiently(lambda: parent(query, **arguments))

    async def execute_counting_async(
        self, query: LiteralString, **arguments: Any
    ) -> tuple[list[dict[str, Any]], int]:
        """
        execute_query_all_async, and how many times it ran (more than once: a try before met a
        lost connection, and may have committed).
        """
        parent = super().execute_query_all_async
        tries = 0

        async def once() -> list[dict[str, Any]]:
            nonlocal tries
            tries += 1
            rows: list[dict[str, Any]] = await parent(query, **arguments)
            return rows

        return await self._patiently(once), tries

    @contextlib.asynccontextmanager
    async def _get_cursor(
        self, connection: psycopg.AsyncConnection[Any] | None = None
    ) -> AsyncIterator[psycopg.AsyncCursor[DictRow]]:
        if connection is not None:
            async with super()._get_cursor(connection) as cursor:
                yield cursor
            return
        async with self.pool.connection() as conn, db.autocommit(conn):
            async with super()._get_cursor(conn) as cursor:
                yield cursor

    async def listen_notify(
        self, on_notification: connector.Notify, channels: Iterable[str]
    ) -> None:
        """
        procrastinate's LISTEN loop, re-established after every loss (stock 3.10 gives up, #1597).
        """
        channels = list(channels)
        delay, lost_since = 0.05, None
        while True:
            try:
                async with self._get_standalone_connection() as conn:
                    for channel in channels:
                        await conn.execute(
                            self._make_dynamic_query(
                                query=sql.queries["listen_queue"], channel_name=channel
                            )
                        )
                    if lost_since is not None:
                        logger.info("listen_restored", after_seconds=since(lost_since))
                        await on_notification(channel=channels[0], payload=WAKE_UP)
                    delay, lost_since = 0.05, None
                    self.listening = True
                    try:
                        # Returns when the connection dies (procrastinate catches that error).
                        await self._loop_notify(on_notification=on_notification, connection=conn)
                    finally:
                        self.listening = False
                error = "connection closed"
            except (psycopg.Error, exceptions.ConnectorException) as exc:
                if not connection_lost(exc):
                    raise
                error = str(exc.__cause__ or exc)[:300]
            if lost_since is None:
                lost_since = asyncio.get_running_loop().time()
                logger.warning("listen_lost", error=error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


# --- the worker's fetch, finish and record hand-off ----------------------------------------------


@attr.dataclass(frozen=True, kw_only=True)
class FetchedJob(procrastinate_jobs.Job):
    """
    A job as the worker's fetch returns it: with its record, read in the same statement (None for
    a job without one, e.g. a periodic tick). Kept out of procrastinate's log context.
    """

    record: records.Record | None = attr.ib(default=None, repr=False, eq=False)

    def asdict(self) -> dict[str, Any]:
        return attr.asdict(self, filter=lambda field, _value: field.name != "record")


def record_of(job: procrastinate_jobs.Job) -> records.Record | None:
    """
    The record the worker's fetch read with this job (None: not fetched by the seam, or none).
    """
    return job.record if isinstance(job, FetchedJob) else None


# How long a finish waits for others to join its group (while jobs of this worker are still
# running: when every job handed out has reported, or a start is waiting, the group goes at
# once), and the largest group.
FINISH_WINDOW = 0.002
GROUP_MAX = 100


@dataclass(frozen=True)
class Note:
    """
    What an attempt leaves on its record besides its status: the reason of a failure, the
    handler's result, the last progress update not yet written (None: keep each).
    """

    record_id: uuid.UUID
    error: str | None = None
    result: Any = None
    progress: tuple[int, str] | None = None


@dataclass
class _Finish:
    job_id: int
    status: procrastinate_jobs.Status
    delete_job: bool
    note: Note | None
    done: asyncio.Future[None]


@dataclass
class _Start:
    job_id: int
    started: asyncio.Future[bool]  # False: not to run (a cancel reached it first)


def note_outcome(job: procrastinate_jobs.Job, app: procrastinate.App, note: Note) -> bool:
    """
    Hand an attempt's note to the job's finish or retry, which writes it in its own statement
    (the record changes in the queue row's transaction). False: this job's outcome does not go
    through the seam (not fetched by it): the caller writes the note itself.
    """
    manager_ = app.job_manager
    if not isinstance(job, FetchedJob) or not isinstance(manager_, WorkerJobManager):
        return False
    assert job.id is not None
    manager_.notes[job.id] = note
    return True


async def start_middleware(
    call_next: middleware.AsyncCallNext,
    context: job_context.JobContext,
    worker: procrastinate_worker.Worker,
) -> Any:
    """
    procrastinate worker middleware (around every job, before its task): a job a slot took from
    the fetch buffer is started in the database first (WorkerJobManager.start) — so a job whose
    handler never began is never counted as an attempt — or not run at all when a cancel reached
    it while it waited.
    """
    manager_ = context.app.job_manager
    if isinstance(manager_, WorkerJobManager) and not await manager_.start(context.job):
        raise exceptions.JobAborted("cancelled before it started")
    return await call_next()


def worker_options(app: procrastinate.App, options: dict[str, Any]) -> dict[str, Any]:
    """
    The options of a worker run on this app (`app.run_worker_async(**options)`), with the
    seam's start middleware; tells the job manager the worker's concurrency, the most its fetch
    takes at once (never more than the free slots). Without this, the fetch takes one job.
    """
    merged = {**app.worker_defaults, **options}
    if isinstance(app.job_manager, WorkerJobManager):
        app.job_manager.concurrency = max(int(merged.get("concurrency") or 1), 1)
    extra = list(merged.get("worker_middleware") or [])
    return {**options, "worker_middleware": [*extra, start_middleware]}


class WorkerJobManager(manager.JobManager):
    """
    procrastinate's JobManager with broseph's fetch (migrations/0016, 0031: up to the free slots
    per statement, the record read with each job), finishes in groups (0032) carrying the
    lifecycle's writes, finish and retry made safe to repeat after a lost connection, defers
    never repeated, and the database's procrastinate schema checked when a worker starts.

    procrastinate's Worker asks for one job per free slot (`fetch_job`). The first ask with an
    empty buffer fetches up to `concurrency - held` jobs: the first runs at once (started in that
    statement), the rest wait in the buffer, `doing` but not started (migrations/0031), for the
    slots asking next — immediately, as they are free. A job taken from the buffer is started in
    the next group statement before its handler begins (start_middleware). The worker's last call
    (`unregister_worker`) releases what it never started.
    """

    def __init__(self, connector: connector.BaseConnector) -> None:
        super().__init__(connector)
        self._schema_checked = False
        # job id → (seconds, reason) of a job whose handler asked to wait (`snooze`).
        self._snoozes: dict[int, tuple[float, str]] = {}
        # The worker's concurrency (worker_options): the most one fetch takes.
        self.concurrency = 1
        # Notes of attempts whose finish or retry has not been asked for yet (note_outcome).
        self.notes: dict[int, Note] = {}
        # Fetched jobs not handed out yet, per worker; handed out but to be started first; ended
        # before they started (their finish is already recorded).
        self._buffers: dict[int, collections.deque[FetchedJob]] = {}
        self._to_start: set[int] = set()
        self._ended: set[int] = set()
        # Handed out, outcome not committed yet (slots in use); outcome not reported yet.
        self._held: set[int] = set()
        self._running: set[int] = set()
        # Finishes and starts waiting for their group.
        self._pending: list[_Finish] = []
        self._starts: list[_Start] = []
        self._group_ready = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    async def fetch_job(
        self, queues: Iterable[str] | None, worker_id: int
    ) -> procrastinate_jobs.Job | None:
        buffer = self._buffers.setdefault(worker_id, collections.deque())
        if buffer:
            job = buffer.popleft()
            assert job.id is not None
            self._to_start.add(job.id)
            return self._hand_out(job)
        rows = await self.connector.execute_query_all_async(
            query=broseph_sql.query("fetch_jobs_with_record"),
            queues=queues,
            worker_id=worker_id,
            k=max(self.concurrency - len(self._held), 1),
        )
        fetched = []
        for row in rows:
            record = records.fetched(row)  # takes the record_* columns out of the row
            fetched.append(cast(FetchedJob, FetchedJob.from_row(row).evolve(record=record)))
        if not fetched:
            return None
        buffer.extend(fetched[1:])
        return self._hand_out(fetched[0])

    def _hand_out(self, job: FetchedJob) -> FetchedJob:
        assert job.id is not None
        self._held.add(job.id)
        self._running.add(job.id)
        return job

    async def start(self, job: procrastinate_jobs.Job) -> bool:
        """
        Start a job taken from the buffer (no-op for one started by its fetch): its unstarted
        mark goes and its record moves to processing in the next group statement, committed
        before this returns. False: not started — a cancel asked for its abort meanwhile (it is
        now `aborted`, no attempt spent) or it is no longer this worker's.
        """
        if job.id not in self._to_start:
            return True
        self._to_start.discard(job.id)
        start = _Start(job.id, asyncio.get_running_loop().create_future())
        self._starts.append(start)
        self._group_ready.set()
        self._flush_soon()
        started = await start.started
        if not started:
            self._ended.add(job.id)
        return started

    async def finish_job(
        self, job: procrastinate_jobs.Job, status: procrastinate_jobs.Status, delete_job: bool
    ) -> None:
        """
        Group commit: the finish joins the group of this worker's finishes, which ends in one
        statement (broseph.finish_jobs, migrations/0032) with each job's note; returns once
        this job's finish is committed (procrastinate's Worker frees the slot only then).
        """
        assert job.id is not None
        snoozed = self._snoozes.pop(job.id, None)
        if snoozed is not None and status == procrastinate_jobs.Status.SUCCEEDED:
            await self._snooze_now(job.id, *snoozed)
            return
        if self._done_before_start(job.id):
            return
        finish = _Finish(
            job.id,
            status,
            delete_job,
            self.notes.pop(job.id, None),
            asyncio.get_running_loop().create_future(),
        )
        self._pending.append(finish)
        self._reported(job.id)
        self._flush_soon()
        try:
            await finish.done
        finally:
            self._held.discard(job.id)

    def _done_before_start(self, job_id: int) -> bool:
        if job_id not in self._ended:
            return False
        self._ended.discard(job_id)
        self.notes.pop(job_id, None)
        self._running.discard(job_id)
        self._held.discard(job_id)
        return True

    def _reported(self, job_id: int) -> None:
        self._running.discard(job_id)
        if not self._running or len(self._pending) >= GROUP_MAX:
            self._group_ready.set()

    def _flush_soon(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="broseph finish group")

    async def _flush(self) -> None:
        while self._pending or self._starts:
            if not self._starts and self._running and len(self._pending) < GROUP_MAX:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._group_ready.wait(), FINISH_WINDOW)
            self._group_ready.clear()
            group, self._pending = self._pending[:GROUP_MAX], self._pending[GROUP_MAX:]
            starts, self._starts = self._starts[:GROUP_MAX], self._starts[GROUP_MAX:]
            try:
                await self._finish_group(group, starts)
            except BaseException as exc:  # never leave a finish or a start waiting for ever
                for waiting in [f.done for f in group] + [s.started for s in starts]:
                    if not waiting.done():
                        waiting.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise

    async def _run_group(
        self, group: list[_Finish], starts: list[_Start]
    ) -> tuple[dict[int, str], int]:
        """
        One statement for the group: {job id: finished | started | aborted}, and how many times
        it ran (more than once: after a lost connection, an earlier try may have committed).
        """
        notes = [finish.note for finish in group]
        arguments: dict[str, Any] = {
            "job_ids": [finish.job_id for finish in group],
            "statuses": [finish.status.value for finish in group],
            "delete_jobs": [finish.delete_job for finish in group],
            "record_ids": [note.record_id if note else None for note in notes],
            "errors": [note.error if note else None for note in notes],
            "results": [_json(note.result) if note else None for note in notes],
            "progresses": [note.progress[0] if note and note.progress else None for note in notes],
            "messages": [note.progress[1] if note and note.progress else None for note in notes],
            "start_ids": [start.job_id for start in starts],
        }
        query = broseph_sql.query("finish_jobs")
        if isinstance(self.connector, WorkerConnector):
            rows, tries = await self.connector.execute_counting_async(query, **arguments)
        else:
            rows, tries = await self.connector.execute_query_all_async(query, **arguments), 1
        return {row["id"]: row["outcome"] for row in rows}, tries

    async def _finish_group(self, group: list[_Finish], starts: list[_Start]) -> None:
        try:
            outcomes, tries = await self._run_group(group, starts)
            finished, finish_tries = outcomes, tries
        except exceptions.ConnectorException as exc:
            if connection_lost(exc):
                raise  # the database is away past DB_OUTAGE_TIMEOUT: one by one would not help
            logger.warning(
                "finish_group_failed", jobs=len(group) + len(starts), error=str(exc.__cause__)[:300]
            )
            outcomes, tries = {}, 1
            finished, finish_tries = {}, 1
            if starts:  # the starts again without the finishes (one of which may be the cause)
                try:
                    outcomes, tries = await self._run_group([], starts)
                except exceptions.ConnectorException as start_exc:
                    for start in starts:  # the job fails before its handler (and is retried)
                        if not start.started.done():
                            start.started.set_exception(start_exc)
        for start in starts:
            if start.started.done():
                continue
            outcome = outcomes.get(start.job_id)
            # Not in the answer of a repeated group: the first try started it (the mark is gone).
            _resolve(start.started, outcome == "started" or (outcome is None and tries > 1))
        for finish in group:
            if finish.job_id in finished or finish_tries > 1:
                # Missing from a group repeated after a lost connection: its first try committed
                # (as procrastinate's "not found" after a loss, _Mode.OUTCOME).
                _resolve(finish.done, None)
        for finish in group:
            if not finish.done.done():
                try:
                    await self._finish_alone(finish)
                except Exception as exc:
                    finish.done.set_exception(exc)
                else:
                    _resolve(finish.done, None)

    async def _finish_alone(self, finish: _Finish) -> None:
        """
        A finish the group did not make: with its note, alone; when the job is not in todo or
        doing, procrastinate's own finish raises its error (or, after a loss, counts as done).
        """
        if finish.note is not None:
            outcomes, _ = await self._run_group([finish], [])
            if outcomes:
                return
        with _mode(_Mode.OUTCOME):
            await super().finish_job_by_id_async(
                job_id=finish.job_id, status=finish.status, delete_job=finish.delete_job
            )

    async def _snooze_now(self, job_id: int, seconds: float, reason: str) -> None:
        # procrastinate's retry would spend an attempt (procrastinate_retry_job_v2 adds one):
        # back to todo by broseph.snooze_job instead, the record's reason with it. Not part of
        # a finish group: a snooze is rare, and its statement is not a finish.
        self.notes.pop(job_id, None)
        self._reported(job_id)
        try:
            with _mode(_Mode.OUTCOME):
                await self.connector.execute_query_async(
                    query=broseph_sql.query("snooze_job"),
                    job_id=job_id,
                    seconds=seconds,
                    reason=reason,
                )
        finally:
            self._held.discard(job_id)

    def snooze(self, job: procrastinate_jobs.Job, seconds: float, reason: str) -> None:
        """
        When this job's handler returns, put the job back to wait `seconds` (no attempt spent).
        """
        assert job.id is not None
        self._snoozes[job.id] = (seconds, reason)

    async def retry_job(
        self,
        job: procrastinate_jobs.Job,
        retry_at: datetime.datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        lock: str | None = None,
    ) -> None:
        assert job.id is not None
        if self._done_before_start(job.id):
            return
        note = self.notes.pop(job.id, None)
        self._reported(job.id)
        try:
            with _mode(_Mode.OUTCOME):
                if note is None:
                    await super().retry_job(
                        job=job, retry_at=retry_at, priority=priority, queue=queue, lock=lock
                    )
                    return
                await self.connector.execute_query_async(
                    broseph_sql.query("retry_job_noted"),
                    job_id=job.id,
                    retry_at=retry_at or datetime.datetime.now(datetime.UTC),
                    new_priority=priority,
                    new_queue_name=queue,
                    new_lock=lock,
                    record_id=note.record_id,
                    error=note.error,
                    result=_json(note.result),
                    progress=note.progress[0] if note.progress else None,
                    message=note.progress[1] if note.progress else None,
                )
        finally:
            self._held.discard(job.id)

    async def unregister_worker(self, worker_id: int) -> None:
        """
        The worker's last call: the jobs it fetched and never started go back to waiting, with
        no attempt spent (migrations/0031); then procrastinate's unregistering.
        """
        buffered = [job.id for job in self._buffers.pop(worker_id, ())]
        if buffered:
            try:
                rows = await self.connector.execute_query_all_async(
                    query=broseph_sql.query("release_jobs"), worker_id=worker_id, job_ids=buffered
                )
                logger.info("jobs_released", worker_id=worker_id, job_ids=[r["id"] for r in rows])
            except exceptions.ConnectorException as exc:
                # The rescue releases them unspent once this worker counts as lost.
                logger.warning("jobs_not_released", job_ids=buffered, error=str(exc)[:300])
        await super().unregister_worker(worker_id)

    async def batch_defer_jobs_async(
        self, jobs: list[procrastinate_jobs.Job], connection: Any | None = None
    ) -> list[procrastinate_jobs.Job]:
        # A defer whose commit outcome is unknown could add the job twice (broseph's producers
        # use broseph.enqueue with idempotency keys instead; periodic defers are unique).
        with _mode(_Mode.ONCE):
            return await super().batch_defer_jobs_async(jobs=jobs, connection=connection)

    async def prune_stalled_workers(self, seconds_since_heartbeat: float) -> list[int]:
        await self.check_schema()  # procrastinate's Worker.run calls this first
        return await super().prune_stalled_workers(seconds_since_heartbeat)

    async def register_worker(self) -> int:
        await self.check_schema()
        return await super().register_worker()

    async def check_schema(self) -> None:
        """
        SchemaMismatch (one line naming the fix) unless the database's procrastinate schema is the
        installed package's and what broseph relies on in it is in place.
        """
        if self._schema_checked:
            return
        report = await procrastinate_schema.check(self.connector.execute_query_all_async)
        if report.problems:
            raise SchemaMismatch("; ".join(report.problems))
        self._schema_checked = True


def snooze(
    app: procrastinate.App, job: procrastinate_jobs.Job, seconds: float, reason: str
) -> None:
    """
    Have the worker's finish of this job (which returns normally) put it back to wait `seconds`
    instead of completing it: status todo, the same attempts, the record saying `reason`
    (broseph.snooze_job, migrations/0034).
    """
    manager_ = app.job_manager
    if not isinstance(manager_, WorkerJobManager):
        raise TypeError("a snooze needs broseph's job manager (broseph.engine.install)")
    manager_.snooze(job, seconds, reason)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _resolve(done: asyncio.Future[T], value: T) -> None:
    if not done.done():  # its waiter may have been cancelled
        done.set_result(value)


def install(app: procrastinate.App) -> None:
    """
    Give the app the seam's job manager (procrastinate's tasks and worker reach it as
    `app.job_manager`).
    """
    app.job_manager = WorkerJobManager(app.connector)


# --- the periodic tasks of an app ---


@dataclass(frozen=True)
class Schedule:
    """
    A periodic task as registered on an app: known without a database.
    """

    task_name: str
    periodic_id: str
    cron: str
    _periodic: periodic.PeriodicTask[Any, Any, Any] = field(repr=False, compare=False)

    def next_due(self, now: datetime.datetime) -> datetime.datetime:
        """
        The next time the task is due after `now`, computed as procrastinate's worker computes it.
        """
        stamp = self._periodic.croniter.get_next(ret_type=float, start_time=now.timestamp())
        return datetime.datetime.fromtimestamp(stamp, datetime.UTC)


def schedules(app: procrastinate.App) -> list[Schedule]:
    return [
        Schedule(task.task.name, task.periodic_id, task.cron, task)
        for task in app.periodic_registry.periodic_tasks.values()
    ]


# --- the checks ----------------------------------------------------------------------------------

# Methods overridden here: their parameters must still be procrastinate's.
_CONNECTOR_METHODS = (
    "execute_query_async execute_query_one_async execute_query_all_async _get_cursor listen_notify"
).split()
_MANAGER_METHODS = (
    "fetch_job finish_job retry_job batch_defer_jobs_async prune_stalled_workers register_worker"
    " unregister_worker"
).split()
_OVERRIDDEN = [
    *((procrastinate.PsycopgConnector, WorkerConnector, name) for name in _CONNECTOR_METHODS),
    *((manager.JobManager, WorkerJobManager, name) for name in _MANAGER_METHODS),
]
# Private methods only called here, with the parameters passed.
_CALLED = (
    ("_get_standalone_connection", ()),
    ("_make_dynamic_query", ("query",)),
    ("_loop_notify", ("on_notification", "connection")),
)
# What procrastinate's Worker must still call for the seam's methods to be the ones that run
# (every overridden manager method but the defer, which the app calls).
_WORKER_CALLS = tuple(
    f"job_manager.{name}(" for name in _MANAGER_METHODS if name != "batch_defer_jobs_async"
)


def _parameters(function: Any) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]


def _signatures() -> list[str]:
    problems = []
    for base, ours, name in _OVERRIDDEN:
        theirs = getattr(base, name, None)
        if theirs is None:
            problems.append(f"{base.__name__}.{name} is gone")
        elif _parameters(theirs) != _parameters(getattr(ours, name)):
            problems.append(f"{base.__name__}.{name} now takes ({', '.join(_parameters(theirs))})")
    for name, passed in _CALLED:
        method = getattr(procrastinate.PsycopgConnector, name, None)
        if method is None:
            problems.append(f"PsycopgConnector.{name} is gone")
        elif not set(passed) <= set(_parameters(method)):
            problems.append(f"PsycopgConnector.{name} no longer takes {', '.join(passed)}")
    if "{channel_name}" not in sql.queries.get("listen_queue", ""):
        problems.append("the listen_queue query no longer takes {channel_name}")
    return problems


def _periodic_registry() -> list[str]:
    blueprint = blueprints.Blueprint()
    try:

        def probe(timestamp: int) -> None:
            """A periodic task every 5 minutes, to read back."""

        blueprint.periodic(cron="*/5 * * * *", periodic_id="probe")(blueprint.task(probe))
        [found] = schedules(cast(procrastinate.App, blueprint))
        due = found.next_due(datetime.datetime.fromtimestamp(0, datetime.UTC)).timestamp()
    except Exception as exc:  # any change in how periodic tasks are registered or read
        return [f"its periodic task registry changed ({type(exc).__name__}: {exc})"]
    if (found.periodic_id, found.cron, due) != ("probe", "*/5 * * * *", 300.0):
        return ["its periodic task registry reads back differently"]
    return []


def _worker_calls() -> list[str]:
    try:
        source = inspect.getsource(procrastinate_worker.Worker)
    except (OSError, TypeError):
        return ["procrastinate.worker's source cannot be read"]
    problems = [f"procrastinate's Worker no longer calls {call}…)" for call in _WORKER_CALLS
                if call not in source]  # fmt: skip
    # start_middleware (worker_options) must run around every job, before its task.
    parameters = inspect.signature(procrastinate_worker.Worker).parameters
    if "worker_middleware" not in parameters or "self.worker_middleware, run_job" not in source:
        problems.append("procrastinate's Worker no longer runs worker_middleware around each job")
    return problems


def _fetch_columns() -> list[str]:
    match = re.search(r"SELECT\s+(.*?)\s+FROM\s", sql.queries.get("fetch_job", ""), re.DOTALL)
    if match is None:
        return ["its fetch_job query is gone or no longer a SELECT"]
    theirs = [column.strip() for column in match.group(1).split(",")]
    fetch = broseph_sql.query("fetch_jobs_with_record")
    ours = list(dict.fromkeys(re.findall(r"\bjob\.(\w+)", fetch)))
    if theirs != ours:
        return [
            f"its fetch_job selects ({', '.join(theirs)}), broseph's fetch_jobs_with_record"
            f" ({', '.join(ours)})"
        ]
    row: dict[str, Any] = {column: None for column in ours}
    try:
        FetchedJob.from_row(row).evolve(record=None)
    except (KeyError, TypeError) as exc:
        return [f"Job.from_row no longer accepts the fetched row ({type(exc).__name__}: {exc})"]
    return []


_FUNCTION = re.compile(r"CREATE (?:OR REPLACE )?FUNCTION (?:public\.)?(\w+)\s*\((.*?)\)\s*RETURNS",
                       re.DOTALL)  # fmt: skip
_TABLE = re.compile(r"CREATE TABLE (?:public\.)?(\w+)\s*\((.*?)\n\);", re.DOTALL)


def _packaged_sql(schema_sql: str) -> list[str]:
    """
    The functions, columns, error texts and NOTIFY details broseph's SQL relies on, in the
    schema the installed procrastinate creates.
    """
    functions: dict[str, tuple[str, ...]] = {}
    bodies: dict[str, str] = {}
    starts = list(_FUNCTION.finditer(schema_sql))
    for match, following in zip(starts, [*starts[1:], None], strict=True):
        declared = [arg.split(None, 1)[-1] for arg in match.group(2).split(",") if arg.strip()]
        functions[match.group(1)] = tuple(_normal(arg) for arg in declared)
        bodies[match.group(1)] = schema_sql[match.end() : following.start() if following else None]
    problems = []
    for signature in procrastinate_schema.FUNCTIONS:
        name, _, arguments = signature.partition("(")
        wanted = tuple(_normal(arg) for arg in arguments.rstrip(")").split(","))
        if functions.get(name) != wanted:
            found = functions.get(name)
            problems.append(
                f"SQL function {signature} is "
                + (f"now {name}({', '.join(found)})" if found is not None else "gone")
            )
    for name in ("procrastinate_finish_job_v1", "procrastinate_retry_job_v2"):
        if ALREADY_RECORDED not in bodies.get(name, ""):
            problems.append(f"{name} no longer raises '{ALREADY_RECORDED}…'")
    tables = {m.group(1): m.group(2) for m in _TABLE.finditer(schema_sql)}
    for table, columns in procrastinate_schema.COLUMNS.items():
        defined = {line.split()[0] for line in tables.get(table, "").splitlines() if line.strip()}
        missing = [column for column in columns if column not in defined]
        if missing:
            problems.append(f"table {table} lacks {', '.join(missing)}")
    inserted = bodies.get("procrastinate_notify_queue_job_inserted_v1", "")
    if not all(part in inserted for part in (*CHANNELS, "'type', 'job_inserted'")):
        problems.append("its job_inserted NOTIFY (channels or payload) changed")
    if list(manager.get_channel_for_queues(None)) != [CHANNELS[0]] or list(
        manager.get_channel_for_queues(["q"])
    ) != [CHANNELS[1] + "q"]:
        problems.append("the worker listens on other channels")
    return problems


def _normal(sql_type: str) -> str:
    return " ".join(sql_type.replace("public.", "").split()).lower()


def _upgrade_files() -> list[str]:
    try:
        packaged = procrastinate_schema.packaged()
    except ValueError as exc:
        return [str(exc)]
    known = set(re.findall(r"'([\w.]+\.sql)'", broseph_sql.query("procrastinate_found_migrations")))
    unknown = [
        u.name for u in packaged if u.level >= procrastinate_schema.OLDEST_FOUND
        and u.name not in known
    ]  # fmt: skip
    if unknown:
        return [
            f"it ships upgrade files broseph has not reviewed ({', '.join(unknown)}; add each to"
            " procrastinate_found_migrations in broseph/queries/procrastinate.sql once read)"
        ]
    return []
