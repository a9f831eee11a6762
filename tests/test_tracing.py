"""
Tracing (issue 16): the spans of real jobs — the in-process worker against real Postgres, the
openai SDK and firebase-admin against their stand-ins, the BullMQ ingress fed by the npm bullmq
producer — exported to OpenTelemetry's in-memory exporter, and their parent/child structure
across the queue. Also: the trace context refused or ignored when it is not one, trace ids in
the log lines of a traced job, nothing stored when tracing is off.
"""

# ruff: noqa: F811  (pytest fixtures imported from tests.notify_support are test arguments)
from __future__ import annotations

import contextlib
import datetime
import json
import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import structlog
from opentelemetry import trace
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once
from psycopg.types.json import Jsonb

from broseph import logs, tracing
from broseph.ingress import bullmq as ingress_bullmq
from tests import factories
from tests import ingress_support as support
from tests.conftest import wait_until
from tests.notify_support import (  # noqa: F401  (fixtures)
    fcm,
    fcm_sender,
    notification,
    push_app,
    send,
    wait_status,
    without_notify_triggers,
    world,
)
from tests.prompt_support import GOOD, ai_settings, enqueue_prompt, finish
from tests.secrets_support import Process, command, env
from tests.standins.openai_server import OpenAIStandIn, Reply

# The example of the W3C Trace Context spec, as a NestJS request span would send it.
NEST_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
NEST_SPAN_ID = "00f067aa0ba902b7"
NEST_TRACEPARENT = f"00-{NEST_TRACE_ID}-{NEST_SPAN_ID}-01"


# --- tracing off (first: before this module turns it on) ------------------------------------------


async def test_with_tracing_off_nothing_is_traced_or_stored(conn, start_worker):
    assert not tracing.on()
    assert tracing.current_context() == (None, None)
    gid = await factories.group(conn)
    with structlog.testing.capture_logs() as logged:
        rid = await enqueue_prompt(conn, gid, retry={"max_attempts": 1})
    cur = await conn.execute(
        "SELECT traceparent, tracestate FROM broseph.job_records WHERE id = %s", (rid,)
    )
    assert await cur.fetchone() == {"traceparent": None, "tracestate": None}
    assert all("trace_id" not in event for event in logged)


# --- the exporter ---------------------------------------------------------------------------------


def _set_provider(provider: TracerProvider | None) -> None:
    # The API lets a process set its provider once; tests reset it as OpenTelemetry's own test
    # utilities do (opentelemetry.test.globals_test.reset_trace_globals).
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]
    if provider is not None:
        trace.set_tracer_provider(provider)


@pytest.fixture(scope="module")
def exporter_on() -> Iterator[InMemorySpanExporter]:
    """
    Tracing on for this module: the SDK with an in-memory exporter, psycopg instrumented as
    `tracing.configure` does it; off again afterwards, for the rest of the suite.
    """
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _set_provider(provider)
    tracing.instrument_sql()
    yield exporter
    PsycopgInstrumentor().uninstrument()
    _set_provider(None)
    provider.shutdown()


@pytest.fixture
def exporter(exporter_on: InMemorySpanExporter) -> InMemorySpanExporter:
    exporter_on.clear()
    return exporter_on


@contextlib.contextmanager
def captured_logs() -> Iterator[list[dict[str, Any]]]:
    """
    structlog events as the configured chain sees them, trace ids added (`logs.add_trace_ids`);
    in place, as structlog.testing.capture_logs does, so cached loggers see it too.
    """
    capture = structlog.testing.LogCapture()
    processors = structlog.get_config()["processors"]
    saved = list(processors)
    processors[:] = [logs.add_trace_ids, capture]
    try:
        yield capture.entries
    finally:
        processors[:] = saved


