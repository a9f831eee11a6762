"""
A stand-in for Sentry's ingestion endpoint, good enough for the real `sentry_sdk` to send to.

`with SentryStandIn() as server:` then SENTRY_DSN=`server.dsn`. It accepts the SDK's envelope
POSTs (`/api/<project>/envelope/`, gzip- or brotli-compressed or not), decodes each envelope into
its items and records them: `server.events` (errors), `server.check_ins` (cron check-ins), and
every decoded body as text in `server.bodies`, for tests that must show a string never left the
process.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any, Self

from tests.standins.serving import QuietHandler, Served, serve, stop

__all__ = ["Item", "SentryStandIn"]

PROJECT = "42"
KEY = "publickey"
ENVELOPE_PATH = re.compile(r"^/api/(?P<project>[^/]+)/envelope/$")


@dataclass(frozen=True)
class Item:
    """
    One envelope item: its headers (`type`, `length`…) and its payload, parsed as JSON.
    """

    headers: dict[str, Any]
    payload: Any


def parse_envelope(body: bytes) -> tuple[dict[str, Any], list[Item]]:
    """
    An envelope: a JSON header line, then items, each a JSON header line and a payload of
    `length` bytes (or up to the next newline when the header gives no length).
    """
    header_line, _, rest = body.partition(b"\n")
    items: list[Item] = []
    while rest.strip():
        item_line, _, rest = rest.partition(b"\n")
        headers = json.loads(item_line)
        if "length" in headers:
            length = int(headers["length"])
            payload, rest = rest[:length], rest[length:]
            rest = rest.removeprefix(b"\n")
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append(Item(headers=headers, payload=json.loads(payload) if payload else None))
    return json.loads(header_line), items


class SentryStandIn(Served):
    def __init__(self) -> None:
        self.items: list[Item] = []
        self.bodies: list[str] = []
        self.errors: list[str] = []  # requests it could not take (shown by the tests that fail)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def dsn(self) -> str:
        assert self._server is not None
        return f"http://{KEY}@127.0.0.1:{self._server.server_address[1]}/{PROJECT}"

    @property
    def events(self) -> list[dict[str, Any]]:
        return self._payloads("event")

    @property
    def check_ins(self) -> list[dict[str, Any]]:
        return self._payloads("check_in")

    def _payloads(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [i.payload for i in self.items if i.headers.get("type") == kind]

    def _take(self, path: str, headers: Any, body: bytes) -> int:
        match = ENVELOPE_PATH.match(path.split("?", 1)[0])
        if match is None or match["project"] != PROJECT:
            self.errors.append(f"unexpected path {path}")
            return 404
        if f"sentry_key={KEY}" not in headers.get("X-Sentry-Auth", ""):
            self.errors.append("no sentry_key in X-Sentry-Auth")
            return 401
        encoding = headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "br":  # the SDK's choice where the brotli package is importable
            import brotli  # type: ignore[import-not-found]

            body = brotli.decompress(body)
        elif encoding:
            self.errors.append(f"unsupported Content-Encoding {encoding}")
            return 415
        _header, items = parse_envelope(body)
        with self._lock:
            self.bodies.append(body.decode("utf-8", errors="replace"))
            self.items.extend(items)
        return 200

    def start(self) -> Self:
        standin = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                try:
                    status = standin._take(self.path, self.headers, body)
                except Exception as exc:  # a malformed envelope: the test must see it
                    standin.errors.append(f"{type(exc).__name__}: {exc}")
                    status = 400
                self.reply_json(status, b"{}" if status == 200 else b'{"detail":"rejected"}')

        self._server, self._thread = serve(Handler)
        return self

    def close(self) -> None:
        assert self._server is not None and self._thread is not None
        stop(self._server, self._thread)
