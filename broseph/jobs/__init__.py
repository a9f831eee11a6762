"""
The catalogue of job types. A new job type = one module here + one line in `_MODULES`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broseph.jobs import (
    deliver_group_event,
    generate_prompt,
    notify_members,
    process_engagement,
    send_notification,
)
from broseph.jobs.base import JobPayload, JobType, Periodic

_MODULES = (
    process_engagement,
    generate_prompt,
    send_notification,
    notify_members,
    deliver_group_event,
)

CATALOGUE: dict[str, JobType] = {m.JOB.name: m.JOB for m in _MODULES}
PERIODIC: tuple[Periodic, ...] = tuple(p for m in _MODULES for p in getattr(m, "PERIODIC", ()))


class UnknownJobType(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown job type {name!r} (known: {', '.join(sorted(CATALOGUE))})")
        self.name = name


def get(name: str) -> JobType:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise UnknownJobType(name) from None


def payload_for(job_type: str, params: Mapping[str, Any]) -> JobPayload:
    """
    Validate raw params (CLI, ingress) with the job type's model; raises ValueError subclasses
    (`UnknownJobType` is a LookupError).
    """
    return get(job_type).payload.model_validate(dict(params))
