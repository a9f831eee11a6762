"""
The push adapter against the FCM stand-in: the real firebase-admin SDK, real HTTP, no SDK mocks.
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import gzip
import json
import logging
import socket
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from importlib import metadata
from typing import Any

import aiohttp
import firebase_admin
import google.auth.credentials
import httpx
import pytest
import pytest_asyncio
import structlog.testing
from firebase_admin import _retry as firebase_retry
from firebase_admin import messaging
from google.oauth2.credentials import Credentials

from broseph.providers import aiohttp_transport, push_fcm
from broseph.providers.aiohttp_transport import AiohttpTransport
from broseph.providers.push import (
    DeviceResult,
    LoggingPushSender,
    Outcome,
    PushMessage,
    PushSender,
    PushTarget,
)
from broseph.providers.push_fcm import FcmPushSender
from tests.standins.fcm_server import FcmStandIn

pytestmark = pytest.mark.asyncio(loop_scope="session")

PROJECT_ID = "broseph-test"
MESSAGE = PushMessage(
    title="Nightly prompt",
    body="What song is stuck in your head? secret-body-text",
    data={"group_id": "g-1", "prompt_id": "p-9"},
    collapse_key="group-g-1",
    kind="daily_prompt",
)


def fid_target(name: str) -> PushTarget:
    return PushTarget(uuid.uuid4(), "fid", f"fid-{name}-{uuid.uuid4().hex}")


def token_target(name: str) -> PushTarget:
    return PushTarget(uuid.uuid4(), "token", f"tok-{name}:{uuid.uuid4().hex}")


class RefreshableCredentials(google.auth.credentials.Credentials):
    """
    Bearer credentials whose refresh succeeds offline, as a service account's would online.
    """

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.token = "fake"
        self.refreshes = 0

    def refresh(self, request: Any) -> None:
        self.refreshes += 1
        self.token = f"fake-{self.refreshes}"


def fake_credentials() -> Credentials:
    """
    A bearer token that is never refreshed (and cannot be): no network, no key file.
    """
    return Credentials(token="fake")  # type: ignore[no-untyped-call]


def new_sender(standin: FcmStandIn | None, **kwargs: Any) -> FcmPushSender:
    """
    A sender on its own uniquely named app, so tests that need special settings don't collide.
    """
    kwargs.setdefault("app_name", f"broseph-test-{uuid.uuid4().hex[:8]}")
    kwargs.setdefault("credentials", fake_credentials())
    kwargs.setdefault("fcm_url", standin.base_url if standin is not None else None)
    return FcmPushSender(project_id=PROJECT_ID, **kwargs)


@pytest.fixture(scope="module")
def standin() -> Iterator[FcmStandIn]:
    with FcmStandIn() as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sender(standin: FcmStandIn) -> AsyncIterator[FcmPushSender]:
    # One long-lived app for the module, as in production; aclose() runs inside the loop.
    fcm = new_sender(standin)
    yield fcm
    await fcm.aclose()


@pytest.fixture(autouse=True)
def _clean_standin(standin: FcmStandIn) -> None:
    standin.reset()


def by_device(results: list[DeviceResult]) -> dict[uuid.UUID, DeviceResult]:
    return {r.device_id: r for r in results}


async def test_delivers_to_fid_and_token_devices(
    sender: FcmPushSender, standin: FcmStandIn
) -> None:
    targets = [fid_target("a"), token_target("b"), fid_target("c")]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = await sender.send(MESSAGE, targets)

    assert [r.device_id for r in results] == [t.device_id for t in targets]
    assert all(r.outcome is Outcome.DELIVERED for r in results)
    assert all(r.message_id and r.message_id.startswith(f"projects/{PROJECT_ID}/") for r in results)
    assert len({r.message_id for r in results}) == 3
    # The token= deprecation is silenced where the adapter builds the message, nowhere else.
    assert not [w for w in caught if issubclass(w.category, DeprecationWarning)]

    assert len(standin.requests) == 3
    for target in targets:
        (request,) = standin.requests_for(target.identifier)
        assert request.kind == target.kind
        assert request.project_id == PROJECT_ID
        assert request.validate_only is False
        assert request.authorization == "Bearer fake"
        # broseph's aiohttp transport under the SDK's httpx client speaks HTTP/1.1.
        assert request.http_version == "HTTP/1.1"
        sent = request.message
        assert sent["notification"] == {"title": MESSAGE.title, "body": MESSAGE.body}
        assert sent["data"] == MESSAGE.data
        assert sent["android"]["collapse_key"] == "group-g-1"
        assert sent["apns"]["headers"]["apns-collapse-id"] == "group-g-1"
        other = "token" if target.kind == "fid" else "fid"
        assert other not in sent
        assert standin.delivered_to(target.identifier) == 1


async def test_no_collapse_key_sends_no_platform_config(
    sender: FcmPushSender, standin: FcmStandIn
) -> None:
    message = PushMessage(title="t", body="b", data={}, collapse_key=None, kind="direct")
    target = fid_target("solo")

    (result,) = await sender.send(message, [target])

    assert result.outcome is Outcome.DELIVERED
    (request,) = standin.requests_for(target.identifier)
    assert "android" not in request.message
    assert "apns" not in request.message


async def test_empty_target_list_sends_nothing(sender: FcmPushSender, standin: FcmStandIn) -> None:
    assert await sender.send(MESSAGE, []) == []
    assert standin.requests == []


async def test_unregistered_device_is_dead_token(
    sender: FcmPushSender, standin: FcmStandIn
) -> None:
    ok1, dead, ok2 = fid_target("ok1"), token_target("dead"), fid_target("ok2")
    standin.fail(dead.identifier, status=404, error_code="UNREGISTERED")

    results = by_device(await sender.send(MESSAGE, [ok1, dead, ok2]))

    assert results[dead.device_id] == DeviceResult(
        dead.device_id,
        Outcome.DEAD_TOKEN,
        message_id=None,
        error_code="UNREGISTERED",
        reason="Requested entity was not found.",
    )
    assert results[ok1.device_id].outcome is Outcome.DELIVERED
    assert results[ok2.device_id].outcome is Outcome.DELIVERED


async def test_sender_id_mismatch_is_dead_token(sender: FcmPushSender, standin: FcmStandIn) -> None:
    target = token_target("other-project")
    standin.fail(target.identifier, status=403, error_code="SENDER_ID_MISMATCH")

    (result,) = await sender.send(MESSAGE, [target])

    assert result.outcome is Outcome.DEAD_TOKEN
    assert result.error_code == "SENDER_ID_MISMATCH"


async def test_invalid_argument_is_dead_token_only_when_it_names_the_token(
    sender: FcmPushSender, standin: FcmStandIn
) -> None:
    bad_token, bad_payload = token_target("malformed"), fid_target("fine")
    standin.fail(
        bad_token.identifier, status=400, error_code="INVALID_ARGUMENT", field="message.token"
    )
    standin.fail(
        bad_payload.identifier,
        status=400,
        error_code="INVALID_ARGUMENT",
        message="Invalid value at 'message.data[0].value'",
        field="message.data[0].value",
    )

    results = by_device(await sender.send(MESSAGE, [bad_token, bad_payload]))

    assert results[bad_token.device_id].outcome is Outcome.DEAD_TOKEN
    assert results[bad_payload.device_id].outcome is Outcome.FAILED
    assert results[bad_payload.device_id].error_code == "INVALID_ARGUMENT"


async def test_quota_exceeded_is_retry_without_inline_retries(
    sender: FcmPushSender, standin: FcmStandIn
) -> None:
    target, ok = fid_target("busy"), fid_target("ok")
    standin.fail(target.identifier, status=429, error_code="QUOTA_EXCEEDED")

    results = by_device(await sender.send(MESSAGE, [target, ok]))

    assert results[target.device_id].outcome is Outcome.RETRY
    assert results[target.device_id].error_code == "QUOTA_EXCEEDED"
    assert results[ok.device_id].outcome is Outcome.DELIVERED
    # The SDK retries only 500 and 503 itself; 429 comes straight back to us.
    assert len(standin.requests_for(target.identifier)) == 1


async def test_third_party_auth_error_is_failed(standin: FcmStandIn) -> None:
    # FCM answers THIRD_PARTY_AUTH_ERROR with 401, on which the SDK refreshes its credentials and
    # resends twice; so these credentials must refresh, as a service account's do.
    credentials = RefreshableCredentials()
    fcm = new_sender(standin, credentials=credentials)
    target = token_target("ios")
    standin.fail(target.identifier, status=401, error_code="THIRD_PARTY_AUTH_ERROR")
    try:
        (result,) = await fcm.send(MESSAGE, [target])
    finally:
        await fcm.aclose()

    assert result.outcome is Outcome.FAILED
    assert result.error_code == "THIRD_PARTY_AUTH_ERROR"
    assert credentials.refreshes == 2
    assert len(standin.requests_for(target.identifier)) == 3


async def test_failed_credential_refresh_fails_the_whole_batch_as_retry(
    sender: FcmPushSender, standin: FcmStandIn
) -> None:
    # Credentials(token="fake") cannot refresh: the SDK's RefreshError escapes its gather() as
    # one UnknownError for the batch, so no device's own outcome is known.
    unlucky, bystander = token_target("ios"), fid_target("android")
    standin.fail(unlucky.identifier, status=401, error_code="THIRD_PARTY_AUTH_ERROR")

    results = await sender.send(MESSAGE, [unlucky, bystander])

    assert [r.outcome for r in results] == [Outcome.RETRY, Outcome.RETRY]
    assert {r.error_code for r in results} == {"UNKNOWN"}


async def test_passing_503_is_absorbed_by_the_sdk_retry(
    sender: FcmPushSender, standin: FcmStandIn
) -> None:
    target = fid_target("flaky")
    standin.fail_once(target.identifier, status=503, error_code="UNAVAILABLE")

    (result,) = await sender.send(MESSAGE, [target])

    # firebase-admin's HttpxRetryTransport retries 500/503 up to 4 times (first retry at once).
    assert result.outcome is Outcome.DELIVERED
    assert len(standin.requests_for(target.identifier)) == 2
    assert standin.delivered_to(target.identifier) == 1


@pytest.mark.slow
async def test_lasting_unavailable_and_internal_are_retry(
    sender: FcmPushSender, standin: FcmStandIn
) -> None:
    # Slow (~7 s): the SDK's own backoff (0 + 1 + 2 + 4 s) runs before it gives up. Both devices
    # share one batch so the backoff is paid once.
    down, broken, ok = fid_target("down"), token_target("broken"), fid_target("ok")
    standin.fail(down.identifier, status=503, error_code="UNAVAILABLE")
    standin.fail(broken.identifier, status=500, error_code="INTERNAL")

    results = by_device(await sender.send(MESSAGE, [down, broken, ok]))

    assert results[down.device_id].outcome is Outcome.RETRY
    assert results[down.device_id].error_code == "UNAVAILABLE"
    assert results[broken.device_id].outcome is Outcome.RETRY
    assert results[broken.device_id].error_code == "INTERNAL"
    assert results[ok.device_id].outcome is Outcome.DELIVERED
    assert len(standin.requests_for(down.identifier)) == 5


async def test_unreachable_fcm_is_retry() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port any more: every connect is refused.
    fcm = new_sender(None, fcm_url=f"http://127.0.0.1:{port}")
    try:
        results = await fcm.send(MESSAGE, [fid_target("a"), token_target("b")])
    finally:
        await fcm.aclose()

    assert [r.outcome for r in results] == [Outcome.RETRY, Outcome.RETRY]
    assert {r.error_code for r in results} == {"UNAVAILABLE"}


async def test_timeout_is_retry(standin: FcmStandIn) -> None:
    fcm = new_sender(standin, timeout_seconds=0.2)
    standin.latency = 0.6
    try:
        (result,) = await fcm.send(MESSAGE, [fid_target("slow")])
    finally:
        standin.latency = 0.0
        await fcm.aclose()

    assert result.outcome is Outcome.RETRY
    assert result.error_code == "DEADLINE_EXCEEDED"


async def test_more_than_500_targets_are_sent_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # A spy, not a mock: it records the batch size and calls straight through to the SDK.
    batch_sizes: list[int] = []
    real_send_each_async = messaging.send_each_async

    async def spy(messages: list[Any], **kwargs: Any) -> Any:
        batch_sizes.append(len(messages))
        return await real_send_each_async(messages, **kwargs)

    monkeypatch.setattr(messaging, "send_each_async", spy)
    targets = [fid_target(str(i)) if i % 2 else token_target(str(i)) for i in range(501)]

    # Over TLS, as with real FCM, which offers HTTP/2 and HTTP/1.1 (so does the stand-in).
    with FcmStandIn(http2=True) as tls_standin:
        # The SSL context is made (SSL_CERT_FILE read) when the sender is built.
        with monkeypatch.context() as env:
            env.setenv("SSL_CERT_FILE", tls_standin.ca_file)
            fcm = new_sender(tls_standin)
        try:
            results = await fcm.send(MESSAGE, targets)
        finally:
            await fcm.aclose()
        requests = tls_standin.requests
        connections = tls_standin.connections

    assert batch_sizes == [500, 1]
    assert [r.device_id for r in results] == [t.device_id for t in targets]
    assert all(r.outcome is Outcome.DELIVERED for r in results)
    assert len(requests) == 501
    # firebase-admin's own transport would have negotiated HTTP/2; the aiohttp pool keeps
    # HTTP/1.1, at most MAX_CONNECTIONS connections for 500 requests at once.
    assert {r.http_version for r in requests} == {"HTTP/1.1"}
    assert 1 <= connections <= push_fcm.MAX_CONNECTIONS
    assert {r.identifier for r in requests} == {t.identifier for t in targets}


async def test_dry_run_sets_validate_only(standin: FcmStandIn) -> None:
    fcm = new_sender(standin, dry_run=True)
    target = fid_target("dry")
    try:
        (result,) = await fcm.send(MESSAGE, [target])
    finally:
        await fcm.aclose()

    assert result.outcome is Outcome.DELIVERED
    (request,) = standin.requests_for(target.identifier)
    assert request.validate_only is True


async def test_identifiers_and_text_never_reach_reprs_results_or_logs(
    sender: FcmPushSender, standin: FcmStandIn
) -> None:
    ok, dead = token_target("ok"), fid_target("dead")
    standin.fail(
        dead.identifier, status=404, error_code="UNREGISTERED", message=f"{dead.identifier}"
    )

    with structlog.testing.capture_logs() as logs:
        results = await sender.send(MESSAGE, [ok, dead])
        await LoggingPushSender().send(MESSAGE, [ok, dead])

    secrets = [ok.identifier, dead.identifier, MESSAGE.body, MESSAGE.title, "secret-body-text"]
    rendered = [repr(ok), repr(dead), repr(results), repr(logs)]
    for text in rendered:
        for secret in secrets:
            assert secret not in text
    assert "[redacted]" in repr(ok)
    assert [entry["event"] for entry in logs] == ["push.sent", "push.dev_sent"]
    assert dict(logs[0]) == {
        "event": "push.sent",
        "log_level": "info",
        "kind": "daily_prompt",
        "targets": 2,
        "dry_run": False,
        "delivered": 1,
        "dead_token": 1,
        "retry": 0,
        "failed": 0,
    }


async def test_logging_sender_delivers_everything() -> None:
    dev: PushSender = LoggingPushSender()
    targets = [fid_target("a"), token_target("b"), fid_target("c")]

    with structlog.testing.capture_logs() as logs:
        results = await dev.send(MESSAGE, targets)
    await dev.aclose()

    assert [r.device_id for r in results] == [t.device_id for t in targets]
    assert all(r.outcome is Outcome.DELIVERED for r in results)
    assert len({r.message_id for r in results}) == 3
    assert logs == [
        {
            "event": "push.dev_sent",
            "log_level": "info",
            "kind": "daily_prompt",
            "targets": 3,
            "dry_run": False,
            "delivered": 3,
            "dead_token": 0,
            "retry": 0,
            "failed": 0,
        }
    ]


async def test_invalid_targets_and_messages_are_rejected() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        PushTarget(uuid.uuid4(), "fid", "")
    with pytest.raises(ValueError, match="kind"):
        PushTarget(uuid.uuid4(), "apns", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="collapse_key"):
        PushMessage(title="t", body="b", data={}, collapse_key="x" * 65, kind="k")
    with pytest.raises(ValueError, match="str to str"):
        PushMessage(title="t", body="b", data={"n": 1}, collapse_key=None, kind="k")  # type: ignore[dict-item]


async def test_one_app_name_per_process(standin: FcmStandIn) -> None:
    first = new_sender(standin)
    try:
        with pytest.raises(ValueError, match="already exists"):
            new_sender(standin, app_name=first._app.name)
    finally:
        await first.aclose()
    # Closing frees the name.
    with pytest.raises(ValueError):
        firebase_admin.get_app(first._app.name)


async def test_sdk_internals_the_adapter_relies_on_still_exist() -> None:
    """
    Guard for a firebase-admin upgrade: fails when `_MessagingHooks` needs updating.
    """
    assert metadata.version("firebase-admin").startswith("7.")
    fcm = new_sender(None)
    try:
        service = messaging._get_messaging_service(fcm._app)
        # The per-app attribute FcmPushSender(fcm_url=...) rewrites: the full v1 send URL.
        assert service._fcm_url == (
            f"https://fcm.googleapis.com/v1/projects/{PROJECT_ID}/messages:send"
        )
        assert callable(service._async_client.aclose)
        # The one object replaced under the SDK's retry transports, for both schemes.
        assert {type(t._wrapped_transport) for t in service._async_client._mounts.values()} == {
            AiohttpTransport
        }
    finally:
        await fcm.aclose()


async def test_fcm_url_override_points_the_sdk_at_the_standin(
    sender: FcmPushSender, standin: FcmStandIn
) -> None:
    service = messaging._get_messaging_service(sender._app)
    assert service._fcm_url == f"{standin.base_url}/v1/projects/{PROJECT_ID}/messages:send"


async def test_missing_sdk_internal_fails_construction_loudly(
    standin: FcmStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Simulates an upgrade that dropped the attribute: the service object lacks `_fcm_url`.
    monkeypatch.setattr(messaging, "_get_messaging_service", lambda app: object())
    name = f"broseph-test-{uuid.uuid4().hex[:8]}"

    with pytest.raises(push_fcm.IncompatibleFirebaseAdminError, match="_fcm_url"):
        new_sender(standin, app_name=name)

    # The half-built app was deleted, so fixing the problem and retrying works.
    with pytest.raises(ValueError):
        firebase_admin.get_app(name)


# -- the aiohttp transport under the SDK ----------------------------------------------------------


class ExpiringCredentials(RefreshableCredentials):
    """
    Refreshable credentials whose token has already expired; a refresh makes it good for an hour.
    """

    def __init__(self) -> None:
        super().__init__()
        self.expiry = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(
            hours=1
        )

    def refresh(self, request: Any) -> None:
        super().refresh(request)
        self.expiry = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + datetime.timedelta(
            hours=1
        )


def transport_of(fcm: FcmPushSender) -> AiohttpTransport:
    service = messaging._get_messaging_service(fcm._app)
    transport = service._async_client._mounts["https://"]._wrapped_transport
    assert isinstance(transport, AiohttpTransport)
    return transport


async def test_expired_token_is_refreshed_by_google_auth_before_sending(
    standin: FcmStandIn,
) -> None:
    # The SDK's httpx auth flow (google-auth's before_request) still runs above the transport.
    credentials = ExpiringCredentials()
    fcm = new_sender(standin, credentials=credentials)
    first, second = fid_target("first"), fid_target("second")
    try:
        (one,) = await fcm.send(MESSAGE, [first])
        (two,) = await fcm.send(MESSAGE, [second])
    finally:
        await fcm.aclose()

    assert [one.outcome, two.outcome] == [Outcome.DELIVERED, Outcome.DELIVERED]
    assert credentials.refreshes == 1
    assert [r.authorization for r in standin.requests] == ["Bearer fake-1", "Bearer fake-1"]


async def test_401_refreshes_the_credentials_and_resends(standin: FcmStandIn) -> None:
    credentials = RefreshableCredentials()
    fcm = new_sender(standin, credentials=credentials)
    target = fid_target("revoked-token")
    standin.fail_once(target.identifier, status=401, error_code=None)
    try:
        (result,) = await fcm.send(MESSAGE, [target])
    finally:
        await fcm.aclose()

    assert result.outcome is Outcome.DELIVERED
    assert credentials.refreshes == 1
    requests = standin.requests_for(target.identifier)
    assert [(r.status, r.authorization) for r in requests] == [
        (401, "Bearer fake"),
        (200, "Bearer fake-1"),
    ]


async def test_connections_are_kept_alive_across_sends(standin: FcmStandIn) -> None:
    fcm = new_sender(standin)
    try:
        for i in range(3):
            (result,) = await fcm.send(MESSAGE, [fid_target(str(i))])
            assert result.outcome is Outcome.DELIVERED
        session = transport_of(fcm).session
        (result,) = await fcm.send(MESSAGE, [fid_target("last")])
        assert transport_of(fcm).session is session
    finally:
        await fcm.aclose()

    assert len(standin.requests) == 4
    # One connection, opened by the first send and reused by the next three.
    assert standin.connections == 1


async def test_aclose_closes_the_pool_without_warnings(
    standin: FcmStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    fcm = new_sender(standin)
    transport = transport_of(fcm)
    assert transport.session is None  # opened by the first send, in its loop
    (result,) = await fcm.send(MESSAGE, [fid_target("a")])
    session = transport.session
    assert result.outcome is Outcome.DELIVERED
    assert session is not None and not session.closed

    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.ERROR):
        warnings.simplefilter("always")
        await fcm.aclose()
        del fcm
        gc.collect()
        await asyncio.sleep(0)

    assert session.closed
    assert session.connector is None or session.connector.closed
    assert transport.session is None
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert "Unclosed" not in caplog.text


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def send_one_to(handler: Handler) -> DeviceResult:
    """
    One message through a fresh sender to a raw HTTP/1.1 server that `handler` plays.
    """
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    fcm = new_sender(None, fcm_url=f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    try:
        (result,) = await fcm.send(MESSAGE, [fid_target("a")])
    finally:
        await fcm.aclose()
        server.close()
        await server.wait_closed()
    return result


async def test_dropped_connection_is_retry() -> None:
    # A server that reads the request and hangs up without answering.
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    result = await send_one_to(hang_up)

    # As with httpcore: a RemoteProtocolError, which firebase-admin wraps in UnknownError.
    assert result.outcome is Outcome.RETRY
    assert result.error_code == "UNKNOWN"
    assert result.reason is not None and "disconnected" in result.reason.lower()


async def test_a_gzip_reply_is_decoded_once() -> None:
    # The SDK asks for gzip (httpx's Accept-Encoding) and httpx decodes it from the headers, so
    # the transport must hand the body over as it came.
    answer = gzip.compress(json.dumps({"name": f"projects/{PROJECT_ID}/messages/7"}).encode())
    accepted: list[str] = []

    async def reply_gzipped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        length = int(head.split("content-length:")[1].split("\r\n")[0])
        await reader.readexactly(length)
        accepted.append(head.split("accept-encoding:")[1].split("\r\n")[0].strip())
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            + f"Content-Length: {len(answer)}\r\n\r\n".encode()
            + answer
        )
        await writer.drain()
        writer.close()

    result = await send_one_to(reply_gzipped)

    assert "gzip" in accepted[0]
    assert result == DeviceResult(
        result.device_id, Outcome.DELIVERED, message_id=f"projects/{PROJECT_ID}/messages/7"
    )


@pytest.mark.parametrize(
    ("failure", "outcome", "code"),
    [
        # What httpcore raised for each, and so what the SDK made of it before. (A refused
        # connection, UNAVAILABLE, runs end to end in test_unreachable_fcm_is_retry.)
        (aiohttp.ConnectionTimeoutError("connect timed out"), Outcome.RETRY, "DEADLINE_EXCEEDED"),
        (aiohttp.SocketTimeoutError("read timed out"), Outcome.RETRY, "DEADLINE_EXCEEDED"),
        (TimeoutError(), Outcome.RETRY, "DEADLINE_EXCEEDED"),  # no free connection in time
        (aiohttp.ServerDisconnectedError(), Outcome.RETRY, "UNKNOWN"),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), Outcome.RETRY, "UNKNOWN"),
        (aiohttp.ClientPayloadError("truncated"), Outcome.RETRY, "UNKNOWN"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else None,
)
async def test_transport_failures_reach_the_sdk_as_httpx_errors(
    sender: FcmPushSender, failure: BaseException, outcome: Outcome, code: str
) -> None:
    request = httpx.Request("POST", "https://fcm.googleapis.com/v1/projects/p/messages:send")
    with pytest.raises(httpx.TransportError) as raised:
        aiohttp_transport._raise_as_httpx(failure, request)
    # The SDK's own handler for send_each_async's httpx errors, then the adapter's classification.
    error = messaging._get_messaging_service(sender._app)._handle_fcm_httpx_error(raised.value)

    assert (push_fcm.classify(error), error.code) == (outcome, code)


async def test_changed_transport_internals_refuse_to_start(
    standin: FcmStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Simulates an upgrade that replaced the retry transport the aiohttp pool slots under.
    monkeypatch.setattr(firebase_retry, "HttpxRetryTransport", type("Renamed", (), {}))
    name = f"broseph-test-{uuid.uuid4().hex[:8]}"

    with pytest.raises(push_fcm.IncompatibleFirebaseAdminError, match="HttpxRetryTransport"):
        new_sender(standin, app_name=name)

    with pytest.raises(ValueError):
        firebase_admin.get_app(name)
