"""
Pluggable ingress: outside queues whose jobs are moved into the Postgres queue, exactly once.

An ingress takes a job from its source, turns it into a job record through the transactional
contract (`broseph.enqueue`, with an idempotency key and a receipt from the source's job id),
commits, and only then acknowledges it at the source. Bad input is quarantined with a reason.

BullMQ is the first source (`broseph.ingress.bullmq`, extra `broseph[bullmq]`); nothing in this
package's `__init__` imports Redis or bullmq, so the core runs without them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class IngressHealth:
    """
    What an ingress reports about itself (for logs, probes and tests).
    """

    source: str
    # True once connected to the source and consuming; False while (re)connecting or stopped.
    consuming: bool
    queues: tuple[str, ...]
    in_flight: int
    # Jobs handled since start, by outcome (enqueued, duplicate, quarantined, error).
    outcomes: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.consuming


@runtime_checkable
class Ingress(Protocol):
    """
    A source of outside jobs. `start` returns at once (connecting happens in the background and
    is retried until the source is up); `stop` finishes in-flight jobs, then closes.
    """

    source: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def health(self) -> IngressHealth: ...
