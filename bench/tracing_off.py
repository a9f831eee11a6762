"""
(12) Tracing off: what the tracing code on the hot paths costs when no tracer provider is set
(the default, OTEL_TRACES_EXPORTER unset), per call, against the same code with tracing on.

    enqueue   the Python face's per-call tracing: the `enqueue <JobType>` span and reading the
              context to store (`enqueue._span` + `tracing.current_context`)
    attempt   the job lifecycle's check before it opens an attempt span (`tracing.on`)
    log line  `logs.add_trace_ids`, run on every log line

Baseline: the same calls with the SDK on (a TracerProvider without exporter, so only the span's
own work is counted), in the same process and run. The figures are nanoseconds in-process (best of
five batches): compare them with an enqueue's round trip and commit (benchmark 1, milliseconds).

    python -m bench.tracing_off      # this benchmark alone, its table
    python -m bench --only 12
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from bench import harness
from bench.harness import Context, Metric, Repetition, Sample
from broseph import enqueue, logs, tracing

number = 12
title = "Tracing off: the cost of the tracing code when no provider is set"
metrics = (
    Metric(
        "tracing_off_enqueue",
        "(12) enqueue's span and context, tracing off",
        "ns",
        baseline="the same, tracing on (SDK, no exporter)",
    ),
    Metric(
        "tracing_off_attempt",
        "(12) the lifecycle's tracing check, tracing off",
        "ns",
        baseline="the attempt span it skips, tracing on",
    ),
    Metric(
        "tracing_off_log",
        "(12) trace ids of one log line, tracing off",
        "ns",
        baseline="the same inside a span, tracing on",
    ),
)


def _per_call(call: Callable[[], Any], n: int) -> float:
    """
    Nanoseconds per call: the best of five batches of n.
    """
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter_ns()
        for _ in range(n):
            call()
        best = min(best, (time.perf_counter_ns() - started) / n)
    return best


def _enqueue_tracing() -> None:
    with enqueue._span("GeneratePrompt", "api", 1):
        tracing.current_context()


@contextlib.contextmanager
def _provider(provider: TracerProvider | None) -> Iterator[None]:
    # The API sets its provider once per process; a benchmark swaps it as OpenTelemetry's own
    # test utilities do, and puts the proxy back (the other benchmarks run with tracing off).
    from opentelemetry.util._once import Once

    def install(value: TracerProvider | None) -> None:
        trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
        trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]
        if value is not None:
            trace.set_tracer_provider(value)

    install(provider)
    try:
        yield
    finally:
        install(None)


def measure(n: int) -> Repetition:
    event = {"event": "job_start"}
    assert not tracing.on(), "run with OTEL_TRACES_EXPORTER unset"
    off = {
        "tracing_off_enqueue": _per_call(_enqueue_tracing, n),
        "tracing_off_attempt": _per_call(tracing.on, n),
        "tracing_off_log": _per_call(lambda: logs.add_trace_ids(None, "info", dict(event)), n),
    }
    provider = TracerProvider()
    with _provider(provider):
        on_tracer = provider.get_tracer("bench")

        def attempt_span() -> None:
            with tracing.span("run GeneratePrompt", kind=trace.SpanKind.CONSUMER):
                pass

        enqueue_on = _per_call(_enqueue_tracing, n)
        attempt_on = _per_call(attempt_span, n)
        with on_tracer.start_as_current_span("run"):
            log_on = _per_call(lambda: logs.add_trace_ids(None, "info", dict(event)), n)
    provider.shutdown()
    return {
        "tracing_off_enqueue": Sample(off["tracing_off_enqueue"], enqueue_on),
        "tracing_off_attempt": Sample(off["tracing_off_attempt"], attempt_on),
        "tracing_off_log": Sample(off["tracing_off_log"], log_on),
    }


async def rounds(ctx: Context) -> AsyncIterator[Repetition]:
    n = ctx.size(20_000, 500)
    for _ in range(ctx.reps):
        yield await asyncio.to_thread(measure, n)
    ctx.note(
        f"(12) in-process, best of 5 batches of {n:,} calls; tracing on = the SDK's"
        " TracerProvider without exporter (exporting adds its own cost, off the hot path with"
        " the batch processor)"
    )


if __name__ == "__main__":
    harness.run_alone(__name__)
