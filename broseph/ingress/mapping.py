"""
How an outside (BullMQ) job becomes a Postgres job: job name → job type, camelCase fields →
payload fields, producer options → run_at / priority / retry policy.

Pure functions — no Redis, no database — so the rules are the same for the live ingress and for
`quarantine replay`, and can be tested exhaustively. The payload is validated by the job type's
own model from the catalogue (`broseph.jobs.get`), the same model every other producer goes
through; anything it refuses is `Rejected` with a reason and quarantined by the caller.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broseph.settings import Settings

if TYPE_CHECKING:
    from broseph.jobs.base import JobPayload


class Route(BaseModel):
    """
    Where one outside job name goes: a job type, and renames of its data's fields.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_type: str = Field(min_length=1)
    # Outside field name → payload field name; fields not listed keep their name. "parent.key"
    # renames a key inside the object field `parent` ("data.groupId": "group_id").
    fields: dict[str, str] = Field(default_factory=dict)


# The NestJS API's job names (BROSEPH_JOBS) and payloads (GeneratePromptPayload,
# SendNotificationPayload, …). INGRESS_JOB_MAP adds to or overrides this table.
DEFAULT_ROUTES: dict[str, Route] = {
    "GeneratePrompt": Route(
        job_type="GeneratePrompt", fields={"groupId": "group_id", "localDate": "local_date"}
    ),
    "SendNotification": Route(
        job_type="SendNotification",
        fields={
            "userId": "user_id",
            "data.groupId": "group_id",
            "data.messageId": "message_id",
            "data.promptId": "prompt_id",
            "data.friendId": "friend_id",
        },
    ),
    "ProcessEngagement": Route(
        job_type="ProcessEngagement", fields={"groupId": "group_id", "localDate": "local_date"}
    ),
}


class InvalidMapping(ValueError):
    """
    INGRESS_JOB_MAP cannot be read: the ingress refuses to start rather than misroute jobs.
    """


def routes_from(settings: Settings) -> dict[str, Route]:
    """
    The built-in table with INGRESS_JOB_MAP merged over it.
    """
    routes = dict(DEFAULT_ROUTES)
    for name, entry in settings.ingress_job_map.items():
        try:
            routes[name] = Route.model_validate(entry)
        except ValidationError as exc:
            raise InvalidMapping(f"INGRESS_JOB_MAP[{name!r}]: {_errors(exc, {})}") from None
    return routes


@dataclass(frozen=True)
class Delivery:
    """
    One job as taken from an outside queue, before any interpretation.
    """

    source: str
    queue: str
    job_id: str
    name: str
    data: Any
    options: Mapping[str, Any]
    timestamp_ms: int

    @property
    def key(self) -> str:
        """
        The idempotency key. Numeric job ids are BullMQ's auto-generated ones, which restart at
        1 after Redis loses its data, so the creation timestamp is part of their key; a
        producer-chosen id (Node refuses integer custom ids) is the producer's own dedup key.
        """
        key = f"{self.source}:{self.queue}:{self.job_id}"
        return f"{key}:{self.timestamp_ms}" if self.job_id.isdigit() else key

    @property
    def produced_at(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.timestamp_ms / 1000, datetime.UTC)

    def raw(self) -> str:
        """
        The job as JSON text, lossless (\\u0000 and lone surrogates survive as escapes).
        """
        return json.dumps(
            {
                "name": self.name,
                "data": self.data,
                "options": dict(self.options),
                "timestamp": self.timestamp_ms,
            },
            ensure_ascii=True,
        )

    @classmethod
    def from_raw(cls, *, source: str, queue: str, job_id: str, raw: str) -> Delivery:
        doc = json.loads(raw)
        return cls(
            source=source,
            queue=queue,
            job_id=job_id,
            name=doc["name"],
            data=doc["data"],
            options=doc.get("options") or {},
            timestamp_ms=int(doc["timestamp"]),
        )


