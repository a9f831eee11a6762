"""
Errors job code raises; the lifecycle turns them into record states.
"""

from __future__ import annotations


class PermanentJobError(Exception):
    """
    The job can never succeed (missing record or subject, invalid params): fail now, no retry.
    """


class RetryableJobError(Exception):
    """
    A passing failure (an outside service down, a rate limit): retry with the job type's backoff.
    """


class Snooze(Exception):
    """
    Not now, and nothing failed (no rate budget left, a 429 from an outside service): the job
    waits `seconds` and runs again WITHOUT spending an attempt or logging a failure; its record
    shows `reason` (broseph/lifecycle.py, the worker's finish in broseph/engine.py).
    """

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(f"snoozed for {seconds:.1f} s: {reason}")
        self.seconds = seconds
        self.reason = reason
