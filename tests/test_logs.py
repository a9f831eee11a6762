"""
Secrets never reach logs, whatever a call site passes.
"""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from broseph import logs


@pytest.fixture(autouse=True)
def restore_logging():
    """
    logs.configure() changes process-wide state; later tests rely on structlog's defaults
    (capture_logs) and on pytest's own log handlers.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_sensitive_keys_and_embedded_secrets_are_redacted(capsys):
    logs.configure("json", "INFO")
    log = structlog.get_logger("test")
    log.info(
        "push_sent",
        token="fcm-device-token-123",
        body="see you at 8, the door code is 4411",
        api_key="sk-live-abcdefghijklmnop",
        nested={"identifier": "fid-777", "count": 3},
        error="401 from https://api.openai.com: Bearer sk-proj-zzzzzzzzzzzz rejected",
        group_id="g-1",
    )
    logging.getLogger("procrastinate").info(
        "connect postgresql://app:s3cr3t@db.example:5432/x failed"
    )
    out = capsys.readouterr().err.strip().splitlines()
    event = json.loads(out[0])
    for secret in ("fcm-device-token-123", "door code", "sk-live", "fid-777", "sk-proj", "s3cr3t"):
        assert secret not in "\n".join(out), secret
    assert event["token"] == event["body"] == event["api_key"] == logs.REDACTED
    assert event["nested"] == {"identifier": logs.REDACTED, "count": 3}
    assert event["group_id"] == "g-1" and event["event"] == "push_sent"
    assert (
        json.loads(out[1])["event"]
        == "connect postgresql://app:[redacted]@db.example:5432/x failed"
    )


def test_console_format_also_redacts(capsys):
    logs.configure("console", "INFO")
    structlog.get_logger("test").warning("x", token="tok-abc")
    assert "tok-abc" not in capsys.readouterr().err


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_procrastinate_per_job_lines_are_left_to_broseph_job_below_debug(capsys, level):
    logs.configure("json", level)
    worker = logging.getLogger("procrastinate.worker")
    worker.info("Starting job t[1]()", extra={"action": "start_job"})
    worker.info("Job t[1]() ended with status: Success", extra={"action": "job_success"})
    worker.info("Job t[2]() ended: Error, to retry", extra={"action": "job_error_retry"})
    worker.error("Job t[3]() ended with status: Error", extra={"action": "job_error"})
    worker.info("Starting worker on all queues", extra={"action": "start_worker"})
    # Another library's record with the same action name is not procrastinate's per-job line.
    logging.getLogger("other").info("start", extra={"action": "start_job"})
    actions = [json.loads(line)["action"] for line in capsys.readouterr().err.splitlines()]
    kept = ["job_error_retry", "job_error", "start_worker", "start_job"]
    if level == "DEBUG":
        kept = ["start_job", "job_success", *kept]
    assert actions == kept


def test_a_raw_procrastinate_worker_keeps_its_per_job_lines(capsys):
    logs.configure("json", "INFO", procrastinate_job_lines=True)
    logging.getLogger("procrastinate.worker").info("Starting job", extra={"action": "start_job"})
    assert json.loads(capsys.readouterr().err)["action"] == "start_job"


PASSWORD = "Pw-7d1c0ffee-not-for-logs"
URL = f"postgresql://app:{PASSWORD}@db.example:5432/x"


def _fail() -> None:
    url = URL  # a local holding the password: tracebacks with locals would print it
    raise RuntimeError(f"cannot use {url}")


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_tracebacks_are_plain_scrubbed_and_show_no_locals(capsys, log_format):
    """
    procrastinate logs a failed job with exc_info after the except block (so there is no
    "current exception" any more); our own code may log inside one. Both come out with their
    traceback, scrubbed, without local variables.
    """
    logs.configure(log_format, "INFO")
    try:
        _fail()
    except RuntimeError as exc:
        error = exc
        structlog.get_logger("broseph.test").exception("ours_failed")
    logging.getLogger("procrastinate.worker").error(
        "Job x[1]() ended with status: Error", exc_info=error, extra={"action": "job_error"}
    )
    out = capsys.readouterr().err
    assert PASSWORD not in out
    assert out.count("Traceback (most recent call last)") == 2
    assert out.count(f"RuntimeError: cannot use postgresql://app:{logs.REDACTED}@db.example") == 2
    assert "─ locals ─" not in out and "url = '" not in out  # rich's locals panel, a repr
    if log_format == "json":
        lines = [json.loads(line) for line in out.splitlines()]
        assert [line["event"] for line in lines] == [
            "ours_failed",
            "Job x[1]() ended with status: Error",
        ]
        assert all("Traceback" in line["exception"] for line in lines)


def test_a_log_value_of_any_type_survives_redaction(capsys):
    logs.configure("json", "INFO")
    structlog.get_logger("t").info("x", pair=("a", 1), items=["Bearer abc.def"], n=None)
    event = json.loads(capsys.readouterr().err)
    assert event["pair"] == ["a", 1] and event["items"] == [logs.REDACTED] and event["n"] is None