def named(spans: Any, name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def children(spans: Any, parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def sql_spans(spans: Any) -> list[ReadableSpan]:
    return [s for s in spans if (s.attributes or {}).get("db.system") == "postgresql"]


def hex_trace(span: ReadableSpan) -> str:
    return trace.format_trace_id(span.context.trace_id)


# --- the Python face: enqueue → attempt → OpenAI and SQL ------------------------------------------


@pytest.fixture
def standin() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn() as server:
        yield server


async def test_python_enqueue_attempt_openai_and_sql_form_one_trace(
    exporter, conn, app, settings, standin, start_worker
):
    from broseph import services

    svc = services.build(ai_settings(settings, standin), services.pool_of(app))
    services.install(app, svc)
    standin.script(Reply.json_output(GOOD))
    gid = await factories.group(conn, name="Traced crew")
    uid = await factories.user(conn, name="Ana")
    await factories.member(conn, gid, uid)

    with trace.get_tracer("api").start_as_current_span("POST /groups/prompt") as request:
        rid = await enqueue_prompt(conn, gid)
    try:
        with captured_logs() as logged:
            await start_worker(queues=["prompts"])
            done, _ = await finish(conn, rid)
    finally:
        await svc.aclose()
    assert done["status"] == "completed"

    spans = exporter.get_finished_spans()
    enqueue = named(spans, "enqueue GeneratePrompt")
    run = named(spans, "run GeneratePrompt")
    chat = named(spans, "chat gpt-4o-mini")
    api_trace = request.get_span_context().trace_id
    # One trace from the API request to the model call, across the queue.
    assert {s.context.trace_id for s in (enqueue, run, chat)} == {api_trace}
    assert enqueue.kind is SpanKind.PRODUCER
    assert enqueue.parent.span_id == request.get_span_context().span_id
    assert enqueue.attributes["broseph.record_id"] == str(rid)
    assert run.kind is SpanKind.CONSUMER and run.parent.is_remote
    assert run.parent.span_id == enqueue.context.span_id  # a child of the enqueue, not a link
    assert run.attributes["broseph.record_id"] == str(rid)
    assert run.attributes["broseph.attempt"] == 1
    assert run.status.status_code is StatusCode.UNSET
    assert chat.kind is SpanKind.CLIENT and chat.parent.span_id == run.context.span_id
    assert chat.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    # The SQL statements: the enqueue's under its span, the job's under the attempt's.
    assert any(
        "broseph.enqueue" in str(s.attributes.get("db.statement")) for s in children(spans, enqueue)
    )
    job_sql = [s for s in children(spans, run) if s in sql_spans(spans)]
    assert job_sql and all(s.kind is SpanKind.CLIENT for s in job_sql)
    # The worker's idle fetches and polls start no trace of their own.
    assert all(s.parent is not None for s in sql_spans(spans))
    # The record holds the enqueue span's context.
    cur = await conn.execute("SELECT traceparent FROM broseph.job_records WHERE id = %s", (rid,))
    stored = (await cur.fetchone())["traceparent"]
    span_id = trace.format_span_id(enqueue.context.span_id)
    assert stored == f"00-{hex_trace(enqueue)}-{span_id}-{enqueue.context.trace_flags:02x}"
    # Every log line of the attempt carries the trace id (and the attempt span's id).
    lines = [e for e in logged if e.get("record_id") == str(rid)]
    assert {"job_start", "job_complete"} <= {e["event"] for e in lines}
    assert {e["trace_id"] for e in lines} == {hex_trace(run)}
    assert {e["span_id"] for e in lines} == {trace.format_span_id(run.context.span_id)}


# --- the SQL face: a NestJS caller's traceparent; FCM ---------------------------------------------


async def test_sql_enqueue_with_the_callers_traceparent_continues_its_trace_to_fcm(
    exporter, conn, fcm, push_app, start_worker
):
    await without_notify_triggers(conn)
    w = await world(conn, kinds=("fid", "token"))
    today = datetime.datetime.now(datetime.UTC).date()
    prompt_id = await factories.prompt(conn, w.group_id, today, text="What song is stuck?")
    params = {
        "user_id": str(w.user_id),
        "type": "new_prompt",
        "data": {"group_id": str(w.group_id), "prompt_id": str(prompt_id)},
    }
    cur = await conn.execute(
        "SELECT broseph.enqueue('SendNotification', %s, traceparent => %s,"
        " tracestate => 'nest=1') AS id",
        (Jsonb(params), NEST_TRACEPARENT),
    )
    rid = (await cur.fetchone())["id"]
    await start_worker()
    await wait_status(conn, rid, "completed")

    spans = exporter.get_finished_spans()
    run = named(spans, "run SendNotification")
    assert hex_trace(run) == NEST_TRACE_ID
    assert run.parent.is_remote and trace.format_span_id(run.parent.span_id) == NEST_SPAN_ID
    assert run.context.trace_state.get("nest") == "1"
    fcm_span = named(spans, "fcm send")
    assert fcm_span.kind is SpanKind.CLIENT and fcm_span.parent.span_id == run.context.span_id
    assert fcm_span.attributes["messaging.batch.message_count"] == 2
    assert fcm_span.attributes["broseph.push.delivered"] == 2
    # No device identifier in any span.
    text = repr([(s.name, dict(s.attributes or {})) for s in spans])
    assert all(d.identifier not in text for d in w.devices)


async def test_a_failed_attempt_span_says_why_scrubbed_and_the_retry_is_its_sibling(
    exporter, conn, app, settings, standin, start_worker
):
    from broseph import services

    svc = services.build(ai_settings(settings, standin), services.pool_of(app))
    services.install(app, svc)
    # A 500 whose body carries a key-shaped secret, then success on the job's retry.
    standin.script(
        Reply.status(500, message="upstream sk-proj-abcdefghijklmnop123 broke"),
        Reply.json_output(GOOD),
    )
    gid = await factories.group(conn)
    with trace.get_tracer("api").start_as_current_span("request"):
        rid = await enqueue_prompt(
            conn, gid, retry={"max_attempts": 2, "backoff_seconds": 0.2, "backoff_type": "fixed"}
        )
    try:
        await start_worker(queues=["prompts"])
        done, _ = await finish(conn, rid)
    finally:
        await svc.aclose()
    assert done["status"] == "completed" and done["attempts"] == 2
    spans = exporter.get_finished_spans()
    enqueue = named(spans, "enqueue GeneratePrompt")
    runs = sorted(
        (s for s in spans if s.name == "run GeneratePrompt"), key=lambda s: s.start_time or 0
    )
    assert [s.attributes["broseph.attempt"] for s in runs] == [1, 2]
    assert {s.parent.span_id for s in runs} == {enqueue.context.span_id}
    first, second = runs
    assert first.status.status_code is StatusCode.ERROR
    assert first.status.description.startswith("RetryableJobError: AI unavailable")
    assert first.attributes["error.type"] == "RetryableJobError"
    assert second.status.status_code is StatusCode.UNSET
    chats = [s for s in spans if s.name == "chat gpt-4o-mini"]
    assert sorted(s.parent.span_id for s in chats) == sorted(s.context.span_id for s in runs)
    assert [s.status.status_code for s in chats].count(StatusCode.ERROR) == 1
    text = repr([(s.status.description, s.events, dict(s.attributes or {})) for s in spans])
    assert "sk-proj-abcdefghijklmnop123" not in text


# --- the ingress: a BullMQ producer's context -----------------------------------------------------


async def test_the_ingress_span_continues_the_bullmq_producers_trace_into_the_job(
    exporter, conn, settings, start_worker
):
    queue = support.unique_queue()
    gid = await factories.group(conn)
    items = [
        {
            "publish": "engagement",
            "payload": {"groupId": str(gid), "localDate": "2026-03-01"},
        }
    ]
    async with support.running_ingress(support.ingress_settings(settings, queue)) as ingress:
        await support.wait_consuming(ingress)
        [job] = support.node_publish(queue, items, traceparent=NEST_TRACEPARENT)

        async def enqueued() -> bool:
            return any(s.name == "ingress ProcessEngagement" for s in exporter.get_finished_spans())

        await wait_until(enqueued, within=30)
    cur = await conn.execute(
        "SELECT id, traceparent FROM broseph.job_records WHERE job_type = 'ProcessEngagement'"
        " AND source = 'bullmq'"
    )
    [row] = await cur.fetchall()
    await start_worker(queues=["engagement"])
    await wait_status(conn, row["id"], "completed")

    spans = exporter.get_finished_spans()
    ingress_span = named(spans, "ingress ProcessEngagement")
    assert ingress_span.kind is SpanKind.CONSUMER and hex_trace(ingress_span) == NEST_TRACE_ID
    assert trace.format_span_id(ingress_span.parent.span_id) == NEST_SPAN_ID
    assert ingress_span.attributes["messaging.message.id"] == str(job["id"])
    span_id = trace.format_span_id(ingress_span.context.span_id)
    flags = f"{ingress_span.context.trace_flags:02x}"
    assert row["traceparent"] == f"00-{NEST_TRACE_ID}-{span_id}-{flags}"
    run = named(spans, "run ProcessEngagement")
    assert run.parent.span_id == ingress_span.context.span_id and hex_trace(run) == NEST_TRACE_ID


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"tm": {"traceparent": "00-" + "0" * 32 + "-" + NEST_SPAN_ID + "-01"}},
        {"tm": {"traceparent": "not a trace context"}},
        {"tm": "{not json"},
        {"tm": ["00-x"]},
        {"tm": "x" * 10_000},
    ],
)
def test_a_job_without_a_valid_producer_context_starts_its_own_trace(exporter, options):
    assert ingress_bullmq.producer_context(options) is None


