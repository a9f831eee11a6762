"""
The FCM push sender: one small class around firebase-admin's FCM client (`send_each_async`).

firebase-admin exceptions are translated here, at the boundary, into `push.DeviceResult`s, so
nothing else in broseph imports `firebase_admin`; only the composition root (`broseph.services`)
imports this module, when FIREBASE_CREDENTIALS_FILE is set. Under firebase-admin's httpx client
the bytes move over `aiohttp_transport.AiohttpTransport` (HTTP/1.1 keep-alive, cheaper per
message than httpcore's HTTP/2); credentials, encoding, retries and error classification stay
the SDK's.

Device identifiers are secrets: they leave this module only inside the FCM request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import warnings
from collections.abc import Sequence
from typing import Any, Final

import firebase_admin
import google.auth.credentials
import httpx
import structlog
from firebase_admin import _retry as firebase_retry
from firebase_admin import credentials as firebase_credentials
from firebase_admin import exceptions, messaging
from opentelemetry.trace import SpanKind

from broseph import tracing
from broseph.providers.aiohttp_transport import AiohttpTransport
from broseph.providers.push import (
    MAX_BATCH,
    REDACTED,
    DeviceResult,
    Outcome,
    PushItem,
    PushMessage,
    PushTarget,
    log_summary,
)

__all__ = ["MAX_CONNECTIONS", "FcmPushSender", "IncompatibleFirebaseAdminError", "classify"]

log = structlog.get_logger(__name__)

_MAX_REASON_CHARS: Final = 300
# HTTP/1.1 carries one request at a time per connection, so this bounds the requests in flight
# per process: a 500-message batch goes out 100 at a time, the rest queueing for a free
# connection (within `timeout_seconds`). 100 is what firebase-admin itself pools for its
# synchronous HTTP/1.1 sends to FCM (`pool_maxsize=100`); each connection's TLS set-up is paid
# once and then kept alive, and FCM is not asked for more sockets than the SDK's own sync path.
MAX_CONNECTIONS: Final = 100
_FCM_ERROR_TYPE: Final = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST_TYPE: Final = "type.googleapis.com/google.rpc.BadRequest"
# The request fields that carry the device identifier; an INVALID_ARGUMENT about one of them
# means the identifier itself is bad, not our message.
_TARGET_FIELDS: Final = frozenset({"message.token", "message.fid"})


class IncompatibleFirebaseAdminError(RuntimeError):
    """
    The installed firebase-admin lacks an internal this adapter relies on (see `_MessagingHooks`).
    """


class FcmPushSender:
    """
    The real sender: FCM HTTP v1 through firebase-admin's `send_each_async`.

    Build one per process, in the composition root: it owns a named firebase_admin App (so it never
    collides with a default app someone else initializes) and that App's HTTP connection pool.
    `dry_run` sends FCM's `validate_only`; `fcm_url` replaces `https://fcm.googleapis.com` (tests'
    stand-in); `timeout_seconds` bounds each HTTP request (the SDK's default is 120 s).

    firebase-admin still encodes every message, signs requests with google-auth credentials
    (refreshing them on expiry and on a 401), retries 500/503 and classifies errors; only the
    transport under its httpx client is ours (`AiohttpTransport`): HTTP/1.1 keep-alive over at
    most `MAX_CONNECTIONS` connections instead of httpcore's HTTP/2, about half the client CPU
    per message (bench 13). The trade: up to 100 TLS connections to FCM instead of one, each set
    up once and then reused, and at most 100 requests in flight (HTTP/2 multiplexes a batch).
    """

    def __init__(
        self,
        *,
        credentials: google.auth.credentials.Credentials | None = None,
        credentials_file: str | None = None,
        project_id: str,
        dry_run: bool = False,
        fcm_url: str | None = None,
        app_name: str = "broseph",
        timeout_seconds: float = 30.0,
    ) -> None:
        if credentials is not None and credentials_file is not None:
            raise ValueError("pass credentials or credentials_file, not both")
        if not project_id:
            raise ValueError("project_id is required")
        credential: Any
        if credentials is not None:
            credential = credentials
        elif credentials_file is not None:
            credential = firebase_credentials.Certificate(credentials_file)
        else:
            credential = firebase_credentials.ApplicationDefault()
        try:
            self._app = firebase_admin.initialize_app(
                credential,
                {"projectId": project_id, "httpTimeout": timeout_seconds},
                name=app_name,
            )
        except ValueError as error:
            raise ValueError(
                f"a firebase_admin app named {app_name!r} already exists: build one "
                "FcmPushSender per process, or give each its own app_name"
            ) from error
        try:
            self._hooks = _MessagingHooks(self._app)
            if fcm_url is not None:
                self._hooks.point_at(fcm_url, project_id)
            # The trust store is read now, when the SDK's own httpx client read it.
            self._hooks.replace_transport(
                AiohttpTransport(
                    max_connections=MAX_CONNECTIONS, ssl_context=httpx.create_ssl_context()
                )
            )
        except BaseException:
            # Free the app name so a corrected retry can use it. No sends happened, so the
            # service (if created) has no open connections; its cleanup calls asyncio.run(),
            # which needs a thread without a running loop (this one may have one).
            try:
                with concurrent.futures.ThreadPoolExecutor(1) as pool:
                    pool.submit(firebase_admin.delete_app, self._app).result()
            except Exception:
                pass  # the original error is the one worth raising
            raise
        self._dry_run = dry_run
        self._closed = False

    async def send(self, message: PushMessage, targets: Sequence[PushTarget]) -> list[DeviceResult]:
        """
        Send to every target in chunks of at most `MAX_BATCH`; one result per target, in order.
        """
        results = await self._send_items([PushItem(message, t) for t in targets])
        log_summary("push.sent", message, results, dry_run=self._dry_run)
        return results

    async def send_each(self, items: Sequence[PushItem]) -> list[DeviceResult]:
        """
        Send each item (its own message to its own device) in chunks of at most `MAX_BATCH`,
        one `send_each_async` per chunk; one result per item, in order.
        """
        results = await self._send_items(items)
        if items:
            log_summary("push.sent", items[0].message, results, dry_run=self._dry_run)
        return results

    async def _send_items(self, items: Sequence[PushItem]) -> list[DeviceResult]:
        if self._closed:
            raise RuntimeError("FcmPushSender is closed")
        results: list[DeviceResult] = []
        for start in range(0, len(items), MAX_BATCH):
            results.extend(await self._send_chunk(items[start : start + MAX_BATCH]))
        return results

    async def _send_chunk(self, chunk: Sequence[PushItem]) -> list[DeviceResult]:
        # One span per FCM batch, a child of the job's attempt span: counts and outcomes only,
        # never a device's identifier or the message's text.
        kind = chunk[0].message.kind
        with tracing.span(
            "fcm send",
            kind=SpanKind.CLIENT,
            attributes={
                "messaging.system": "fcm",
                "messaging.operation.type": "send",
                "messaging.batch.message_count": len(chunk),
                "broseph.push.kind": str(kind),
                "broseph.push.dry_run": self._dry_run,
            },
        ) as span:
            results = await self._send_batch(chunk, span)
            tracing.count_outcomes(span, "broseph.push", [str(r.outcome) for r in results])
            return results

    async def _send_batch(self, chunk: Sequence[PushItem], span: Any) -> list[DeviceResult]:
        kind = chunk[0].message.kind
        try:
            fcm_messages = [_fcm_message(item.message, item.target) for item in chunk]
            batch = await messaging.send_each_async(
                fcm_messages, dry_run=self._dry_run, app=self._app
            )
        except ValueError as error:
            # The SDK validates while encoding; the messages of a chunk are built alike, so a
            # rejection is permanent for all of them.
            log.warning("push.invalid_message", kind=kind, error_type=type(error).__name__)
            tracing.failed(span, error, f"invalid message: {type(error).__name__}")
            return [
                DeviceResult(i.target.device_id, Outcome.FAILED, error_code="INVALID_MESSAGE")
                for i in chunk
            ]
        except Exception as error:
            # Whole-batch failures (a credential refresh error escaping the SDK's gather(), as
            # UnknownError) say nothing about single devices. Some may have been delivered
            # already; a possible duplicate beats a lost notification, so retry them all.
            log.warning("push.batch_failed", kind=kind, error_type=type(error).__name__)
            code = error.code if isinstance(error, exceptions.FirebaseError) else "UNKNOWN"
            tracing.failed(span, error, f"batch failed: {type(error).__name__} ({code})")
            return [
                DeviceResult(
                    i.target.device_id, Outcome.RETRY, error_code=code, reason=type(error).__name__
                )
                for i in chunk
            ]
        return [
            _result(item.target, response)
            for item, response in zip(chunk, batch.responses, strict=True)
        ]

    async def aclose(self) -> None:
        """
        Close the HTTP pool in this event loop (the aiohttp session with it), then delete the
        firebase_admin app.
        """
        if self._closed:
            return
        self._closed = True
        await self._hooks.close_async_client()
        # delete_app() runs the service's close(), which calls asyncio.run() and so raises inside
        # a running loop; in a worker thread it only re-closes the already closed client.
        await asyncio.to_thread(firebase_admin.delete_app, self._app)


class _MessagingHooks:
    """
    Every use of firebase-admin internals, in one place, checked when the sender is built.

    firebase-admin 7.7 has no endpoint option (and FCM no emulator), so pointing it at a stand-in
    means rewriting the per-app `_MessagingService._fcm_url`, the full send URL it builds from
    `FCM_URL` in `__init__` (patching the class constant would be too late, and global). Closing the
    app's httpx pool needs `_async_client`, because `delete_app()` closes it with `asyncio.run()`,
    which fails inside a running loop. Swapping the transport needs that client's `_mounts`: one
    `_retry.HttpxRetryTransport` per scheme, each around an `httpx.AsyncHTTPTransport` in
    `_wrapped_transport`, which is the one object replaced (the retry, auth flow and error
    handling above it stay the SDK's). If an upgrade renames any of these, construction fails
    here, and `tests/test_push_provider.py` fails with it — update both together.
    """

    def __init__(self, app: Any) -> None:
        get_service = getattr(messaging, "_get_messaging_service", None)
        if get_service is None:
            raise IncompatibleFirebaseAdminError(
                "firebase_admin.messaging._get_messaging_service is gone; "
                f"broseph's push adapter was written against firebase-admin 7.7 "
                f"(installed: {firebase_admin.__version__})"
            )
        service = get_service(app)
        if not isinstance(getattr(service, "_fcm_url", None), str):
            raise IncompatibleFirebaseAdminError(
                "firebase-admin's messaging service has no _fcm_url; the FCM URL override in "
                "broseph.providers.push_fcm needs updating "
                f"(installed: {firebase_admin.__version__})"
            )
        if not callable(getattr(getattr(service, "_async_client", None), "aclose", None)):
            raise IncompatibleFirebaseAdminError(
                "firebase-admin's messaging service has no _async_client.aclose(); "
                "FcmPushSender.aclose needs updating "
                f"(installed: {firebase_admin.__version__})"
            )
        self._service = service
        self._retry_transports = _retry_transports(service._async_client)

    def replace_transport(self, transport: httpx.AsyncBaseTransport) -> None:
        """
        Put `transport` under the SDK's retry transports, for both schemes.
        """
        for retry_transport in self._retry_transports:
            # Never opened, so the replaced httpx transports hold no connection to close.
            retry_transport._wrapped_transport = transport

    @property
    def fcm_url(self) -> str:
        """
        The send URL the SDK will POST to.
        """
        url: str = self._service._fcm_url
        return url

    def point_at(self, base_url: str, project_id: str) -> None:
        """
        Send to `{base_url}/v1/projects/{project_id}/messages:send` instead of FCM.
        """
        self._service._fcm_url = f"{base_url.rstrip('/')}/v1/projects/{project_id}/messages:send"

    async def close_async_client(self) -> None:
        """
        Close the service's httpx pool in the current loop (the one its connections belong to).
        """
        await self._service._async_client.aclose()


def _retry_transports(async_client: Any) -> list[Any]:
    """
    The SDK's `HttpxRetryTransport`s, one per scheme; raises naming what changed if they moved.
    """
    retry_class = getattr(firebase_retry, "HttpxRetryTransport", None)
    mounts = getattr(async_client, "_mounts", None)
    if (
        retry_class is None
        or not isinstance(mounts, dict)
        or set(mounts) != {"http://", "https://"}
    ):
        raise IncompatibleFirebaseAdminError(
            "firebase-admin's async FCM client no longer has _mounts of "
            "_retry.HttpxRetryTransport for http:// and https://; the transport swap in "
            f"broseph.providers.push_fcm needs updating (installed: {firebase_admin.__version__})"
        )
    for scheme, transport in mounts.items():
        if not isinstance(transport, retry_class) or not isinstance(
            getattr(transport, "_wrapped_transport", None), httpx.AsyncHTTPTransport
        ):
            raise IncompatibleFirebaseAdminError(
                f"firebase-admin's {scheme} transport is no HttpxRetryTransport around an "
                "httpx.AsyncHTTPTransport in _wrapped_transport; the transport swap in "
                "broseph.providers.push_fcm needs updating "
                f"(installed: {firebase_admin.__version__})"
            )
    return list(mounts.values())


def _fcm_message(message: PushMessage, target: PushTarget) -> Any:
    android = None
    apns = None
    if message.collapse_key is not None:
        # One collapse key per group: a newer notification replaces an undelivered older one on
        # both platforms instead of stacking up.
        android = messaging.AndroidConfig(collapse_key=message.collapse_key)
        apns = messaging.APNSConfig(headers={"apns-collapse-id": message.collapse_key})
    common: dict[str, Any] = {
        "notification": messaging.Notification(title=message.title, body=message.body),
        "data": dict(message.data),
        "android": android,
        "apns": apns,
    }
    if target.kind == "fid":
        return messaging.Message(fid=target.identifier, **common)
    with warnings.catch_warnings():
        # `token=` is deprecated since firebase-admin 7.5 but is the only way to reach devices
        # that registered before they reported a Firebase Installation ID. Silenced here only.
        warnings.simplefilter("ignore", DeprecationWarning)
        return messaging.Message(token=target.identifier, **common)


def _result(target: PushTarget, response: Any) -> DeviceResult:
    error = response.exception
    if error is None and response.message_id is not None:
        return DeviceResult(target.device_id, Outcome.DELIVERED, message_id=response.message_id)
    outcome = classify(error)
    fcm_code, _ = _error_details(error)
    code = fcm_code or getattr(error, "code", None) or "UNKNOWN"
    return DeviceResult(
        target.device_id,
        outcome,
        error_code=str(code),
        reason=_reason(error, target),
    )


def classify(error: BaseException | None) -> Outcome:
    """
    Map one firebase-admin error to what the caller should do. Subclasses come first:
    UnregisteredError is a NotFoundError, QuotaExceededError a ResourceExhaustedError.
    """
    if isinstance(error, messaging.UnregisteredError | messaging.SenderIdMismatchError):
        return Outcome.DEAD_TOKEN
    if isinstance(error, exceptions.InvalidArgumentError):
        return Outcome.DEAD_TOKEN if _names_the_target(error) else Outcome.FAILED
    if isinstance(
        error,
        messaging.QuotaExceededError
        | exceptions.ResourceExhaustedError
        | exceptions.UnavailableError
        | exceptions.InternalError
        | exceptions.DeadlineExceededError,
    ):
        return Outcome.RETRY
    if isinstance(error, exceptions.FirebaseError) and isinstance(
        error.cause, httpx.TransportError
    ):
        # A dropped connection or protocol error surfaces as UnknownError around the httpx error.
        return Outcome.RETRY
    # ThirdPartyAuthError (APNs / web push credentials), our own auth, other 4xx: retrying the
    # same request cannot help, and the device is not to blame.
    return Outcome.FAILED


def _names_the_target(error: Any) -> bool:
    _, field_violations = _error_details(error)
    if field_violations & _TARGET_FIELDS:
        return True
    # FCM's wording for a malformed token; older responses carry no field violation.
    text = str(error).lower()
    return "registration token" in text or "installation id" in text


def _error_details(error: Any) -> tuple[str | None, set[str]]:
    """
    FCM's `errorCode` and the request fields it complains about, read from the error body.
    """
    response = getattr(error, "http_response", None)
    if response is None:
        return None, set()
    try:
        body = response.json()
        details = body["error"].get("details", [])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, set()
    fcm_code: str | None = None
    fields: set[str] = set()
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, dict):
            continue
        if detail.get("@type") == _FCM_ERROR_TYPE and isinstance(detail.get("errorCode"), str):
            fcm_code = detail["errorCode"]
        if detail.get("@type") == _BAD_REQUEST_TYPE:
            for violation in detail.get("fieldViolations") or []:
                if isinstance(violation, dict) and isinstance(violation.get("field"), str):
                    fields.add(violation["field"])
    return fcm_code, fields


def _reason(error: BaseException | None, target: PushTarget) -> str:
    # FCM does not echo identifiers, but an error message is free text: scrub it anyway, since
    # results end up in the outbox table and in logs.
    text = str(error) if error is not None else "no message id in FCM response"
    return text.replace(target.identifier, REDACTED)[:_MAX_REASON_CHARS]