class Rejected(Exception):
    """
    The job can never become a job as it stands; `reason` says why (quarantine it).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Plan:
    """
    Everything `broseph.enqueue` needs for one delivery.
    """

    delivery: Delivery
    payload: JobPayload
    run_at: datetime.datetime | None
    priority: int
    retry: dict[str, Any] | None
    # The W3C trace context of the delivery's ingress span (broseph/tracing.py), stored with the
    # record so the job's attempts continue the producer's trace; None without tracing.
    traceparent: str | None = None
    tracestate: str | None = None


class _Backoff(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str = "fixed"
    delay: int = Field(default=0, ge=0)


class _Options(BaseModel):
    """
    The BullMQ JobsOptions the ingress honours; the rest are recorded, not interpreted.
    """

    model_config = ConfigDict(extra="ignore")
    attempts: int = Field(default=0, ge=0)
    backoff: _Backoff | int | None = None
    delay: int = Field(default=0, ge=0)
    priority: int = Field(default=0, ge=0)


def plan(delivery: Delivery, routes: Mapping[str, Route], *, max_payload_bytes: int) -> Plan:
    """
    Validate one delivery and say how to enqueue it; raises `Rejected` with the reason.
    """
    size = payload_size(delivery.data)
    if size > max_payload_bytes:
        raise Rejected(f"payload is {size} bytes, over the {max_payload_bytes}-byte limit")
    route = routes.get(delivery.name)
    if route is None:
        raise Rejected(
            f"unknown job name {delivery.name!r} (mapped: {', '.join(sorted(routes))}); "
            "map it in INGRESS_JOB_MAP"
        )
    # Imported here: the catalogue pulls in every job type's SDKs, which `quarantine list` and
    # `broseph --help` do not need.
    from broseph import jobs

    try:
        job_type = jobs.get(route.job_type)
    except jobs.UnknownJobType as exc:
        raise Rejected(
            f"job name {delivery.name!r} maps to job type {route.job_type!r}: {exc}"
        ) from None
    if not isinstance(delivery.data, dict):
        kind = _json_kind(delivery.data)
        raise Rejected(f"{delivery.name}: data must be a JSON object, got {kind}")
    params = _rename(delivery.name, delivery.data, route.fields)
    origin = outside_paths(route)
    try:
        payload = job_type.payload.model_validate(params)
    except ValidationError as exc:
        raise Rejected(f"{delivery.name}: {_errors(exc, origin)}") from None
    options = _options(delivery)
    return Plan(
        delivery=delivery,
        payload=payload,
        run_at=_run_at(delivery, options),
        # BullMQ: 1 is the highest priority and jobs without one go first; procrastinate runs
        # higher numbers first. Negating keeps BullMQ's order exactly.
        priority=-options.priority,
        retry=retry_policy(options),
    )


def payload_size(data: Any) -> int:
    """
    Bytes of the data as compact UTF-8 JSON (what the producer stored in Redis).
    """
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return len(text.encode("utf-8", "surrogatepass"))


def retry_policy(options: _Options) -> dict[str, Any] | None:
    """
    The producer's `attempts` / `backoff` as the SQL contract's `retry` argument (None: the job
    type's own budget). BullMQ's exponential backoff is delay * 2^(attempt-1), as ours is.
    """
    if options.attempts <= 0:
        return None
    policy: dict[str, Any] = {"max_attempts": options.attempts}
    backoff = options.backoff
    if isinstance(backoff, int):
        backoff = _Backoff(type="fixed", delay=backoff)
    if backoff is not None:
        policy["backoff_seconds"] = backoff.delay / 1000
        # Custom strategies live in the producer's code; exponential is the closest we have.
        policy["backoff_type"] = "fixed" if backoff.type == "fixed" else "exponential"
    return policy


def backoff_type(options: Mapping[str, Any]) -> str | None:
    """
    The producer's backoff strategy name (None: no backoff); a number means BullMQ's "fixed".
    """
    backoff = options.get("backoff")
    if isinstance(backoff, dict):
        return str(backoff.get("type", "fixed"))
    return "fixed" if isinstance(backoff, int | float) and backoff is not True else None


def _options(delivery: Delivery) -> _Options:
    try:
        return _Options.model_validate(dict(delivery.options))
    except ValidationError as exc:
        raise Rejected(f"{delivery.name}: producer options: {_errors(exc, {})}") from None


def _run_at(delivery: Delivery, options: _Options) -> datetime.datetime | None:
    # BullMQ only hands a delayed job over when it is due; the run_at makes "not before" hold in
    # Postgres too (a clock-skewed or early redelivery still waits).
    if options.delay <= 0:
        return None
    return delivery.produced_at + datetime.timedelta(milliseconds=options.delay)


def outside_paths(route: Route) -> dict[str, str]:
    """
    Payload field path → the producer's name for it, for every renamed field
    ({"data.group_id": "data.groupId", "user_id": "userId"}).
    """
    top = {k: v for k, v in route.fields.items() if "." not in k}
    paths = {target: outside for outside, target in top.items()}
    for outside, target in route.fields.items():
        if "." in outside:
            parent = outside.split(".", 1)[0]
            paths[f"{top.get(parent, parent)}.{target}"] = outside
    return paths


def _rename(name: str, data: Mapping[str, Any], renames: Mapping[str, str]) -> dict[str, Any]:
    # "a.b": "c" renames key b of the object under a (one level of nesting: the NestJS payloads'
    # `data` object); plain keys rename top-level fields.
    nested: dict[str, dict[str, str]] = {}
    for outside, target in renames.items():
        if "." in outside:
            parent, child = outside.split(".", 1)
            nested.setdefault(parent, {})[child] = target
    params: dict[str, Any] = {}
    given: dict[str, str] = {}  # payload field → the outside name it came from
    for key, value in data.items():
        target = renames.get(key, key)
        if target in params:
            raise Rejected(f"{name}: fields {given[target]!r} and {key!r} both give {target!r}")
        if key in nested and isinstance(value, dict):
            value = _rename(f"{name}: {key}", value, nested[key])
        params[target] = value
        given[target] = key
    return params


def _errors(exc: ValidationError, origin: Mapping[str, str]) -> str:
    # Locations and messages only: the offending values may be private (notification data).
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        if not error["loc"] and error["type"] == "value_error":
            # A per-type rule of the whole payload (JobPayload.requires): 'type "new_message"
            # needs data.group_id' — the fields it needs shown as the producer names them.
            rule = str(error["msg"]).removeprefix("Value error, ")
            parts.append(_NEEDS.sub(lambda m: _shown(m[0], origin), rule))
            continue
        loc = ".".join(str(part) for part in error["loc"]) or "payload"
        parts.append(f"{_shown(loc, origin)}: {error['msg']}")
    return "; ".join(parts)


# The paths after "needs" in a JobPayload.requires message.
_NEEDS = re.compile(r"(?<=needs )[\w.]+|(?<=, )[\w.]+")


def _shown(loc: str, origin: Mapping[str, str]) -> str:
    """
    A payload path as the producer names it, with the payload's name after it when they differ:
    "data.groupId (data.group_id)".
    """
    head = loc.split(".", 1)[0]
    outside = origin.get(loc) or loc.replace(head, origin.get(head, head), 1)
    return f"{outside} ({loc})" if outside != loc else loc


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return type(value).__name__
