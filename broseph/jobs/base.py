"""
What every job type is made of: a payload model, a handler, a retry budget.

Job modules hold no lifecycle code — status, timing, logging and error classification live once,
in `broseph.lifecycle`. A handler receives a `JobRun` (database, progress, services, abort check)
and the validated payload; it raises `PermanentJobError` or lets retryable errors through.
"""

from __future__ import annotations

import datetime
import enum
import types
import typing
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import structlog
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

    from broseph.services import Services


class JobPayload(BaseModel):
    """
    Queue payloads carry IDs only; unknown fields are rejected (invariant 1).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    job_type: ClassVar[str]

    def to_params(self) -> dict[str, Any]:
        """
        The JSON object stored as the record's params (and sent to `broseph.enqueue`).
        """
        return self.model_dump(mode="json", exclude_none=True)


ProgressFn = Callable[[int, str], Awaitable[None]]


@dataclass
class JobRun:
    """
    One attempt of one job, as handlers see it.
    """

    record_id: uuid.UUID
    job_type: str
    attempt: int
    max_attempts: int
    source: str
    params: dict[str, Any]
    services: Services
    log: structlog.stdlib.BoundLogger
    progress: ProgressFn
    should_abort: Callable[[], bool] = field(default=lambda: False)
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def pool(self) -> AsyncConnectionPool[Any]:
        """
        The worker's connection pool (procrastinate's own, shared).
        """
        return self.services.pool

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


Handler = Callable[[JobRun, Any], Awaitable[None]]


@dataclass(frozen=True)
class JobType:
    """
    One entry of the catalogue: name, payload model, handler and retry policy.
    """

    name: str
    payload: type[JobPayload]
    handle: Handler
    queue: str
    max_attempts: int = 5
    # Exponential backoff: base * 2**(attempt-1) seconds, capped.
    backoff_base_seconds: float = 2.0
    backoff_cap_seconds: float = 600.0
    # Outside services the handler uses ("push", "ai"): a worker whose queues hold no job type
    # using one neither checks nor builds it (broseph/services.py).
    uses: frozenset[str] = frozenset()


# --- SQL field spec --------------------------------------------------------------------------
# The SQL face of enqueue validates params against broseph.job_types.fields; this derives the
# same spec from a payload model so a test can prove the two faces agree.


def field_spec(model: type[BaseModel]) -> dict[str, Any]:
    """
    The `broseph.job_types.fields` spec equivalent to a payload model.
    """
    spec: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        entry = _type_spec(info.annotation)
        if not info.is_required():
            entry["required"] = False
        max_length = next(
            (getattr(m, "max_length", None) for m in info.metadata if hasattr(m, "max_length")),
            None,
        )
        if max_length is not None:
            entry["max_length"] = max_length
        spec[name] = entry
    return spec


def _type_spec(annotation: Any) -> dict[str, Any]:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return _type_spec(args[0])
    if typing.get_origin(annotation) is Literal:
        return {"type": "enum", "values": list(typing.get_args(annotation))}
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return {"type": "enum", "values": [m.value for m in annotation]}
        if issubclass(annotation, BaseModel):
            return {"type": "object", "fields": field_spec(annotation)}
        simple = {
            uuid.UUID: "uuid",
            datetime.date: "date",
            str: "text",
            int: "integer",
        }
        if annotation in simple:
            return {"type": simple[annotation]}
    raise TypeError(f"payload field type {annotation!r} has no SQL spec")


PeriodicFn = Callable[["Services", int], Awaitable[Any]]


@dataclass(frozen=True)
class Periodic:
    """
    A periodic task: procrastinate defers it once per cron tick across all workers.
    """

    name: str
    cron: Callable[[Any], str]  # settings → cron expression, so operators can tune it
    run: PeriodicFn
    queue: str = "periodic"