def test_the_producer_context_is_read_from_bullmqs_telemetry_metadata(exporter):
    for carrier in ({"traceparent": NEST_TRACEPARENT}, f'{{"traceparent": "{NEST_TRACEPARENT}"}}'):
        found = ingress_bullmq.producer_context({"tm": carrier})
        assert found is not None
        remote = trace.get_current_span(found).get_span_context()
        assert (trace.format_trace_id(remote.trace_id), remote.is_remote) == (NEST_TRACE_ID, True)


# --- hostile trace context ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("traceparent", "tracestate", "column"),
    [
        (NEST_TRACEPARENT.upper(), None, "traceparent"),  # the spec's form is lowercase
        ("00-" + "0" * 32 + "-" + NEST_SPAN_ID + "-01", None, "traceparent"),  # invalid trace id
        (f"00-{NEST_TRACE_ID}-{'0' * 16}-01", None, "traceparent"),  # invalid parent id
        ("ff" + NEST_TRACEPARENT[2:], None, "traceparent"),  # a version that does not exist
        (NEST_TRACEPARENT + "-extra", None, "traceparent"),
        (NEST_TRACEPARENT[:-1] + "\n", None, "traceparent"),  # a forged log line
        ("'; DROP TABLE broseph.job_records; --", None, "traceparent"),
        ("x" * 100_000, None, "traceparent"),
        ("", None, "traceparent"),
        (None, "nest=1", "tracestate"),  # a state without its parent
        (NEST_TRACEPARENT, "a" * 513, "tracestate"),
        (NEST_TRACEPARENT, "nest=1\r\nx=2", "tracestate"),
        (NEST_TRACEPARENT, "", "tracestate"),
        (NEST_TRACEPARENT, "nest=\u00e9", "tracestate"),
    ],
)
async def test_a_hostile_trace_context_is_refused_by_name(conn, traceparent, tracestate, column):
    gid = await factories.group(conn)
    params = Jsonb({"group_id": str(gid), "local_date": "2026-03-01"})
    for call in (
        "SELECT broseph.enqueue('ProcessEngagement', %s, traceparent => %s, tracestate => %s)",
        "SELECT broseph.enqueue_many('ProcessEngagement', ARRAY[%s], traceparent => %s,"
        " tracestate => %s)",
        "SELECT public.broseph_enqueue('ProcessEngagement', %s, traceparent => %s,"
        " tracestate => %s)",
    ):
        with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
            await conn.execute(call, (params, traceparent, tracestate))
        assert refused.value.diag.column_name == column
        message = refused.value.diag.message_primary or ""
        assert column in message and "\n" not in message and len(message) < 300
    cur = await conn.execute("SELECT count(*) AS n FROM broseph.job_records")
    assert (await cur.fetchone())["n"] == 0


