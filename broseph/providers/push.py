"""
The push port: the types job code speaks and the `PushSender` protocol, with no SDK behind them.

Job code sees only `PushTarget`, `PushMessage` and one `DeviceResult` per device, whose `Outcome`
says what to do next: nothing, disable the token, or retry later. The senders live apart:
`push_fcm` (firebase-admin, built only by the composition root, `broseph.services`),
`push_outbox` (development) and `LoggingPushSender` below — so importing this module (and the job
types, and `broseph.enqueue`) never loads firebase-admin, google-auth or aiohttp (the FCM
transport under firebase-admin, `aiohttp_transport`).

Device identifiers (FCM installation ids and legacy registration tokens) are secrets: they leave
the senders only inside the FCM request, never in logs, reprs or results.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Final, Literal, Protocol

import structlog

__all__ = [
    "MAX_BATCH",
    "REDACTED",
    "DeviceResult",
    "LoggingPushSender",
    "Outcome",
    "PushItem",
    "PushMessage",
    "PushSender",
    "PushTarget",
    "log_summary",
]

log = structlog.get_logger(__name__)

# send_each_async refuses more than 500 messages per call (FCM's own batch limit).
MAX_BATCH: Final = 500
# APNs rejects an apns-collapse-id longer than 64 bytes, failing the whole message.
_MAX_COLLAPSE_KEY_BYTES: Final = 64
REDACTED: Final = "[redacted]"


class Outcome(enum.StrEnum):
    """
    What one device's send came to, and so what the caller does next.
    """

    DELIVERED = "delivered"
    # The identifier will never work again: remove or disable the device.
    DEAD_TOKEN = "dead_token"
    # A passing failure (quota, FCM down, network): send again later, with backoff.
    RETRY = "retry"
    # Permanent for this message (bad payload, our credentials, APNs certificate): do not retry.
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class PushTarget:
    """
    One device to notify: a Firebase Installation ID (`fid`) or a legacy registration `token`.
    """

    device_id: uuid.UUID
    kind: Literal["fid", "token"]
    identifier: str

    def __post_init__(self) -> None:
        if self.kind not in ("fid", "token"):
            raise ValueError(f"PushTarget.kind must be 'fid' or 'token', not {self.kind!r}")
        if not isinstance(self.identifier, str) or not self.identifier:
            raise ValueError("PushTarget.identifier must be a non-empty string")

    def __repr__(self) -> str:
        # The identifier is a credential for pushing to this device: never print it.
        return (
            f"PushTarget(device_id={self.device_id!r}, kind={self.kind!r}, identifier={REDACTED})"
        )


@dataclasses.dataclass(frozen=True)
class PushMessage:
    """
    One notification, the same for every target: text, deep-link ids and a per-group collapse key.
    """

    title: str
    body: str
    data: dict[str, str]
    collapse_key: str | None
    # The notification type ("daily_prompt", "new_message", ...): logged, never sent.
    kind: str

    def __post_init__(self) -> None:
        # FCM data is string-to-string; the SDK would reject the whole batch at encode time.
        for key, value in self.data.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ValueError("PushMessage.data must map str to str")
        if self.collapse_key is not None and (
            not self.collapse_key or len(self.collapse_key.encode()) > _MAX_COLLAPSE_KEY_BYTES
        ):
            raise ValueError(
                f"PushMessage.collapse_key must be 1 to {_MAX_COLLAPSE_KEY_BYTES} bytes"
            )


@dataclasses.dataclass(frozen=True)
class DeviceResult:
    """
    The result for one target. Holds the device id, never the identifier.
    """

    device_id: uuid.UUID
    outcome: Outcome
    message_id: str | None = None
    # FCM's error code when it gave one ("UNREGISTERED", "QUOTA_EXCEEDED"), else the canonical
    # status ("UNAVAILABLE", "DEADLINE_EXCEEDED").
    error_code: str | None = None
    reason: str | None = None


@dataclasses.dataclass(frozen=True)
class PushItem:
    """
    One message to one device: what `PushSender.send_each` takes, one per request.
    """

    message: PushMessage
    target: PushTarget


class PushSender(Protocol):
    """
    Sends one message to many devices; the port job code depends on.
    """

    async def send(self, message: PushMessage, targets: Sequence[PushTarget]) -> list[DeviceResult]:
        """
        Send `message` to every target; one result per target, in the same order. Never raises
        for delivery problems: they are results.
        """
        ...

    async def send_each(self, items: Sequence[PushItem]) -> list[DeviceResult]:
        """
        Send each item's message to its target (messages may differ: one per member of a group
        event), at most `MAX_BATCH` per `send_each_async`; one result per item, in the same
        order. Never raises for delivery problems: they are results.
        """
        ...

    async def aclose(self) -> None:
        """
        Release connections; the sender is unusable afterwards.
        """
        ...


class LoggingPushSender:
    """
    The development sender: every target succeeds with a fake message id; logs counts only.
    """

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    async def send(self, message: PushMessage, targets: Sequence[PushTarget]) -> list[DeviceResult]:
        """
        Pretend to deliver to every target.
        """
        results = self._deliver(targets)
        log_summary("push.dev_sent", message, results, dry_run=False)
        return results

    async def send_each(self, items: Sequence[PushItem]) -> list[DeviceResult]:
        """
        Pretend to deliver every item.
        """
        results = self._deliver([item.target for item in items])
        if items:
            log_summary("push.dev_sent", items[0].message, results, dry_run=False)
        return results

    def _deliver(self, targets: Sequence[PushTarget]) -> list[DeviceResult]:
        return [
            DeviceResult(
                t.device_id, Outcome.DELIVERED, message_id=f"dev/messages/{next(self._ids)}"
            )
            for t in targets
        ]

    async def aclose(self) -> None:
        """
        Nothing to release.
        """


def log_summary(
    event: str, message: PushMessage, results: Sequence[DeviceResult], *, dry_run: bool
) -> None:
    """
    Log one send: counts per outcome and the notification type only.
    """
    counts = Counter(result.outcome for result in results)
    # Counts and the notification type only: no identifiers, titles, bodies or data.
    log.info(
        event,
        kind=message.kind,
        targets=len(results),
        dry_run=dry_run,
        **{outcome.value: counts.get(outcome, 0) for outcome in Outcome},
    )
