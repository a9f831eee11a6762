"""
The decision logic, as pure tables: what a notification's deliveries come to, whether a user wants
a notification at all, what a new_message push says, how an FCM error is classified, and a job's
retry budget. No database, no network: one row per branch. End-to-end tests check states and
counts; the wording lives here.
"""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest
from firebase_admin import exceptions, messaging

from broseph.jobs.base import JobType
from broseph.jobs.process_engagement import ProcessEngagement
from broseph.jobs.send_notification import outcome, refusal
from broseph.notify.content import messages_body
from broseph.notify.delivery import Summary
from broseph.providers.push import Outcome
from broseph.providers.push_fcm import classify
from broseph.retry import Budget, budget


def summary(**counts: Any) -> Summary:
    fields: dict[str, Any] = {
        "delivered": 0, "unconfirmed": 0, "dead_token": 0, "failed": 0, "retry": 0,
        "error_codes": "",
    }  # fmt: skip
    return Summary(**{**fields, **counts})


# --- a notification's outcome ---------------------------------------------------------------

# (counts, last attempt?) → (status, reason, error to retry with)
OUTCOMES = [
    ({}, False, ("skipped", "no live devices", None)),
    ({"delivered": 3}, False, ("sent", None, None)),
    ({"unconfirmed": 1}, False, ("sent", None, None)),
    (
        {"delivered": 2, "dead_token": 1},
        False,
        ("sent", "1 dead device(s) disabled", None),
    ),
    (
        {"delivered": 1, "dead_token": 1, "failed": 2, "error_codes": "THIRD_PARTY_AUTH_ERROR"},
        False,
        ("sent", "1 dead device(s) disabled; 2 device(s) failed: THIRD_PARTY_AUTH_ERROR", None),
    ),
    ({"dead_token": 2}, False, ("failed", "all devices dead (2 disabled)", None)),
    (
        {"dead_token": 1, "failed": 1, "error_codes": "INVALID_ARGUMENT"},
        False,
        ("failed", "no device reached: 1 dead, INVALID_ARGUMENT", None),
    ),
    ({"failed": 1}, False, ("failed", "no device reached: 0 dead, unknown error", None)),
    (
        {"delivered": 2, "retry": 1, "error_codes": "QUOTA_EXCEEDED"},
        False,
        (
            "pending",
            "retrying 1 device(s): QUOTA_EXCEEDED",
            "push to 1 device(s) to be retried: QUOTA_EXCEEDED",
        ),
    ),
    (
        {"delivered": 2, "retry": 1, "error_codes": "QUOTA_EXCEEDED"},
        True,
        ("sent", *["1 device(s) not reached after 3 attempts: QUOTA_EXCEEDED"] * 2),
    ),
    (
        {"retry": 2, "error_codes": "UNAVAILABLE"},
        True,
        ("failed", *["2 device(s) not reached after 3 attempts: UNAVAILABLE"] * 2),
    ),
]


@pytest.mark.parametrize(("counts", "last", "expected"), OUTCOMES)
def test_a_notifications_outcome(counts: dict[str, Any], last: bool, expected: tuple) -> None:
    assert outcome(summary(**counts), attempt=3, last_attempt=last) == expected


@pytest.mark.parametrize(
    ("enabled", "is_member", "muted", "expected"),
    [
        (True, True, False, None),
        (False, True, False, "new_prompt notifications are off in the user's preferences"),
        (False, False, True, "new_prompt notifications are off in the user's preferences"),
        (True, False, False, "the user is not a member of the group"),
        (True, False, True, "the user is not a member of the group"),
        (True, True, True, "group muted"),
    ],
)
def test_whether_the_user_wants_it(
    enabled: bool, is_member: bool, muted: bool, expected: str | None
) -> None:
    assert refusal("new_prompt", enabled=enabled, is_member=is_member, muted=muted) == expected


# --- what a new_message push says -----------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "senders", "names", "body"),
    [
        (1, 1, ["Ana"], "Ana sent a message"),
        (1, 1, [], "Someone sent a message"),
        (4, 1, ["Ana"], "4 new messages from Ana"),
        (4, 2, ["Ana"], "4 new messages from Ana"),  # a sender without a profile
        (5, 2, ["Ben", "Ana"], "5 new messages from Ben and Ana"),
        (9, 3, ["Ana", "Ben"], "9 new messages from Ana, Ben and 1 more"),
        (50, 12, ["Ana", "Ben"], "50 new messages from Ana, Ben and 10 more"),
    ],
)
def test_the_new_message_body(count: int, senders: int, names: list[str], body: str) -> None:
    assert messages_body(count, senders, names) == body


