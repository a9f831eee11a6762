"""
Logging: structlog for our events, stdlib logging (procrastinate, psycopg_pool, httpx) routed
through the same chain.

Secrets never reach logs. Exceptions are rendered to plain text first — without
local variables: a frame's `settings` or connection string would otherwise be printed whole — and
only then does every event pass `redact_secrets`: values under sensitive keys are replaced, and
all free text (messages, error strings, whole tracebacks) goes through `scrub`.

`scrub` is linear in its input. Each pattern starts with a literal ("://", "sk-", "bearer", …),
so the regex engine tries it only where that literal occurs, and the run it then scans either
cannot contain that literal (so no character is scanned from two starting points) or is
consumed by the match. (The pattern it replaced, `\\w+://…`, rescanned every word run from each of
its characters: 30,000 characters took 1 s, 300,000 took 100 s, with the worker's event loop
blocked all along — `python -m bench.scrub`, docs/benchmarks.md.)
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Final

import structlog
from opentelemetry import trace

# Keys whose values are secret or private wherever they appear (device tokens, FCM ids, API keys,
# credentials, message bodies). Matching is case-insensitive on the whole key, or on its ending.
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
        "private_key",
        "private_key_id",
        "body",
        "message_body",
        "message_text",
    }
)
_SENSITIVE_ENDINGS: Final = ("password", "secret", "_token", "_api_key", "private_key")
REDACTED = "[redacted]"
_KEY_WORDS: Final = (
    r"password|passwd|pwd|secret|api[_-]?key|access[_-]?token|refresh[_-]?token|private[_-]?key"
)
# (pattern, replacement); each is linear (see the module docstring). Replacements keep what helps
# debugging: the scheme, user and host of a URL, the name of a key.
SECRET_PATTERNS: Final = (
    # API keys (OpenAI sk-…, sk-proj-…) and Google OAuth access tokens.
    (re.compile(r"sk-[A-Za-z0-9_\-]{8,}"), REDACTED),
    (re.compile(r"ya29\.[A-Za-z0-9_\-.]+"), REDACTED),
    # Authorization headers.
    (re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/\-]+=*"), REDACTED),
    # The password of a URL (postgresql://user:PASSWORD@host, redis://:PASSWORD@host): after
    # "://", a user without ':' '@' '/' (possessive: it cannot give anything back), ':', then up
    # to the last '@' before the next '/' or space. Neither run can cross a '/', and every "://"
    # holds one, so the runs of two starting points never overlap.
    (re.compile(r"(://[^\s:@/]*+:)[^\s/]*@"), rf"\g<1>{REDACTED}@"),
    # key=value and "key": "value" text: libpq conninfo (password=…), env dumps, JSON, reprs.
    (
        re.compile(rf"(?i)((?:{_KEY_WORDS})[\"']?\s*[=:]\s*)(?:'[^']*'|\"[^\"]*\"|[^\s'\",;&}}]+)"),
        rf"\g<1>{REDACTED}",
    ),
    # A PEM private key (a service-account file's content), armor included.
    (
        re.compile(
            r"-----BEGIN[A-Z ]{0,40}PRIVATE KEY-----[^-]*+(?:-----END[A-Z ]{0,40}PRIVATE KEY-----)?"
        ),
        REDACTED,
    ),
)


def scrub(text: str) -> str:
    """
    Remove API keys, bearer tokens, private keys and passwords (in URLs and key=value text) from
    free text: error messages, log lines, tracebacks. Linear in the length of `text`.
    """
    for pattern, replacement in SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def sensitive(key: object) -> bool:
    """
    Whether a value stored under this key is secret wherever it appears.
    """
    name = str(key).lower()
    return name in SENSITIVE_KEYS or name.endswith(_SENSITIVE_ENDINGS)


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: REDACTED if sensitive(k) else _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_redact(v) for v in value)
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """
    structlog processor: the last line of defence for secrets never reaching logs.
    Runs after exceptions were rendered to text, so tracebacks are scrubbed too.
    """
    for key in list(event_dict):
        if key.startswith("_"):
            continue  # ProcessorFormatter's bookkeeping (_record, _from_structlog)
        if sensitive(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact(event_dict[key])
    return event_dict


def add_trace_ids(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """
    structlog processor: `trace_id` and `span_id` of the current span (broseph/tracing.py), when
    one is, so a traced job's log lines lead to its trace and back. Without tracing there is
    never a valid span: one context lookup, nothing added.
    """
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", trace.format_trace_id(context.trace_id))
        event_dict.setdefault("span_id", trace.format_span_id(context.span_id))
    return event_dict


# Tracebacks as plain text, never with local variables: the one exception renderer of both chains.
_render_exceptions = structlog.processors.ExceptionRenderer()


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
    Configure structlog and the stdlib root logger for this process (calling it again replaces
    the configuration). `procrastinate_job_lines` keeps procrastinate's own per-job INFO lines
    (a raw procrastinate worker's logging, for the benchmarks' baseline); broseph's workers
    leave them to broseph.job.
    """
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
    ]
    # Exceptions become text before redaction, so the scrubber sees the whole traceback.
    last: list[Any] = [_render_exceptions, redact_secrets]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[*shared, *last, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler()
    if not procrastinate_job_lines and logging.getLevelName(level) > logging.DEBUG:
        handler.addFilter(_drop_procrastinate_job_lines)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), *last],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs full request URLs at INFO; keep it at WARNING.
    logging.getLogger("httpx").setLevel(logging.WARNING)
