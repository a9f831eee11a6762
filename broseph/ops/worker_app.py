"""
The App class of `broseph.worker.app`: procrastinate's App, plus what a running worker serves
beside its jobs (the Prometheus endpoint and its sampler) — however the worker is started:
`broseph worker`, `procrastinate --app broseph.worker.app worker`, or `app.run_worker_async()`.
"""

from __future__ import annotations

from typing import Any

import procrastinate

from broseph import services
from broseph.ops import metrics_server
from broseph.ops.connector import DatabaseUnavailable
from broseph.settings import Settings


class WorkerApp(procrastinate.App):
    """
    A procrastinate App that knows its settings.
    """

    def __init__(self, *, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings

    async def run_worker_async(self, **kwargs: Any) -> None:
        port = self.settings.metrics_port
        if port is None:
            await super().run_worker_async(**kwargs)
        else:
            async with metrics_server.serving(
                services.pool_of(self),
                port=port,
                addr=self.settings.metrics_addr,
                sample_seconds=self.settings.metrics_sample_seconds,
            ):
                await super().run_worker_async(**kwargs)
        if getattr(self.connector, "gave_up", False):
            # procrastinate stops "cleanly" when a side task (heartbeat, LISTEN) fails; after a
            # long outage that must read as a failure, so the supervisor restarts the worker.
            raise DatabaseUnavailable(
                f"the database was unavailable for more than {self.settings.db_outage_timeout:g}"
                " s (DB_OUTAGE_TIMEOUT); exiting so the supervisor restarts this worker"
            )
