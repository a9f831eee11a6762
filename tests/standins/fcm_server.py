"""
A stand-in for the FCM HTTP v1 API: a real server on 127.0.0.1 with scripted replies.

FCM has no emulator, so tests point the real firebase-admin SDK here (see
`broseph.providers.push_fcm.FcmPushSender(fcm_url=...)`). What the SDK sends, read from
firebase-admin 7.7: `send_each_async` makes one `POST /v1/projects/<pid>/messages:send` per
message (there is no batch endpoint any more) through `httpx.AsyncClient(http2=True)`. httpx
negotiates HTTP/2 only via TLS ALPN, so against a plain `http://` URL it speaks HTTP/1.1, which
the default mode serves with the standard library.

`FcmStandIn(http2=True)` serves TLS instead, like real FCM, and, like it, speaks whichever of
HTTP/2 and HTTP/1.1 (keep-alive) the client picks by ALPN: firebase-admin's own httpx transport
picks HTTP/2, broseph's aiohttp transport HTTP/1.1. The client must trust `ca_file` (set
`SSL_CERT_FILE` to it while the sender is built; the SSL context is made then).
`connections` counts the TCP connections accepted, so tests can see a pool being reused.

Replies are scripted per device identifier (fid or legacy token). Error bodies are shaped like real
FCM errors because firebase-admin picks its exception class from `error.status` and
`error.details[].errorCode`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import http
import http.server
import ipaddress
import itertools
import json
import ssl
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["FcmStandIn", "RecordedRequest", "ScriptedFailure"]

# Google's canonical status name for each HTTP status FCM uses; firebase-admin maps the name to
# its exception class (INVALID_ARGUMENT -> InvalidArgumentError, UNAVAILABLE -> UnavailableError).
_CANONICAL_STATUS: Final = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
# What real FCM says for each error code; none of them echoes the token back.
_MESSAGES: Final = {
    "UNREGISTERED": "Requested entity was not found.",
    "SENDER_ID_MISMATCH": "SenderId mismatch",
    "QUOTA_EXCEEDED": "Quota exceeded for quota metric 'Messages'.",
    "UNAVAILABLE": "The service is currently unavailable.",
    "INTERNAL": "Internal error encountered.",
    "INVALID_ARGUMENT": "The registration token is not a valid FCM registration token",
    "THIRD_PARTY_AUTH_ERROR": "Auth error from APNS or Web Push Service",
}
_FCM_ERROR_TYPE: Final = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST_TYPE: Final = "type.googleapis.com/google.rpc.BadRequest"
_PATH_PREFIX: Final = "/v1/projects/"
_SEND_SUFFIX: Final = "/messages:send"


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """
    One request the stand-in received, and what it answered.
    """

    project_id: str
    identifier: str | None
    kind: Literal["fid", "token"] | None
    message: dict[str, Any]
    validate_only: bool
    status: int
    http_version: str
    authorization: str | None
    received_at: float


@dataclasses.dataclass
class ScriptedFailure:
    """
    An error reply for one identifier; `remaining=None` fails forever, else that many times.
    """

    status: int
    error_code: str | None
    message: str
    field: str | None
    remaining: int | None


class FcmStandIn:
    """
    The stand-in server; use as a context manager and point the SDK at `base_url`.
    """

    def __init__(self, *, latency: float = 0.0, http2: bool = False) -> None:
        # Seconds to wait before each reply (e.g. 0.02 in benchmarks, like a nearby FCM).
        self.latency = latency
        self.http2 = http2
        self._lock = threading.Lock()
        self._failures: dict[str, ScriptedFailure] = {}
        self._requests: list[RecordedRequest] = []
        self._message_ids = itertools.count(1)
        self._connections = 0
        self._transport: _Http1Transport | _Http2Transport | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """
        Bind 127.0.0.1 on a free port and serve from a daemon thread.
        """
        self._transport = _Http2Transport(self) if self.http2 else _Http1Transport(self)

    def stop(self) -> None:
        """
        Stop serving and release the port.
        """
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    @property
    def base_url(self) -> str:
        """
        The root URL to hand to the SDK, e.g. `http://127.0.0.1:54321`.
        """
        scheme = "https" if self.http2 else "http"
        return f"{scheme}://127.0.0.1:{self._running().port}"

    @property
    def ca_file(self) -> str:
        """
        PEM file of the self-signed certificate (HTTP/2 mode) for the client's `SSL_CERT_FILE`.
        """
        transport = self._running()
        if not isinstance(transport, _Http2Transport):
            raise RuntimeError("ca_file exists only in http2 mode")
        return transport.ca_file

    def _running(self) -> _Http1Transport | _Http2Transport:
        if self._transport is None:
            raise RuntimeError("the FCM stand-in is not running")
        return self._transport

    # -- scripting -------------------------------------------------------------------------------

    def fail(
        self,
        identifier: str,
        *,
        status: int = 404,
        error_code: str | None = "UNREGISTERED",
        message: str | None = None,
        field: str | None = None,
        times: int | None = None,
    ) -> None:
        """
        Answer requests to `identifier` with an FCM error, `times` times (None: always).

        `field` adds a `google.rpc.BadRequest` field violation (e.g. "message.token"), which real
        FCM includes when INVALID_ARGUMENT is about the registration token.
        """
        text = message if message is not None else _MESSAGES.get(error_code or "", "Error")
        with self._lock:
            self._failures[identifier] = ScriptedFailure(status, error_code, text, field, times)

    def fail_once(
        self,
        identifier: str,
        *,
        status: int = 503,
        error_code: str | None = "UNAVAILABLE",
        times: int = 1,
    ) -> None:
        """
        Fail the next `times` requests to `identifier`, then deliver again.
        """
        self.fail(identifier, status=status, error_code=error_code, times=times)

    @property
    def connections(self) -> int:
        """
        TCP connections accepted since start (or the last `reset()`).
        """
        with self._lock:
            return self._connections

    def _connected(self) -> None:
        with self._lock:
            self._connections += 1

    def reset(self) -> None:
        """
        Forget scripted failures, recorded requests and the connection count (latency stays).
        """
        with self._lock:
            self._failures.clear()
            self._requests.clear()
            self._connections = 0

    # -- inspection ------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """
        A snapshot of every request received so far, in arrival order.
        """
        with self._lock:
            return list(self._requests)

    def requests_for(self, identifier: str) -> list[RecordedRequest]:
        """
        The requests addressed to one fid or token.
        """
        return [r for r in self.requests if r.identifier == identifier]

    def delivered_to(self, identifier: str) -> int:
        """
        How many messages to `identifier` were answered with success (validate_only included).
        """
        return sum(1 for r in self.requests_for(identifier) if r.status == 200)

    # -- called by the transports ------------------------------------------------------------------

    def _handle(
        self, path: str, raw: bytes, http_version: str, authorization: str | None
    ) -> tuple[int, dict[str, Any]]:
        if not (path.startswith(_PATH_PREFIX) and path.endswith(_SEND_SUFFIX)):
            return 404, _error_body(404, None, f"Unknown path {path}", None)
        project_id = path[len(_PATH_PREFIX) : -len(_SEND_SUFFIX)]
        try:
            payload = json.loads(raw)
        except ValueError:
            return 400, _error_body(400, None, "Invalid JSON payload.", None)
        message = payload.get("message") if isinstance(payload, dict) else None
        if not isinstance(message, dict):
            return 400, _error_body(400, None, "Invalid JSON payload: missing 'message'.", None)
        identifier, kind = _target_of(message)
        with self._lock:
            failure = self._failures.get(identifier) if identifier is not None else None
            if identifier is not None and failure is not None:
                status = failure.status
                body = _error_body(status, failure.error_code, failure.message, failure.field)
                if failure.remaining is not None:
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        del self._failures[identifier]
            else:
                status = 200
                body = {"name": f"projects/{project_id}/messages/{next(self._message_ids)}"}
            self._requests.append(
                RecordedRequest(
                    project_id=project_id,
                    identifier=identifier,
                    kind=kind,
                    message=message,
                    validate_only=bool(payload.get("validate_only", False)),
                    status=status,
                    http_version=http_version,
                    authorization=authorization,
                    received_at=time.monotonic(),
                )
            )
        return status, body


def _target_of(message: dict[str, Any]) -> tuple[str | None, Literal["fid", "token"] | None]:
    if isinstance(message.get("fid"), str):
        return message["fid"], "fid"
    if isinstance(message.get("token"), str):
        return message["token"], "token"
    return None, None


def _error_body(
    status: int, error_code: str | None, message: str, field: str | None
) -> dict[str, Any]:
    details: list[dict[str, Any]] = []
    if error_code is not None:
        details.append({"@type": _FCM_ERROR_TYPE, "errorCode": error_code})
    if field is not None:
        violation = {"field": field, "description": message}
        details.append({"@type": _BAD_REQUEST_TYPE, "fieldViolations": [violation]})
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": _CANONICAL_STATUS.get(status, "UNKNOWN"),
    }
    if details:
        error["details"] = details
    return {"error": error}


# -- HTTP/1.1 (plain http://) ----------------------------------------------------------------------


class _Http1Transport:
    def __init__(self, standin: FcmStandIn) -> None:
        self._server = _Http1Server(("127.0.0.1", 0), _Http1Handler)
        self._server.standin = standin
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fcm-standin", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _Http1Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # send_each_async fires up to 500 requests at once over up to 100 pooled connections; the
    # default backlog of 5 would make the kernel drop SYNs and add seconds of connect retries.
    request_queue_size = 512
    standin: FcmStandIn


class _Http1Handler(http.server.BaseHTTPRequestHandler):
    # Keep-alive, like FCM: httpx reuses pooled connections across a batch.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms) and every request looks slow.
    disable_nagle_algorithm = True
    server: _Http1Server

    def setup(self) -> None:
        # One handler per connection: it serves every request on it (keep-alive).
        super().setup()
        self.server.standin._connected()

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        standin = self.server.standin
        if standin.latency:
            time.sleep(standin.latency)
        status, body = standin._handle(
            self.path, raw, self.request_version, self.headers.get("Authorization")
        )
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a timeout test, or a closed pool); nothing left to answer.
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        # Silence the per-request stderr line; tests inspect `FcmStandIn.requests` instead.
        pass


# -- HTTP/2 or HTTP/1.1 over TLS (https://) --------------------------------------------------------


class _Http2Transport:
    def __init__(self, standin: FcmStandIn) -> None:
        self._standin = standin
        self._tmp = tempfile.TemporaryDirectory(prefix="fcm-standin-")
        self.ca_file, key_file = _self_signed_certificate(Path(self._tmp.name))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, key_file)
        context.set_alpn_protocols(["h2", "http/1.1"])
        self._connections: set[asyncio.Task[None]] = set()
        # The server gets its own loop in its own thread: tests start it from inside their loop.
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fcm-standin-h2", daemon=True
        )
        self._thread.start()
        start = asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=context)
        self._server = asyncio.run_coroutine_threadsafe(start, self._loop).result(timeout=5)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def close(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
        self._tmp.cleanup()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self._standin._connected()
        ssl_object = writer.get_extra_info("ssl_object")
        # No ALPN at all (a client that never offers it) means HTTP/1.1, as at real FCM.
        if ssl_object is None or ssl_object.selected_alpn_protocol() != "h2":
            try:
                await self._serve_http1(reader, writer)
            finally:
                self._connections.discard(task)
            return
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        replies: set[asyncio.Task[None]] = set()
        try:
            while data := await reader.read(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived) and event.stream_id:
                        headers = {str(k): str(v) for k, v in event.headers or []}
                        streams[event.stream_id] = (headers, bytearray())
                    elif isinstance(event, h2.events.DataReceived) and event.stream_id:
                        streams[event.stream_id][1].extend(event.data or b"")
                        conn.acknowledge_received_data(
                            event.flow_controlled_length or 0, event.stream_id
                        )
                    elif isinstance(event, h2.events.StreamEnded) and event.stream_id:
                        headers, body = streams.pop(event.stream_id)
                        reply = asyncio.create_task(
                            self._reply(conn, writer, event.stream_id, headers, bytes(body))
                        )
                        replies.add(reply)
                        reply.add_done_callback(replies.discard)
                    elif isinstance(event, h2.events.StreamReset) and event.stream_id:
                        streams.pop(event.stream_id, None)
                writer.write(conn.data_to_send())
                await writer.drain()
        except (ConnectionError, ssl.SSLError, h2.exceptions.ProtocolError):
            pass
        finally:
            for reply in replies:
                reply.cancel()
            writer.close()
            self._connections.discard(task)

    async def _serve_http1(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # Keep-alive: requests on one connection are answered in order, one at a time.
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return  # the client closed the connection between requests
                request_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
                _method, path, version = request_line.split(" ", 2)
                headers = {}
                for line in lines:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                raw = await reader.readexactly(int(headers.get("content-length") or 0))
                if self._standin.latency:
                    await asyncio.sleep(self._standin.latency)
                status, body = self._standin._handle(
                    path, raw, version, headers.get("authorization")
                )
                data = json.dumps(body).encode()
                reason = http.HTTPStatus(status).phrase
                writer.write(
                    f"{version} {status} {reason}\r\n"
                    "Content-Type: application/json; charset=UTF-8\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, ValueError):
            pass  # the client went away mid-request (a timeout test) or sent garbage
        except asyncio.CancelledError:
            # Shutdown while the client's TLS close is still in flight. End normally: Python
            # 3.11's start_server callback logs a cancelled handler as an error.
            pass
        finally:
            writer.close()

    async def _reply(
        self,
        conn: h2.connection.H2Connection,
        writer: asyncio.StreamWriter,
        stream_id: int,
        headers: dict[str, str],
        raw: bytes,
    ) -> None:
        if self._standin.latency:
            # Sleep per stream, not per connection: HTTP/2 replies overlap like FCM's.
            await asyncio.sleep(self._standin.latency)
        status, body = self._standin._handle(
            headers.get(":path", ""), raw, "HTTP/2", headers.get("authorization")
        )
        data = json.dumps(body).encode()
        try:
            conn.send_headers(
                stream_id,
                [
                    (":status", str(status)),
                    ("content-type", "application/json; charset=UTF-8"),
                    ("content-length", str(len(data))),
                ],
            )
            conn.send_data(stream_id, data, end_stream=True)
            writer.write(conn.data_to_send())
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass  # the client reset the stream (a timeout) or went away


def _self_signed_certificate(directory: Path) -> tuple[str, str]:
    """
    A throwaway certificate for 127.0.0.1 that is its own CA; returns (cert file, key file).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fcm-standin")])
    now = datetime.datetime.now(datetime.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        # CA and key-usage extensions keep strict verifiers (Python 3.13's default) happy.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "cert.pem"
    key_file = directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_file), str(key_file)
