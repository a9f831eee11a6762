"""
Riding out a database restart or killed backends: when an error means "the connection is gone",
and the patient retry the worker's connector (broseph/engine.py) wraps its queries in.

Stock procrastinate 3.10 stops its worker when the LISTEN connection cannot reconnect at once
(upstream issue #1597) and fails any query that meets a dead connection. The worker's connector:

- retries every worker query that fails because the connection was lost (server restarting,
  backend terminated, pool timed out waiting for a connection) with backoff until the database
  is back, for at most `outage_timeout` seconds; after that the error surfaces, the worker exits
  non-zero and its supervisor restarts it (the rescue task frees its jobs);
- re-establishes LISTEN after every loss, and wakes the worker once afterwards so jobs deferred
  while it was deaf are fetched at once instead of at the next poll.

Queries run on a caller's connection (`…_with_connection`) are never retried: the caller owns
that transaction. This module knows psycopg and procrastinate's public exception type only;
what is retried and how is decided in broseph/engine.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg
import psycopg_pool
import structlog
from procrastinate import exceptions

logger = structlog.get_logger("broseph.ops")

T = TypeVar("T")

# SQLSTATEs meaning "this connection is gone", as opposed to an error of the statement itself:
# class 08 (connection exception) and the shutdown / starting-up states of class 57.
_LOST_STATES = ("57P01", "57P02", "57P03")


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


class Patience:
    """
    Retry a query while the database is away, for at most `outage_timeout` seconds in a row.
    """

    def __init__(self, outage_timeout: float) -> None:
        self.outage_timeout = outage_timeout
        # Set when a query gave up: procrastinate may then stop the worker "normally" (a failed
        # side task), and WorkerApp turns that into a non-zero exit for the supervisor.
        self.gave_up = False

    async def run(
        self,
        call: Callable[[], Awaitable[T]],
        *,
        repeatable: bool = True,
        settled: Callable[[exceptions.ConnectorException], bool] | None = None,
    ) -> T | None:
        """
        `call()`, again after each lost connection while the budget lasts. `repeatable=False`:
        never again (the first try may have committed). `settled(exc)`: after a loss, this error
        means the first try did commit — the result is then None.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.outage_timeout
        delay, lost_since = 0.05, None
        while True:
            try:
                result = await call()
            except exceptions.ConnectorException as exc:
                if lost_since is not None and settled is not None and settled(exc):
                    logger.info("job_outcome_already_recorded", after_seconds=since(lost_since))
                    return None
                if not connection_lost(exc) or not repeatable:
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
                logger.info("database_available", after_seconds=since(lost_since))
            return result


def since(started: float) -> float:
    return round(asyncio.get_running_loop().time() - started, 2)
