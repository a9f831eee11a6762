"""
The app the notification crash tests run in worker subprocesses:

    DATABASE_URL=… PYTHONPATH=<repo> procrastinate --app tests.notify_crash_app.app worker

It is the production app (`worker.create_app`, logging owned like `broseph.worker.app`), with the
services the production composition root builds from the environment — FCM through
firebase-admin when FIREBASE_CREDENTIALS_FILE is set — except that the push sender holds on for
PUSH_PAUSE_SECONDS after FCM answered and before the job records the answers, logging
`push_test_pause` first: the point where the crash tests kill the worker. Without
PUSH_PAUSE_SECONDS (or with 0) nothing is wrapped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Iterable, Sequence
from typing import Any

import structlog
from psycopg_pool import AsyncConnectionPool

from broseph import services, worker
from broseph.providers.push import (
    DeviceResult,
    PushItem,
    PushMessage,
    PushSender,
    PushTarget,
)
from broseph.settings import Settings

PAUSE_ENV = "PUSH_PAUSE_SECONDS"

log = structlog.get_logger("tests.notify_crash_app")


class PausingSender:
    """
    The real sender, then a pause: FCM has answered, the job has not stored the answers yet.
    """

    def __init__(self, inner: PushSender, seconds: float) -> None:
        self.inner = inner
        self.seconds = seconds

    async def send(self, message: PushMessage, targets: Sequence[PushTarget]) -> list[DeviceResult]:
        results = await self.inner.send(message, targets)
        log.warning("push_test_pause", seconds=self.seconds, kind=message.kind)
        await asyncio.sleep(self.seconds)
        return results

    async def send_each(self, items: Sequence[PushItem]) -> list[DeviceResult]:
        results = await self.inner.send_each(items)
        log.warning("push_test_pause", seconds=self.seconds, kind=items[0].message.kind)
        await asyncio.sleep(self.seconds)
        return results

    async def aclose(self) -> None:
        await self.inner.aclose()


def build(
    settings: Settings, pool: AsyncConnectionPool[Any], *, uses: Iterable[str]
) -> services.Services:
    built = services.build(settings, pool, uses=uses)
    seconds = float(os.environ.get(PAUSE_ENV) or 0)
    if not seconds:
        return built
    return dataclasses.replace(built, push=PausingSender(built.push, seconds))


app = worker.create_app(owns_logging=True)
services.provide(app, build)
