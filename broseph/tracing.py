"""
Tracing: OpenTelemetry spans for enqueue, for each attempt of a job, and for what an attempt
calls (OpenAI, FCM, SQL), in the producer's trace across the queue.

Off by default, and then next to free: production code uses only `opentelemetry-api`, and until
a tracer provider is set every helper here returns after one check (`on()`), without creating a
span or touching the context. `configure()` turns it on at process start when the standard
variable OTEL_TRACES_EXPORTER names an exporter (and OTEL_SDK_DISABLED is not true): the SDK
(the `otel` extra) is then set up by opentelemetry-distro's configurator, from the standard
OTEL_* variables (OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_SAMPLER, …), and
psycopg is instrumented. A process started under `opentelemetry-instrument` keeps the provider
that set up.

The shape of a trace (README, "Tracing"):

    enqueue <JobType>     PRODUCER  the Python face (broseph.enqueue), or the caller's own span
                                    when it passes its traceparent to broseph.enqueue in SQL
      run <JobType>       CONSUMER  one per attempt, a CHILD of the context stored with the job
                                    record (migrations/0024): retries are siblings in one trace
        openai.chat …     CLIENT    the OpenAI call
        fcm.send          CLIENT    each FCM batch
        SELECT/UPDATE …   CLIENT    each SQL statement (psycopg's instrumentation)

SQL statements get a span only inside another span (an enqueue, an attempt): the worker's idle
fetches, polls and heartbeats would otherwise each start a trace of their own.

Error statuses carry the scrubbed one-line description (broseph/logs.py: scrub), never an
exception's traceback or locals: spans leave the process like log lines do.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from broseph.logs import scrub
from broseph.problems import FIX_CONFIG, Problem

tracer = trace.get_tracer("broseph")  # a proxy: follows the provider once one is set

# W3C trace context only, whatever OTEL_PROPAGATORS says: it is what the record stores, what
# broseph.enqueue checks, and what NestJS's OpenTelemetry and BullMQ's telemetry send.
_W3C = TraceContextTextMapPropagator()


def on() -> bool:
    """
    Whether this process traces: a tracer provider was set (by `configure`, by
    `opentelemetry-instrument`, or by a test). Until then the API's proxy hands out no-op spans.
    """
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def configure() -> bool:
    """
    Turn tracing on for this process from the standard OTEL_* variables (see the module
    docstring); True when it is on. Call once, before any database pool opens (connections
    opened earlier are not instrumented).
    """
    exporters = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    disabled = os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    if not exporters or exporters == "none" or disabled:
        return on()
    try:
        from opentelemetry.distro import OpenTelemetryConfigurator
    except ImportError as exc:
        raise Problem(
            f"OTEL_TRACES_EXPORTER={exporters} but OpenTelemetry's SDK is not installed",
            "pip install 'broseph[otel]', or unset OTEL_TRACES_EXPORTER",
            exit_code=FIX_CONFIG,
            origin=exc,
        ) from None
    if not on():
        try:
            OpenTelemetryConfigurator().configure()  # type: ignore[no-untyped-call]
        except Exception as exc:  # an unknown exporter or sampler name, a bad endpoint …
            raise Problem(
                f"OpenTelemetry could not be set up from the OTEL_* variables: {exc}",
                "fix the OTEL_* variable it names (README, Tracing)",
                exit_code=FIX_CONFIG,
                origin=exc,
            ) from None
    instrument_sql()
    return on()


def instrument_sql() -> None:
    """
    A span for each SQL statement run inside another span (psycopg's instrumentation, through
    a provider that starts none at the root). Idempotent.
    """
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    instrumentor = PsycopgInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=_ChildSpansOnly(), skip_dep_check=True)


class _NoRootTracer(trace.Tracer):
    def __init__(self, tracer_: trace.Tracer) -> None:
        self._tracer = tracer_

    def start_span(  # type: ignore[override]
        self, name: str, context: Context | None = None, **kwargs: Any
    ) -> trace.Span:
        if not trace.get_current_span(context).get_span_context().is_valid:
            return trace.INVALID_SPAN
        return self._tracer.start_span(name, context, **kwargs)

    @contextlib.contextmanager
    def start_as_current_span(  # type: ignore[override]
        self, name: str, context: Context | None = None, **kwargs: Any
    ) -> Iterator[trace.Span]:
        if not trace.get_current_span(context).get_span_context().is_valid:
            yield trace.INVALID_SPAN
            return
        with self._tracer.start_as_current_span(name, context, **kwargs) as span:
            yield span


class _ChildSpansOnly(trace.TracerProvider):
    """
    The global provider's tracers, starting no span where no span is current.
    """

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _NoRootTracer(trace.get_tracer_provider().get_tracer(*args, **kwargs))


# --- trace context across the queue ----------------------------------------------------------


def current_context() -> tuple[str | None, str | None]:
    """
    The current span's W3C traceparent and tracestate, to store with an enqueued job;
    (None, None) when tracing is off or no span is current.
    """
    if not on() or not trace.get_current_span().get_span_context().is_valid:
        return None, None
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier.get("traceparent"), carrier.get("tracestate")


def context_from(carrier: Mapping[str, Any] | None) -> Context | None:
    """
    The remote parent a carrier names ({"traceparent": …, "tracestate": …}: a job record's
    columns, BullMQ's telemetry metadata); None when tracing is off or the carrier holds no
    valid W3C context (a malformed value is ignored, as the W3C spec asks, never an error).
    """
    if not on() or not carrier:
        return None
    headers = {
        key: value
        for key in ("traceparent", "tracestate")
        if isinstance(value := carrier.get(key), str)
    }
    if "traceparent" not in headers:
        return None
    found = _W3C.extract(headers)
    return found if trace.get_current_span(found).get_span_context().is_valid else None


# --- spans -----------------------------------------------------------------------------------


@contextlib.contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, AttributeValue] | None = None,
    parent: Context | None = None,
) -> Iterator[trace.Span]:
    """
    A span around a block, current inside it; a failure sets its status to ERROR with the
    scrubbed description. When tracing is off: the no-op span, and nothing else done.
    """
    if not on():
        yield trace.INVALID_SPAN
        return
    with tracer.start_as_current_span(
        name,
        context=parent,
        kind=kind,
        attributes=attributes,
        record_exception=False,  # a traceback can hold secrets; `failed` writes a scrubbed line
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as exc:
            failed(current, exc)
            raise


def failed(current: trace.Span, exc: BaseException, description: str | None = None) -> None:
    """
    Mark a span failed: status ERROR with a scrubbed one-line description, and error.type.
    """
    if not current.is_recording():
        return
    text = description or f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    current.set_status(Status(StatusCode.ERROR, scrub(text)[:500]))
    current.set_attribute("error.type", type(exc).__qualname__)


def set_attributes(current: trace.Span, attributes: Mapping[str, AttributeValue | None]) -> None:
    """
    Attributes known only after the span started (None values are left out).
    """
    if current.is_recording():
        current.set_attributes({k: v for k, v in attributes.items() if v is not None})


def count_outcomes(current: trace.Span, name: str, outcomes: Sequence[str]) -> None:
    """
    Per-outcome counts as attributes (`<name>.<outcome>`), e.g. FCM's delivered / retry / gone.
    """
    if current.is_recording():
        counts: dict[str, int] = {}
        for outcome in outcomes:
            counts[outcome] = counts.get(outcome, 0) + 1
        current.set_attributes({f"{name}.{k}": v for k, v in counts.items()})