async def test_old_calls_and_a_valid_context_are_accepted(conn):
    gid = await factories.group(conn)
    day = datetime.date(2026, 3, 1).isoformat()
    cur = await conn.execute(
        "SELECT broseph.enqueue('ProcessEngagement', jsonb_build_object('group_id', %s::text,"
        " 'local_date', %s::text), NULL, NULL, 0, 'sql', NULL) AS old,"
        " public.broseph_enqueue('ProcessEngagement', jsonb_build_object('group_id', %s::text,"
        " 'local_date', '2026-03-02'), traceparent => %s, tracestate => 'a=1,b=2') AS new",
        (gid, day, gid, NEST_TRACEPARENT),
    )
    row = await cur.fetchone()
    cur = await conn.execute(
        "SELECT id, traceparent, tracestate FROM broseph.job_records WHERE id IN (%s, %s)",
        (row["old"], row["new"]),
    )
    found = {r["id"]: (r["traceparent"], r["tracestate"]) for r in await cur.fetchall()}
    assert found == {row["old"]: (None, None), row["new"]: (NEST_TRACEPARENT, "a=1,b=2")}


async def test_a_malformed_stored_context_is_ignored_and_the_job_runs(exporter, conn, start_worker):
    # Written past enqueue's check (by hand, or before 0024): the worker's parse ignores it.
    gid = await factories.group(conn)
    rid = await factories.enqueued(
        conn, "ProcessEngagement", {"group_id": str(gid), "local_date": "2026-03-01"}
    )
    await conn.execute(
        "UPDATE broseph.job_records SET traceparent = 'zz-not-a-context', tracestate = 'x'"
        " WHERE id = %s",
        (rid,),
    )
    await start_worker(queues=["engagement"])
    await wait_status(conn, rid, "completed")
    run = named(exporter.get_finished_spans(), "run ProcessEngagement")
    assert run.parent is None  # a trace of its own


