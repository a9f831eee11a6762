"""
How values look on the dashboard's pages: times, ages, JSON — with secrets masked.

Params are shown (they are ids); anything under a key that names a secret (device tokens, FCM
ids, API keys, passwords, message bodies: `broseph.logs.SENSITIVE_KEYS`, in any spelling —
`deviceToken`, `api-key`) is masked, and free text is scrubbed of API keys, bearer tokens and
URL passwords (`broseph.logs.scrub`). Jinja escapes whatever is left.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

from broseph import logs

_SECRET_KEYS = frozenset(re.sub(r"[^a-z0-9]", "", key) for key in logs.SENSITIVE_KEYS)
_SECRET_ENDINGS = re.compile(r"(token|secret|password|passwd|apikey|credential|authorization)s?$")
# How much of a payload a page shows (a quarantined job can be megabytes).
MAX_SHOWN = 4000
# The functions below that the templates use as Jinja filters (`{{ job.created_at|when }}`).
FILTERS = ("when", "age", "ago", "pretty", "payload", "text")


def secret_key(key: object) -> bool:
    """
    Does this key name a secret, however it is spelled (device_token, deviceToken, API-Key)?
    """
    flat = re.sub(r"[^a-z0-9]", "", str(key).lower())
    return flat in _SECRET_KEYS or _SECRET_ENDINGS.search(flat) is not None


def redact(value: Any) -> Any:
    """
    A copy of a JSON value with the values of secret keys masked and strings scrubbed.
    """
    if isinstance(value, dict):
        return {k: logs.REDACTED if secret_key(k) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return logs.scrub(value)
    return value


def pretty(value: Any) -> str:
    """
    A JSON value as indented text, secrets masked, cut at MAX_SHOWN characters.
    """
    if value is None:
        return ""
    return _cut(json.dumps(redact(value), indent=2, ensure_ascii=False, default=str))


def payload(raw: str) -> str:
    """
    A raw payload as received (JSON text, maybe invalid): parsed and masked when it is JSON,
    otherwise masked by pattern (secret-named string fields, then scrubbing).
    """
    try:
        return pretty(json.loads(raw))
    except (ValueError, RecursionError):
        masked = re.sub(
            r'("([^"\\]*)"\s*:\s*)"(?:[^"\\]|\\.)*"',
            lambda m: f'{m.group(1)}"{logs.REDACTED}"' if secret_key(m.group(2)) else m.group(0),
            raw[: MAX_SHOWN * 2],
        )
        return _cut(logs.scrub(masked))


def text(value: str | None) -> str:
    """
    Free text from the database (last errors): scrubbed and cut.
    """
    return _cut(logs.scrub(value)) if value else ""


def when(value: datetime.datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def age(seconds: float | None) -> str:
    """
    A duration for people: 42s, 5m 03s, 3h 12m, 2d 4h.
    """
    if seconds is None:
        return ""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def ago(value: datetime.datetime | None, now: datetime.datetime) -> str:
    if value is None:
        return ""
    delta = (now - value).total_seconds()
    return f"{age(delta)} ago" if delta >= 0 else f"in {age(-delta)}"


def _cut(shown: str) -> str:
    if len(shown) <= MAX_SHOWN:
        return shown
    return shown[:MAX_SHOWN] + f"\n… ({len(shown) - MAX_SHOWN:,} more characters not shown)"
