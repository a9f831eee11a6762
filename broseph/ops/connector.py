"""
procrastinate's psycopg connector, made to ride out a database restart or killed backends.

Stock procrastinate 3.10 stops its worker when the LISTEN connection cannot reconnect at once
(upstream issue #1597) and fails any query that meets a dead connection. Here:

- every worker query that fails because the connection was lost (server restarting, backend
  terminated, pool timed out waiting for a connection) is retried with backoff until the
  database is back, for at most `outage_timeout` seconds; after that the error surfaces, the
  worker exits non-zero and its supervisor restarts it (the rescue task frees its jobs);
- LISTEN is re-established after every loss, and the worker is woken once afterwards so jobs
  deferred while it was deaf are fetched at once instead of at the next poll.

Queries run on a caller's connection (`…_with_connection`) are never retried: the caller owns
that transaction.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, LiteralString, TypeVar

import procrastinate
import psycopg
import psycopg_pool
import structlog
from procrastinate import connector, exceptions, sql

logger = structlog.get_logger("broseph.ops")

T = TypeVar("T")

# SQLSTATEs meaning "this connection is gone", as opposed to an error of the statement itself:
# class 08 (connection exception) and the shutdown / starting-up states of class 57.
_LOST_STATES = ("57P01", "57P02", "57P03")
# A retried finish/retry whose first try committed before the connection died finds the job
# no longer in `doing`: the outcome is recorded, so that error means "already done".
_ALREADY_APPLIED = "Job was not found or "
_OUTCOME_QUERIES = frozenset({sql.queries["finish_job"], sql.queries["retry_job"]})
# Never repeated: a defer whose commit outcome is unknown could add the job twice (broseph's own
# producers use broseph.enqueue with idempotency keys instead; periodic defers are unique).
_NOT_REPEATABLE = frozenset({sql.queries["defer_jobs"]})
# What the worker is told after LISTEN comes back: "there may be new jobs" (a fetch follows).
WAKE_UP = json.dumps({"type": "job_inserted", "job_id": None})


def connection_lost(exc: BaseException) -> bool:
    """
    Whether an error (procrastinate's wrapper or psycopg's own) means the connection was lost.
    """
    cause = exc.__cause__ if isinstance(exc, exceptions.ConnectorException) else exc
    if isinstance(cause, psycopg_pool.PoolClosed):
        return False  # we are shutting down, not the database
    if isinstance(cause, psycopg_pool.PoolTimeout):
        return True
    if not isinstance(cause, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    state = cause.sqlstate
    return state is None or state.startswith("08") or state in _LOST_STATES


class DatabaseUnavailable(RuntimeError):
    """
    The database stayed away longer than DB_OUTAGE_TIMEOUT: the worker exits non-zero.
    """


class ResilientConnector(procrastinate.PsycopgConnector):
    """
    A PsycopgConnector that waits for the database instead of failing the worker.
    """

    def __init__(self, *, outage_timeout: float, **kwargs: Any) -> None:
        # One wait for a pooled connection must not outlast the outage budget (psycopg_pool
        # waits 30 s by default); handlers sharing the pool then fail and retry sooner too.
        kwargs.setdefault("timeout", min(outage_timeout, 30.0))
        super().__init__(**kwargs)
        self.outage_timeout = outage_timeout
        # Set when a query gave up: procrastinate may then stop the worker "normally" (a failed
        # side task), and WorkerApp turns that into a non-zero exit for the supervisor.
        self.gave_up = False
        # Whether LISTEN is established right now (read by the worker's /readyz).
        self.listening = False

    async def execute_query_async(self, query: LiteralString, **arguments: Any) -> None:
        parent = super().execute_query_async
        await self._patiently(query, lambda: parent(query, **arguments))

    async def execute_query_one_async(
        self, query: LiteralString, **arguments: Any
    ) -> dict[str, Any]:
        parent = super().execute_query_one_async
        return await self._patiently(query, lambda: parent(query, **arguments))

    async def execute_query_all_async(
        self, query: LiteralString, **arguments: Any
    ) -> list[dict[str, Any]]:
        parent = super().execute_query_all_async
        return await self._patiently(query, lambda: parent(query, **arguments))

    async def _patiently(self, query: str, call: Callable[[], Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.outage_timeout
        delay, lost_since = 0.05, None
        while True:
            try:
                result = await call()
            except exceptions.ConnectorException as exc:
                if lost_since is not None and query in _OUTCOME_QUERIES and _applied(exc):
                    logger.info("job_outcome_already_recorded", after_seconds=_since(lost_since))
                    return None  # type: ignore[return-value]  # both queries return nothing
                if not connection_lost(exc) or query in _NOT_REPEATABLE:
                    raise
                if loop.time() >= deadline:
                    self.gave_up = True
                    logger.error("database_unavailable_gave_up", seconds=self.outage_timeout)
                    raise
                if lost_since is None:
                    lost_since = loop.time()
                    logger.warning("database_unavailable", error=str(exc.__cause__)[:300])
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            if lost_since is not None:
                logger.info("database_available", after_seconds=_since(lost_since))
            return result

    async def listen_notify(
        self, on_notification: connector.Notify, channels: Iterable[str]
    ) -> None:
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
                        logger.info("listen_restored", after_seconds=_since(lost_since))
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


def _applied(exc: exceptions.ConnectorException) -> bool:
    return _ALREADY_APPLIED in str(exc.__cause__ or "")


def _since(started: float) -> float:
    return round(asyncio.get_running_loop().time() - started, 2)
