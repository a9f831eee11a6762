"""
An httpx transport that sends over an aiohttp keep-alive pool (HTTP/1.1), for firebase-admin.

firebase-admin's async FCM client is an `httpx.AsyncClient`: its auth flow (google-auth bearer
tokens, refreshed on expiry and on 401), its retry transport (500/503 with backoff) and its error
classification (from `httpx` exceptions and responses) all sit above the transport. This module
replaces only the bottom layer, the one that moves bytes: httpcore's HTTP/2 connection (pure-Python
h2 framing) becomes an aiohttp keep-alive pool, which brings the whole SDK send from ≈ 2.2 to
≈ 1.0 ms of client CPU per FCM message (bench 13). Everything above keeps running unchanged, so
aiohttp's failures are mapped back to the httpx exceptions the SDK classifies (`_raise_as_httpx`).

Used by `broseph.providers.push_fcm` only; see `FcmPushSender` for the pool's size.
"""

from __future__ import annotations

import ssl
from typing import Final, NoReturn

import aiohttp
import httpx

__all__ = ["AiohttpTransport"]

_HTTP_11: Final = {"http_version": b"HTTP/1.1"}


class AiohttpTransport(httpx.AsyncBaseTransport):
    """
    Sends httpx requests over one aiohttp session of at most `max_connections` connections.

    The session is opened on the first request, in the loop that sends (aiohttp binds a session
    to its loop), and closed by `aclose()` in that loop. `ssl_context` is built by the caller
    when the SDK builds its client, so trust settings (`SSL_CERT_FILE`) are read at that moment,
    as httpx reads them.
    """

    def __init__(self, *, max_connections: int, ssl_context: ssl.SSLContext) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._max_connections = max_connections
        self._ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}
        self._closed = False

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """
        The open aiohttp session, or None before the first request and after `aclose()`.
        """
        return self._session

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise httpx.TransportError("the FCM HTTP transport is closed")
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, limit_per_host=0, ssl=self._ssl_context
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # httpx decodes Content-Encoding itself, from the headers it is handed.
            auto_decompress=False,
            # FCM sets no cookies; the jar would only cost time per response.
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        return self._session

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        # httpx's limits, per request: pool (waiting for a free connection) and connect bound
        # aiohttp's `connect`, `sock_connect` the TCP/TLS set-up, `sock_read` each read. aiohttp
        # has no write limit; an FCM request is one small write, into the socket's buffer.
        limits = request.extensions.get("timeout") or {}
        key = (limits.get("pool"), limits.get("connect"), limits.get("read"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            pool, connect, read = key
            total_connect = None if pool is None or connect is None else pool + connect
            timeout = aiohttp.ClientTimeout(
                total=None, connect=total_connect, sock_connect=connect, sock_read=read
            )
            self._timeouts[key] = timeout
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """
        Send one request and read the whole reply (FCM replies are a few hundred bytes).
        """
        session = self._session or self._open()
        body = await request.aread()
        try:
            async with session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=body,
                timeout=self._timeout(request),
                allow_redirects=False,
            ) as reply:
                content = await reply.read()
                return httpx.Response(
                    reply.status,
                    headers=reply.raw_headers,
                    content=content,
                    extensions=_HTTP_11,
                )
        except (TimeoutError, aiohttp.ClientError) as error:
            _raise_as_httpx(error, request)

    async def aclose(self) -> None:
        """
        Close every pooled connection; later requests fail as transport errors.
        """
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _raise_as_httpx(error: BaseException, request: httpx.Request) -> NoReturn:
    """
    Raise the httpx exception httpcore would have raised, so firebase-admin classifies as before:
    timeouts → DeadlineExceededError, connect failures → UnavailableError, the rest →
    UnknownError around an `httpx.TransportError`.
    """
    message = str(error) or type(error).__name__
    mapped: httpx.TransportError
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        mapped = httpx.ConnectTimeout(message, request=request)
    elif isinstance(error, aiohttp.ServerTimeoutError):
        mapped = httpx.ReadTimeout(message, request=request)
    elif isinstance(error, TimeoutError):
        mapped = httpx.PoolTimeout(message, request=request)
    elif isinstance(error, aiohttp.ClientConnectorError | aiohttp.ClientSSLError):
        mapped = httpx.ConnectError(message, request=request)
    elif isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        mapped = httpx.RemoteProtocolError(message, request=request)
    elif isinstance(error, aiohttp.ClientOSError):
        mapped = httpx.ReadError(message, request=request)
    else:
        mapped = httpx.TransportError(message, request=request)
    raise mapped from error
