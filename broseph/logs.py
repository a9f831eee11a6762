"""
Logging: structlog for our events, stdlib logging (procrastinate, httpx) routed through it.

Secrets never reach logs: values under sensitive keys are replaced, and anything that looks like
an API key or bearer token inside a string is scrubbed — whatever the call site passed.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Final

import structlog

# Keys whose values are secret or private wherever they appear (device tokens, FCM ids, API keys,
# message bodies). Matching is case-insensitive on the whole key.
SENSITIVE_KEYS = frozenset(
    {
        "token",
        "device_token",
        "identifier",
        "fid",
        "api_key",
        "openai_api_key",
        "authorization",
        "password",
        "secret",
        "credentials",
        "body",
        "message_body",
        "message_text",
    }
)
REDACTED = "[redacted]"
# (pattern, replacement): the replacement keeps what helps debugging (scheme, user, host).
_SECRET_PATTERNS = (
    (re.compile(r"sk-[A-Za-z0-9_\-]{8,}"), REDACTED),
    (re.compile(r"(?i)bearer\s+[A-Za-z0-9._\-]+"), REDACTED),
    (re.compile(r"(\w+://[^:@/\s]+:)[^@/\s]+@"), rf"\g<1>{REDACTED}@"),
)


def scrub(text: str) -> str:
    """
    Remove API keys, bearer tokens and URL passwords from free text (error messages).
    """
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {
            k: REDACTED if str(k).lower() in SENSITIVE_KEYS else _redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """
    structlog processor: the last line of defence for invariant 6 (secrets never reach logs).
    """
    for key in list(event_dict):
        if key.lower() in SENSITIVE_KEYS:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact(event_dict[key])
    return event_dict


# procrastinate's per-job INFO lines ("Starting job …", "… ended with status: Success") say what
# broseph.job's job_start / job_complete say, with the job's whole call string (its params) in
# the text: a third of a busy worker's lines, for nothing new. Failures, retries and aborts (the
# other actions) still come through, and LOG_LEVEL=DEBUG shows everything.
_PROCRASTINATE_PER_JOB: Final = frozenset({"start_job", "job_success"})


def _drop_procrastinate_job_lines(record: logging.LogRecord) -> bool:
    return not (
        record.name.startswith("procrastinate.")
        and getattr(record, "action", None) in _PROCRASTINATE_PER_JOB
    )


def configure(
    log_format: str = "console", level: str = "INFO", *, procrastinate_job_lines: bool = False
) -> None:
    """
    Configure structlog and the stdlib root logger once per process. `procrastinate_job_lines`
    keeps procrastinate's own per-job INFO lines (a raw procrastinate worker's logging, for the
    benchmarks' baseline); broseph's workers leave them to broseph.job.
    """
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler()
    if not procrastinate_job_lines and logging.getLevelName(level) > logging.DEBUG:
        handler.addFilter(_drop_procrastinate_job_lines)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs full request URLs at INFO; keep it at WARNING.
    logging.getLogger("httpx").setLevel(logging.WARNING)
