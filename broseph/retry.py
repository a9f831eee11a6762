"""
Retry policy: procrastinate's retry machinery, with our rules on top.

Exponential backoff per job type; a producer's own budget (BullMQ `attempts` / `backoff`, carried
as `_retry` in the queue args) overrides it; permanent errors never retry; a job interrupted by a
worker shutdown is always requeued.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from typing import Any

from procrastinate import exceptions
from procrastinate.jobs import Job
from procrastinate.retry import BaseRetryStrategy, RetryDecision

from broseph.errors import PermanentJobError
from broseph.jobs.base import JobType


@dataclass(frozen=True)
class Budget:
    max_attempts: int
    base_seconds: float
    exponential: bool
    cap_seconds: float

    def delay(self, attempts_made: int) -> float:
        factor = 2.0 ** max(attempts_made - 1, 0) if self.exponential else 1.0
        return float(min(self.base_seconds * factor, self.cap_seconds))


def budget(job_type: JobType, task_kwargs: dict[str, Any]) -> Budget:
    """
    The retry budget of one job: the producer's override, else its type's.

    Enqueue checks the override (migrations/0015); one stored before that, or by hand, may hold
    anything — a value that is not a usable number reads as absent, so the job still runs.
    """
    override = task_kwargs.get("_retry")
    if not isinstance(override, dict):
        override = {}
    attempts = _number(override.get("max_attempts"), integral=True)
    base = _number(override.get("backoff_seconds"), integral=False)
    return Budget(
        max_attempts=int(attempts)
        if attempts is not None and attempts >= 1
        else job_type.max_attempts,
        base_seconds=base if base is not None and base >= 0 else job_type.backoff_base_seconds,
        exponential=override.get("backoff_type", "exponential") != "fixed",
        cap_seconds=job_type.backoff_cap_seconds,
    )


def _number(value: Any, *, integral: bool) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or (integral and value != int(value)):
        return None
    return float(value)


@dataclass(frozen=True)
class JobRetry(BaseRetryStrategy):
    """
    procrastinate RetryStrategy for one job type.
    """

    job_type: JobType

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if isinstance(exception, exceptions.JobAborted):
            # Only reached for a shutdown abort (procrastinate skips retry for a cancel): requeue
            # at once, without spending an attempt's backoff.
            return RetryDecision(retry_at=_in_seconds(0))
        if isinstance(exception, PermanentJobError):
            return None
        limits = budget(self.job_type, job.task_kwargs)
        attempts_made = job.attempts + 1  # procrastinate counts previous attempts only
        if attempts_made >= limits.max_attempts:
            return None
        return RetryDecision(retry_at=_in_seconds(limits.delay(attempts_made)))


def _in_seconds(seconds: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
