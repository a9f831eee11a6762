"""
What every job type is made of: a payload model, a handler, a retry budget.

Job modules hold no lifecycle code — status, timing, logging and error classification live once,
in `broseph.lifecycle`. A handler receives a `JobRun` (database, progress, services, abort check)
and the validated payload; it raises `PermanentJobError` or lets retryable errors through.
"""

from __future__ import annotations

import datetime
import enum
import re
import types
import typing
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Self

import structlog
from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

    from broseph.services import Services


# --- ids and days as both faces of enqueue accept them ------------------------------------------
# pydantic alone would also take '{…}', 32 bare hex digits or 'urn:uuid:…' for a UUID and a unix
# time or '2026-03-01T00:00:00' for a date, which the SQL face (migrations/0015,
# broseph.checked_params) refuses. Payload fields use these types so both accept exactly the same
# text; tests/test_contract_agreement.py checks it.
_UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _uuid_text(value: Any) -> Any:
    if isinstance(value, uuid.UUID) or (isinstance(value, str) and _UUID_TEXT.fullmatch(value)):
        return value
    # pydantic's own error type and wording, made precise about the form.
    raise PydanticCustomError(
        "uuid_parsing", "Input should be a valid UUID (8-4-4-4-12 hexadecimal digits)"
    )


def _date_text(value: Any) -> Any:
    is_date = isinstance(value, datetime.date) and not isinstance(value, datetime.datetime)
    if is_date or (isinstance(value, str) and _DATE_TEXT.fullmatch(value)):
        return value
    raise PydanticCustomError("date_parsing", "Input should be a valid date (YYYY-MM-DD)")


Id = Annotated[uuid.UUID, BeforeValidator(_uuid_text)]
# {enum field: {value: (paths that must be present)}} — see JobPayload.requires.
Requires = Mapping[str, Mapping[str, tuple[str, ...]]]
# The rules by which the SQL face fills in an absent optional field (migrations/0021,
# broseph.with_defaults) — see JobPayload.defaults.
DEFAULT_RULES = frozenset({"group_local_date"})
Day = Annotated[datetime.date, BeforeValidator(_date_text)]


class JobPayload(BaseModel):
    """
    Queue payloads carry IDs only (handlers re-read the database); unknown fields are rejected.

    `requires` holds the per-type rules: {enum field: {value: (paths that must be present)}},
    paths relative to the payload ("data.prompt_id"). It is enforced here and, through the field
    spec (`field_spec`), by the SQL face — one definition for both.

    `defaults` names optional top-level fields that enqueue fills in when a producer leaves them
    out, {field: rule} with a rule of `DEFAULT_RULES`. The rule itself exists once, in SQL
    (broseph.with_defaults, migrations/0021): the model accepts the field's absence, the stored
    params carry the value enqueue chose.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    job_type: ClassVar[str]
    requires: ClassVar[Requires] = {}
    defaults: ClassVar[Mapping[str, str]] = {}

    def to_params(self) -> dict[str, Any]:
        """
        The JSON object stored as the record's params (and sent to `broseph.enqueue`).
        """
        return self.model_dump(mode="json", exclude_none=True)

    @model_validator(mode="after")
    def _required_by_value(self) -> Self:
        for name, cases in self.requires.items():
            value = getattr(self, name)
            value = value.value if isinstance(value, enum.Enum) else value
            missing = [path for path in cases.get(value, ()) if _at(self, path) is None]
            if missing:
                raise ValueError(f'{name} "{value}" needs {", ".join(missing)}')
        return self


def _at(model: BaseModel, path: str) -> Any:
    value: Any = model
    for part in path.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value


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

    payload: type[JobPayload]
    handle: Handler
    queue: str
    # The payload's `job_type` unless given (test apps register one payload under other names).
    name: str = ""
    max_attempts: int = 5
    # Exponential backoff: base * 2**(attempt-1) seconds, capped.
    backoff_base_seconds: float = 2.0
    backoff_cap_seconds: float = 600.0
    # Outside services the handler uses ("push", "ai"): a worker whose queues hold no job type
    # using one neither checks nor builds it (broseph/services.py).
    uses: frozenset[str] = frozenset()
    # What only the SQL face acts on; `broseph migrate` writes them, with the rest of the type,
    # into its broseph.job_types row (broseph/jobs/registry.py) — no hand-written SQL copy.
    description: str = ""
    # A job enqueued while one with equal values of these fields is pending is absorbed by it
    # (migrations/0004); the triggers delay such jobs by `coalesce_delay` so a burst lands in one.
    coalesce_fields: tuple[str, ...] | None = None
    coalesce_delay: datetime.timedelta | None = None
    # Jobs with equal values of these fields never run at once (procrastinate's lock).
    lock_fields: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.payload.job_type)  # frozen: set once, here


# --- SQL field spec --------------------------------------------------------------------------
# The SQL face of enqueue validates params against broseph.job_types.fields; this derives the
# same spec from a payload model so a test can prove the two faces agree.


def field_spec(model: type[BaseModel]) -> dict[str, Any]:
    """
    The `broseph.job_types.fields` spec equivalent to a payload model (its `requires` included).
    """
    spec: dict[str, Any] = {}
    requires: Requires = getattr(model, "requires", {})
    defaults: Mapping[str, str] = getattr(model, "defaults", {})
    unknown = sorted(set(defaults) - set(model.model_fields))
    if unknown:
        raise TypeError(f"{model.__name__}.defaults names no field: {', '.join(unknown)}")
    for name, info in model.model_fields.items():
        entry = _type_spec(info.annotation)
        if name in requires:
            entry["requires"] = {value: list(paths) for value, paths in requires[name].items()}
        if not info.is_required():
            entry["required"] = False
        if name in defaults:
            # group_local_date reads the group named by the payload's own group_id.
            if (
                info.is_required()
                or defaults[name] not in DEFAULT_RULES
                or "group_id" not in model.model_fields
            ):
                raise TypeError(
                    f"{model.__name__}.{name}: a default needs an optional field, a group_id "
                    f"field and a rule of {sorted(DEFAULT_RULES)}, got {defaults[name]!r}"
                )
            entry["default"] = defaults[name]
        max_length = next(
            (getattr(m, "max_length", None) for m in info.metadata if hasattr(m, "max_length")),
            None,
        )
        if max_length is not None:
            entry["max_length"] = max_length
        spec[name] = entry
    return spec


def _type_spec(annotation: Any) -> dict[str, Any]:
    if typing.get_origin(annotation) is Annotated:
        return _type_spec(typing.get_args(annotation)[0])
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
    A periodic task: procrastinate defers it once per cron tick across all workers, and it runs
    through the same lifecycle as a job (`broseph.lifecycle.register_periodic`).
    """

    name: str
    cron: Callable[[Any], str]  # settings → cron expression, so operators can tune it
    run: PeriodicFn
    queue: str = "periodic"
    # procrastinate fetches by priority, highest first (the rescue tick jumps the queue).
    priority: int = 0
    # With SENTRY_DSN, a Sentry cron monitor on the same schedule (a missed tick alerts). The
    # operations ticks run every few seconds and have no schedule worth alerting on.
    monitored: bool = True
