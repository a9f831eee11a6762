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
