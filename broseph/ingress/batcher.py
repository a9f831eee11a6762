"""
Micro-batching of the ingress's Postgres writes: the deliveries that concurrent processors have
ready at the same moment go into ONE statement — one round trip and one commit (WAL flush) for
the lot instead of one each.

Exactly-once is unchanged: every caller gets its outcome only after the statement that holds its
record and receipt has committed, and only then does its processor return (BullMQ's ack). When
Postgres refuses a batch's content, the batch is retried one by one so one bad delivery cannot
fail the others; any other error (an outage) is every caller's error.
"""

from __future__ import annotations

import asyncio
from typing import Any

from psycopg_pool import AsyncConnectionPool

from broseph.ingress import sink
from broseph.ingress.mapping import Plan

_Waiting = tuple[Plan, "asyncio.Future[sink.Outcome]"]


class Batcher:
    """
    `ingest(plan)` for many concurrent callers; one drain task writes what is waiting.
    """

    def __init__(self, pool: AsyncConnectionPool[Any], *, max_batch: int) -> None:
        self.pool = pool
        self.max_batch = max_batch
        self._waiting: list[_Waiting] = []
        self._drain_task: asyncio.Task[None] | None = None

    async def ingest(self, plan: Plan) -> sink.Outcome:
        future: asyncio.Future[sink.Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((plan, future))
        if self._drain_task is None or self._drain_task.done():
            self._drain_task = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        # One loop turn first: processors woken together join the same batch.
        await asyncio.sleep(0)
        while self._waiting:
            batch = self._waiting[: self.max_batch]
            del self._waiting[: len(batch)]
            await self._write(batch)

    async def _write(self, batch: list[_Waiting]) -> None:
        live = [(plan, future) for plan, future in batch if not future.done()]
        if not live:
            return
        try:
            async with self.pool.connection() as conn:
                outcomes = await sink.ingest_many(conn, [plan for plan, _ in live])
        except sink.Refused as exc:
            if len(live) == 1:
                _settle(live[0][1], exc)
                return
            for item in live:  # find the one Postgres refuses; the others go through
                await self._write([item])
            return
        except Exception as exc:
            for _, future in live:
                _settle(future, exc)
            return
        for (_, future), outcome in zip(live, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)


def _settle(future: asyncio.Future[sink.Outcome], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
