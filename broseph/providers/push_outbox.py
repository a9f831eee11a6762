"""
The development push sender: without Firebase credentials, deliveries go to an outbox table.

Every target "succeeds" (ids and the `push.dev_sent` log line come from `LoggingPushSender`) and
one row per device lands in `broseph.push_outbox` (migrations/0007) — what `broseph demo` shows.
Like FCM, the outbox commits on its own, outside the caller's transaction: a crash after it and
before the delivery rows are recorded is a possible duplicate, exactly as with FCM.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from broseph import sql
from broseph.providers.push import (
    DeviceResult,
    LoggingPushSender,
    PushItem,
    PushMessage,
    PushTarget,
)


class OutboxPushSender:
    """
    A `PushSender` that records every delivery in `broseph.push_outbox` and logs counts only.
    """

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool
        self._log_sender = LoggingPushSender()

    async def send(self, message: PushMessage, targets: Sequence[PushTarget]) -> list[DeviceResult]:
        """
        Deliver to the outbox: one row per target, then one result per target, in order.
        """
        return await self.send_each([PushItem(message, t) for t in targets])

    async def send_each(self, items: Sequence[PushItem]) -> list[DeviceResult]:
        """
        Deliver every item to the outbox in one statement; one result per item, in order.
        """
        results = await self._log_sender.send_each(items)
        if not items:
            return results
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(
                sql.query("outbox_add"),
                {
                    "notification_types": [i.message.kind for i in items],
                    "titles": [i.message.title for i in items],
                    "bodies": [i.message.body for i in items],
                    "datas": [Jsonb(i.message.data) for i in items],
                    "collapse_keys": [i.message.collapse_key for i in items],
                    "device_ids": [i.target.device_id for i in items],
                    "target_kinds": [i.target.kind for i in items],
                    "message_ids": [r.message_id for r in results],
                },
            )
        return results

    async def aclose(self) -> None:
        """
        Nothing to release: the pool belongs to the app.
        """