async def test_enqueue_limits_include_the_trace_context(conn):
    cur = await conn.execute("SELECT broseph.enqueue_limits() AS l")
    limits = (await cur.fetchone())["l"]
    assert limits["traceparent_length"] == len(NEST_TRACEPARENT)
    assert limits["tracestate_max_length"] == 512


# --- a worker process, configured by the OTEL_* variables alone -----------------------------------


def console_spans(output: str) -> list[dict[str, Any]]:
    """
    The spans OpenTelemetry's console exporter printed (one indented JSON object each, its
    braces alone on their lines), from a process's output mixed with its log lines.
    """
    blocks = re.findall(r"^\{\n.*?^\}$", output, flags=re.MULTILINE | re.DOTALL)
    return [json.loads(block) for block in blocks]


async def test_a_worker_process_traces_as_the_otel_variables_say(db_url, conn):
    gid = await factories.group(conn)
    cur = await conn.execute(
        "SELECT broseph.enqueue('ProcessEngagement', jsonb_build_object('group_id', %s::text,"
        " 'local_date', '2026-03-01'), traceparent => %s) AS id",
        (gid, NEST_TRACEPARENT),
    )
    rid = (await cur.fetchone())["id"]
    process = Process(
        [*command("broseph", "worker"), "--queue", "engagement"],
        env(
            DATABASE_URL=db_url,
            POLL_INTERVAL="0.5",
            OTEL_TRACES_EXPORTER="console",
            OTEL_SERVICE_NAME="broseph-test-worker",
        ),
    )
    try:
        await wait_status(conn, rid, "completed", within=60)
        assert process.terminate() == 0  # the SDK flushes its spans at exit
        output = process.output()
    finally:
        process.close()
    spans = console_spans(output)
    [run] = [s for s in spans if s["name"] == "run ProcessEngagement"]
    assert run["context"]["trace_id"] == f"0x{NEST_TRACE_ID}"
    assert run["parent_id"] == f"0x{NEST_SPAN_ID}" and run["kind"] == "SpanKind.CONSUMER"
    assert run["resource"]["attributes"]["service.name"] == "broseph-test-worker"
    statements = [
        s
        for s in spans
        if s["parent_id"] == run["context"]["span_id"]
        and s["attributes"].get("db.system") == "postgresql"
    ]
    assert statements, [s["name"] for s in spans]
    # No SQL span without a parent: the worker's fetches and polls are not traced.
    assert all(s["parent_id"] for s in spans if s["attributes"].get("db.system"))
    job_lines = [line for line in output.splitlines() if "job_complete" in line]
    assert job_lines and all(f"trace_id={NEST_TRACE_ID}" in line for line in job_lines)
