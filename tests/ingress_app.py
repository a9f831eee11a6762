"""
The ingress the ingress crash tests run in subprocesses:

    DATABASE_URL=… REDIS_URL=… INGRESS_HOLD_SECONDS=60 PYTHONPATH=<repo> python -m tests.ingress_app

It is `broseph ingress bullmq` (the production `BullMQIngress`, settings from the environment,
`serve` until SIGTERM), except that each job is held INGRESS_HOLD_SECONDS between its Postgres
commit and its BullMQ ack, logging `ingress_test_hold` first: the point where the tests kill it.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import structlog

from broseph import logs
from broseph.ingress import mapping, sink
from broseph.ingress.bullmq import BullMQIngress
from broseph.ingress.cli import serve
from broseph.settings import Settings

HOLD_ENV = "INGRESS_HOLD_SECONDS"

log = structlog.get_logger("tests.ingress_app")


class HoldingIngress(BullMQIngress):
    """
    The production ingress, holding each committed job before acknowledging it.
    """

    def __init__(self, settings: Settings, *, hold: float) -> None:
        super().__init__(settings)
        self.hold = hold

    async def acknowledge(
        self, delivery: mapping.Delivery, outcome: sink.Outcome
    ) -> dict[str, Any]:
        log.warning("ingress_test_hold", seconds=self.hold, job_id=delivery.job_id)
        await asyncio.sleep(self.hold)
        return await super().acknowledge(delivery, outcome)


def main() -> None:
    settings = Settings()
    logs.configure(settings.log_format, settings.log_level)
    asyncio.run(serve(HoldingIngress(settings, hold=float(os.environ[HOLD_ENV]))))


if __name__ == "__main__":
    main()