# --- FCM errors -----------------------------------------------------------------------------


def _bad_request(field: str) -> httpx.Response:
    detail = {
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [{"field": field, "description": "invalid"}],
    }
    return httpx.Response(400, json={"error": {"status": "INVALID_ARGUMENT", "details": [detail]}})


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (messaging.UnregisteredError("gone"), Outcome.DEAD_TOKEN),
        (messaging.SenderIdMismatchError("other sender"), Outcome.DEAD_TOKEN),
        (
            exceptions.InvalidArgumentError("bad", http_response=_bad_request("message.token")),
            Outcome.DEAD_TOKEN,
        ),
        (
            exceptions.InvalidArgumentError("bad", http_response=_bad_request("message.fid")),
            Outcome.DEAD_TOKEN,
        ),
        (
            exceptions.InvalidArgumentError("The registration token is not valid"),
            Outcome.DEAD_TOKEN,
        ),
        (
            exceptions.InvalidArgumentError("bad", http_response=_bad_request("message.data")),
            Outcome.FAILED,
        ),
        (exceptions.InvalidArgumentError("message too big"), Outcome.FAILED),
        (messaging.QuotaExceededError("slow down"), Outcome.RETRY),
        (exceptions.ResourceExhaustedError("busy"), Outcome.RETRY),
        (exceptions.UnavailableError("down"), Outcome.RETRY),
        (exceptions.InternalError("oops"), Outcome.RETRY),
        (exceptions.DeadlineExceededError("slow"), Outcome.RETRY),
        (exceptions.UnknownError("io", cause=httpx.ConnectError("refused")), Outcome.RETRY),
        (exceptions.UnknownError("strange"), Outcome.FAILED),
        (messaging.ThirdPartyAuthError("APNs certificate"), Outcome.FAILED),
        (exceptions.PermissionDeniedError("our credentials"), Outcome.FAILED),
        (exceptions.UnauthenticatedError("our token"), Outcome.FAILED),
        (None, Outcome.FAILED),  # a response with neither a message id nor an error
    ],
    ids=lambda value: type(value).__name__ if not isinstance(value, Outcome) else value.value,
)
def test_an_fcm_error_is_classified(error: BaseException | None, expected: Outcome) -> None:
    assert classify(error) is expected


# --- retry budgets --------------------------------------------------------------------------

JOB = JobType(
    name="Table",
    payload=ProcessEngagement,
    handle=None,  # type: ignore[arg-type]  (never run)
    queue="default",
    max_attempts=5,
    backoff_base_seconds=2.0,
    backoff_cap_seconds=60.0,
)
OWN = Budget(max_attempts=5, base_seconds=2.0, exponential=True, cap_seconds=60.0)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (None, OWN),
        ({}, OWN),
        ({"max_attempts": 3}, Budget(3, 2.0, True, 60.0)),
        ({"backoff_seconds": 0}, Budget(5, 0.0, True, 60.0)),
        ({"backoff_seconds": 1.5, "backoff_type": "fixed"}, Budget(5, 1.5, False, 60.0)),
        ({"backoff_type": "exponential"}, OWN),
        # Anything unusable reads as absent: the job still runs on its type's budget.
        ({"max_attempts": 0}, OWN),
        ({"max_attempts": 2.5}, OWN),
        ({"max_attempts": True}, OWN),
        ({"max_attempts": "3"}, OWN),
        ({"backoff_seconds": -1}, OWN),
        ({"backoff_seconds": math.nan}, OWN),
        ({"backoff_seconds": math.inf}, OWN),
        ("not a dict", OWN),
    ],
)
def test_a_jobs_retry_budget(override: Any, expected: Budget) -> None:
    kwargs = {} if override is None else {"_retry": override}
    assert budget(JOB, kwargs) == expected


@pytest.mark.parametrize(
    ("budget_", "delays"),
    [
        (OWN, [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]),
        (Budget(5, 1.5, False, 60.0), [1.5] * 7),
        (Budget(5, 0.0, True, 60.0), [0.0] * 7),
        (Budget(5, 100.0, False, 60.0), [60.0] * 7),
    ],
)
def test_the_delay_after_each_attempt(budget_: Budget, delays: list[float]) -> None:
    assert [budget_.delay(attempts) for attempts in range(1, 8)] == delays
