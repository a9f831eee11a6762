"""
The Python face of transactional enqueue.

Both functions run on the CALLER's psycopg connection and never commit: the job record and the
procrastinate job become visible when the caller commits, together with its own rows, and vanish
if it rolls back. They call the same SQL contract as every other producer (migrations/0004,
0010, 0015).

With tracing on (broseph/tracing.py) each call is an `enqueue <JobType>` span (PRODUCER) whose
context is stored with the job record(s) (migrations/0024): every attempt of the job runs as
its child, in the caller's trace.

Arguments are checked by the SQL contract, where every limit is defined once
(`broseph.enqueue_limits()`); its refusals (SQLSTATE 22023, the argument in the error's column
field) come back as `EnqueueError`, carrying the same argument name. Only what Postgres cannot
even receive is refused here, under the same names: text with NUL characters or lone surrogates,
an integer beyond 32 bits, a retry policy that is not JSON.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from opentelemetry.trace import SpanKind
from psycopg.types.json import Jsonb

from broseph import sql, tracing

if TYPE_CHECKING:
    # Only the type: the job modules import this module to enqueue follow-ups, and a producer
    # importing it loads no job module (nor, through them, any outside service's SDK).
    from broseph.jobs.base import JobPayload

# Large fan-outs are sent in slices so one statement's arrays stay a few MB at most.
CHUNK_SIZE = 5000
_INT32 = range(-(2**31), 2**31)
_INDEXED = re.compile(r"^(params|idempotency_keys)\[(\d+)\]")


class EnqueueError(ValueError):
    """
    An argument of enqueue was refused. `argument` names it as the SQL contract does: `priority`,
    `run_at`, `retry.max_attempts`, `params.data.prompt_id`, `idempotency_keys[3]` (1-based) …
    """

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(message)
        self.argument = argument


async def enqueue(
    conn: psycopg.AsyncConnection[Any],
    payload: JobPayload,
    *,
    idempotency_key: str | None = None,
    run_at: datetime.datetime | None = None,
    priority: int = 0,
    source: str = "api",
    retry: Mapping[str, Any] | None = None,
) -> uuid.UUID:
    """
    Enqueue one job in the caller's transaction; return its record id (the existing one for a
    repeated idempotency key or a coalesced pending job).
    """
    arguments = {
        "job_type": payload.job_type,
        "params": Jsonb(payload.to_params()),
        "idempotency_key": _text("idempotency_key", idempotency_key),
        **_scalars(run_at, priority, source, retry),
    }
    with _span(payload.job_type, source, 1) as span:
        traceparent, tracestate = tracing.current_context()
        with _refusals():
            record_id = await sql.value(
                conn, "enqueue", {**arguments, "traceparent": traceparent, "tracestate": tracestate}
            )
        tracing.set_attributes(span, {"broseph.record_id": str(record_id)})
    return uuid.UUID(str(record_id))


async def enqueue_many(
    conn: psycopg.AsyncConnection[Any],
    payloads: Sequence[JobPayload],
    *,
    idempotency_keys: Sequence[str | None] | None = None,
    run_at: datetime.datetime | None = None,
    priority: int = 0,
    source: str = "api",
    retry: Mapping[str, Any] | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> list[uuid.UUID]:
    """
    Enqueue many jobs of ONE type in the caller's transaction (fan-out); record ids in order.
    """
    if not payloads:
        return []
    job_type = payloads[0].job_type
    if any(p.job_type != job_type for p in payloads):
        raise EnqueueError("params", "enqueue_many takes payloads of one job type per call")
    if idempotency_keys is not None and len(idempotency_keys) != len(payloads):
        raise EnqueueError(
            "idempotency_keys",
            f"{len(idempotency_keys)} idempotency keys for {len(payloads)} payloads"
            " (one per payload, None for none)",
        )
    keys = (
        [_text(f"idempotency_keys[{i}]", k) for i, k in enumerate(idempotency_keys, 1)]
        if idempotency_keys is not None
        else None
    )
    scalars = _scalars(run_at, priority, source, retry)
    ids: list[uuid.UUID] = []
    with _span(job_type, source, len(payloads)):
        traceparent, tracestate = tracing.current_context()
        for start in range(0, len(payloads), chunk_size):
            chunk = payloads[start : start + chunk_size]
            arguments = {
                "job_type": job_type,
                "params": [Jsonb(p.to_params()) for p in chunk],
                "idempotency_keys": keys[start : start + chunk_size] if keys is not None else None,
                **scalars,
                "traceparent": traceparent,
                "tracestate": tracestate,
            }
            with _refusals(offset=start):
                record_ids = await sql.value(conn, "enqueue_many", arguments)
            ids.extend(uuid.UUID(str(v)) for v in record_ids)
    return ids


def _span(job_type: str, source: str, count: int) -> contextlib.AbstractContextManager[Any]:
    # The producer span of one call (a no-op when tracing is off); its context is stored with
    # the record(s), so every attempt of the job continues this trace.
    return tracing.span(
        f"enqueue {job_type}",
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "broseph",
            "messaging.operation.type": "send",
            "broseph.job_type": job_type,
            "broseph.source": source,
            "messaging.batch.message_count": count,
        },
    )


def _scalars(
    run_at: datetime.datetime | None, priority: int, source: str, retry: Mapping[str, Any] | None
) -> dict[str, Any]:
    if run_at is not None and not isinstance(run_at, datetime.datetime):
        raise EnqueueError(
            "run_at", f"run_at must be a datetime or None, got {type(run_at).__name__}"
        )
    if type(priority) is not int or priority not in _INT32:
        raise EnqueueError("priority", f"priority must be a 32-bit integer, got {_short(priority)}")
    return {
        "run_at": run_at,
        "priority": priority,
        "source": _text("source", source),
        "retry": _json("retry", retry),
    }


def _text(argument: str, value: str | None) -> str | None:
    """
    Text as Postgres can receive it: no NUL characters, valid UTF-8 (no lone surrogates).
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise EnqueueError(argument, f"{argument} must be text, got {type(value).__name__}")
    if "\x00" in value:
        raise EnqueueError(argument, f"{argument} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise EnqueueError(argument, f"{argument} must be valid Unicode text") from None
    return value


def _json(argument: str, value: Mapping[str, Any] | None) -> Jsonb | None:
    if value is None:
        return None
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise EnqueueError(argument, f"{argument} must be JSON: {_short(exc)}") from None
    if "\\u0000" in text:
        raise EnqueueError(argument, f"{argument} must not contain NUL characters")
    return Jsonb(value, dumps=lambda _: text)


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, BaseException) else str(value)
    return text if len(text) <= 40 else text[:40] + "…"


@contextlib.contextmanager
def _refusals(offset: int = 0) -> Iterator[None]:
    """
    The SQL contract's refusals as EnqueueError (indexes of enqueue_many's arrays shifted back
    from the slice to the whole call).
    """
    try:
        yield
    except psycopg.errors.InvalidParameterValue as exc:
        column = exc.diag.column_name or "params"
        message = exc.diag.message_primary or str(exc)
        if offset:
            column = _INDEXED.sub(lambda m: f"{m[1]}[{int(m[2]) + offset}]", column)
            message = re.sub(
                r"(params|idempotency_keys)\[(\d+)\]",
                lambda m: f"{m[1]}[{int(m[2]) + offset}]",
                message,
            )
        raise EnqueueError(column, message) from exc
