"""
Who may use the dashboard, and proof that a state change came from its own pages.

- **Basic auth** (`BasicAuth`): DASHBOARD_USER / DASHBOARD_PASSWORD, compared in constant time
  (digests of equal length, so not even the length leaks). Without them the dashboard serves
  loopback only: `broseph dashboard` refuses any other address, and `LoopbackOnly` refuses a
  Host header that is not a loopback name — a page elsewhere cannot reach it through DNS
  rebinding.
- **CSRF** (`Csrf`): browsers send Basic credentials with cross-site requests too, so every
  POST carries a token only our pages know — an HMAC of the user under a key derived from the
  password (the same in every dashboard process; rotating the password rotates it) — and is
  refused when the browser says it came from another site (Sec-Fetch-Site). Cookie-based CSRF
  middlewares (asgi-csrf, starlette-csrf) let requests without cookies through, which is what
  a forged request looks like under Basic auth; hence this.
- **Headers** (`SecureHeaders`): a strict Content-Security-Policy (scripts, styles and requests
  from our own origin only), no framing, no caching of pages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REALM = "broseph jobs"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    """
    127.0.0.0/8, ::1 or localhost (what `broseph dashboard --host` may be without a password).
    """
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class BasicAuth:
    """
    ASGI middleware: HTTP requests need the configured Basic credentials, else 401.
    """

    def __init__(self, app: ASGIApp, *, user: str, password: str) -> None:
        self.app = app
        self._user = _digest(user.encode())
        self._password = _digest(password.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._allowed(Headers(scope=scope).get("authorization")):
            await self.app(scope, receive, send)
            return
        response = PlainTextResponse(
            "authentication required",
            status_code=401,
            headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
        )
        await response(scope, receive, send)

    def _allowed(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, colon, password = decoded.partition(b":")
        # Both comparisons always run: the time taken says nothing about which one failed.
        user_ok = hmac.compare_digest(_digest(user), self._user)
        password_ok = hmac.compare_digest(_digest(password), self._password)
        return bool(colon) and user_ok and password_ok


class LoopbackOnly:
    """
    ASGI middleware for a dashboard without credentials: only requests addressed to a loopback
    name are served (a rebound DNS name pointing at 127.0.0.1 is refused).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not is_loopback(_host_name(scope)):
            response = PlainTextResponse("this dashboard answers on loopback only", 403)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _host_name(scope: Scope) -> str:
    host = Headers(scope=scope).get("host", "")
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else ""
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Csrf:
    """
    The token every form of the dashboard carries, and its check.
    """

    FIELD = "csrf"

    def __init__(self, password: str | None) -> None:
        # Derived from the password so every dashboard process agrees; random for a loopback
        # dashboard without one (a single local process).
        seed = password.encode() if password else secrets.token_bytes(32)
        self._key = hmac.new(seed, b"broseph-dashboard-csrf-v1", hashlib.sha256).digest()

    def token(self, request: Request) -> str:
        user = basic_user(request.headers.get("authorization"))
        return hmac.new(self._key, b"csrf:" + user, hashlib.sha256).hexdigest()

    def check(self, request: Request, submitted: object) -> str | None:
        """
        None when the request may change state, else why not.
        """
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return f"cross-site request refused (Sec-Fetch-Site: {site[:40]})"
        if not isinstance(submitted, str) or not hmac.compare_digest(
            submitted.encode(), self.token(request).encode()
        ):
            return "missing or invalid CSRF token: reload the page and try again"
        return None


def basic_user(header: str | None) -> bytes:
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return b""
    try:
        return base64.b64decode(token.strip(), validate=True).partition(b":")[0]
    except (binascii.Error, ValueError):
        return b""


CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
    "object-src 'none'"
)


class SecureHeaders:
    """
    ASGI middleware adding the dashboard's security headers to every response.
    """

    HEADERS = (
        (b"content-security-policy", CSP.encode()),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = "/static/" in scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(self.HEADERS)
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
