"""
Error reporting to Sentry (optional: `pip install 'broseph[sentry]'` and SENTRY_DSN).

What is sent, and only this:
- a job's **final** failure — the attempt after which it ends `failed` (its retry budget spent, or
  a permanent error such as invalid params or a missing record) — once, tagged `job_type`,
  `record_id`, `job_id` and `attempt`. Attempts that will be retried are not reported, nor are
  cancels and shutdown aborts (the job is not failed), nor the BullMQ ingress's quarantined
  messages (no job exists; they are in `broseph.ingress_quarantine` with their reason);
- a cron check-in (`in_progress`, then `ok` or `error`) for every tick of the job catalogue's
  periodic tasks (`prompt_fanout`, `prompt_publish`, `prompt_reminders`, `engagement_nightly`),
  with the schedule from the same setting that drives the tick, so a tick that never runs is a
  missed check-in.

What is never sent: local variables, breadcrumbs, request data, the modules list — the SDK's
default integrations are off, so nothing is captured but what this module captures — and every
string of an event passes through the logs' scrubber (`broseph.logs.scrub`, values under
sensitive keys replaced), after every string of the failed job's params (its payload text) has been
replaced by `[payload]`.

Nothing is imported, and nothing is initialised, unless SENTRY_DSN is set: `start` is called by
the worker (broseph/ops/worker_app.py) before its first job and `stop` when it stops.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.metadata
import uuid
from types import ModuleType
from typing import Any, Final

from procrastinate import jobs as procrastinate_jobs

from broseph import engine
from broseph.logs import REDACTED, scrub, sensitive
from broseph.problems import FIX_CONFIG, Problem
from broseph.settings import Settings, reveal

PAYLOAD: Final = "[payload]"
# How late a tick may check in before Sentry calls it missed: a tick is deferred when due but run
# when a worker takes it from the `periodic` queue, behind whatever jobs are before it.
CHECKIN_MARGIN_MINUTES: Final = 5
# How long a tick may stay `in_progress` before Sentry calls it timed out (a fan-out over every
# group, chunk by chunk, is the longest).
MAX_RUNTIME_MINUTES: Final = 30
FLUSH_SECONDS: Final = 5.0
# Payload strings shorter than this are left in place: replacing every "en" or "a" would leave
# nothing readable, and so short a string says nothing. Ids (UUIDs) are not text and stay too:
# the record id is a tag.
MIN_PAYLOAD_TEXT: Final = 4

# The SDK, once `start` has initialised it; None: reporting is off.
_sdk: ModuleType | None = None
# The failed job's payload strings while its event is captured (`before_send` runs in the
# capturing call, so a context variable reaches it).
_payload_texts: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "broseph_payload_texts", default=frozenset()
)


def start(settings: Settings) -> bool:
    """
    Initialise the SDK if SENTRY_DSN is set (True), else do nothing (False). Raises a Problem
    when the SDK is not installed or the DSN is not one.
    """
    global _sdk
    dsn = reveal(settings.sentry_dsn)
    if not dsn:
        return False
    try:
        import sentry_sdk
        from sentry_sdk.utils import BadDsn
    except ImportError:
        raise Problem(
            "SENTRY_DSN is set but sentry-sdk is not installed",
            "pip install 'broseph[sentry]', or unset SENTRY_DSN",
            exit_code=FIX_CONFIG,
        ) from None
    try:
        sentry_sdk.init(
            dsn=dsn,
            environment=settings.sentry_environment,
            release=settings.sentry_release or f"broseph@{importlib.metadata.version('broseph')}",
            # Only what this module captures: no logging integration (it would report every
            # retry's ERROR line, with breadcrumbs of unscrubbed stdlib records), no excepthook,
            # no argv, no modules list, no auto-enabled integrations (httpx, redis…).
            default_integrations=False,
            auto_enabling_integrations=False,
            include_local_variables=False,  # a frame's settings or params, printed whole
            # (send_default_pii is left at its default, False: no user, IP or headers.)
            max_breadcrumbs=0,
            before_send=_before_send,
        )
    except BadDsn:
        # Not the DSN itself: it carries the project's key.
        raise Problem(
            "SENTRY_DSN is not a Sentry DSN",
            "copy it from the project's Client Keys page (https://KEY@HOST/PROJECT_ID),"
            " or unset it",
            exit_code=FIX_CONFIG,
        ) from None
    _sdk = sentry_sdk
    return True


def stop() -> None:
    """
    Send what is still queued (a final failure just before a shutdown) and close the client.
    """
    global _sdk
    if _sdk is None:
        return
    sdk, _sdk = _sdk, None
    sdk.flush(timeout=FLUSH_SECONDS)
    sdk.get_client().close(timeout=FLUSH_SECONDS)
    # Back to no client, as before `start`: the process may go on (a worker embedded in a
    # program, or the next one started in it).
    sdk.Scope.get_global_scope().set_client(None)


def final_failure(
    job_type: str,
    record_id: uuid.UUID | None,
    job: procrastinate_jobs.Job,
    exc: BaseException,
) -> None:
    """
    Report a job's final failure (called once per job, by broseph/lifecycle.py).
    """
    if _sdk is None:
        return
    tags = {
        "job_type": job_type,
        "record_id": str(record_id) if record_id is not None else "none",
        "job_id": str(job.id),
        "attempt": str(job.attempts + 1),
    }
    token = _payload_texts.set(_strings(_payload_of(job)))
    try:
        _sdk.capture_exception(exc, tags=tags)
    finally:
        _payload_texts.reset(token)


def check_ins(slug: str, cron: str) -> contextlib.AbstractContextManager[Any]:
    """
    Around one periodic tick: the SDK's `monitor` (check-ins `in_progress`, then `ok`, or `error`
    if the tick raises), whose monitor config carries `cron`; nothing when reporting is off.
    """
    if _sdk is None:
        return contextlib.nullcontext()
    monitor: contextlib.AbstractContextManager[Any] = _sdk.monitor(
        monitor_slug=slug, monitor_config=monitor_config(cron)
    )
    return monitor


def monitor_config(cron: str) -> dict[str, Any]:
    """
    A Sentry monitor's config for a procrastinate cron. procrastinate reads ticks in UTC; its
    optional sixth field (seconds) has no Sentry equivalent and is left out: Sentry expects a
    check-in in each minute the other five fields name.
    """
    fields = cron.split()
    return {
        "schedule": {"type": "crontab", "value": " ".join(fields[:5])},
        "timezone": "UTC",
        "checkin_margin": CHECKIN_MARGIN_MINUTES,
        "max_runtime": MAX_RUNTIME_MINUTES,
    }


def _payload_of(job: procrastinate_jobs.Job) -> list[Any]:
    # The record's params (read with the queue row by the worker's fetch) and the queue copy.
    record = engine.record_of(job)
    return [record.params if record is not None else None, job.task_kwargs]


def _strings(value: Any) -> frozenset[str]:
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if len(item) >= MIN_PAYLOAD_TEXT and not _is_uuid(item):
                found.add(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return frozenset(found)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _before_send(event: Any, hint: dict[str, Any]) -> Any:
    """
    Every event, last thing before it leaves: payload strings out, then the logs' scrubber.
    """
    # Longest first: a payload string inside a longer one is replaced with it.
    texts = sorted(_payload_texts.get(), key=len, reverse=True)
    return _clean(event, texts)


def _clean(value: Any, texts: list[str]) -> Any:
    if isinstance(value, str):
        for text in texts:
            value = value.replace(text, PAYLOAD)
        return scrub(value)
    if isinstance(value, dict):
        return {k: REDACTED if sensitive(k) else _clean(v, texts) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v, texts) for v in value]
    return value
