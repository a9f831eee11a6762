"""
A stand-in for the OpenAI HTTP API, good enough for the real `openai` SDK to talk to.

The SDK uses httpx2, which respx and httpx mocks never see, so tests point the real client at this
server instead: `with OpenAIStandIn() as server:` then `base_url=server.base_url`.
It serves `POST /v1/chat/completions`, records every request and answers from a scripted queue of
`Reply` values; with the queue empty it answers a default structured prompt after an optional fixed
latency (benchmarks use that to play a 300 ms model).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from http.server import ThreadingHTTPServer
from typing import Any, Self

from tests.standins.serving import QuietHandler, Served

__all__ = ["DEFAULT_OUTPUT", "OpenAIStandIn", "RecordedRequest", "Reply"]

CHAT_COMPLETIONS_PATH = "/v1/chat/completions"

DEFAULT_OUTPUT: Mapping[str, object] = {
    "text": "What is one small thing that made you smile this week?",
    "category": "gratitude",
    "follow_up": "Did you tell anyone about it at the time?",
}

# Error bodies as OpenAI sends them, by status; `Reply.status` fills in what the test leaves out.
_DEFAULT_ERRORS: Mapping[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Not allowed."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    422: ("invalid_request_error", None, "Unprocessable request."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", None, "The server had an error while processing your request."),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded."),
}
_QUOTA_ERROR: tuple[str, str | None, str] = (
    "insufficient_quota",
    "insufficient_quota",
    "You exceeded your current quota.",
)


@dataclass(frozen=True)
class Reply:
    """
    One scripted answer; build it with the class methods, e.g. `Reply.status(429)`.
    """

    status_code: int = 200
    # For 200 replies: the assistant message content (a JSON string for structured output).
    content: str | None = None
    refusal_text: str | None = None
    finish_reason: str = "stop"
    # For error replies: the object under the top-level "error" key.
    error: Mapping[str, object] | None = None
    headers: tuple[tuple[str, str], ...] = ()
    delay_seconds: float = 0.0
    # Close the connection without answering (the client sees a connection error).
    drop_connection: bool = False
    # Answer with whatever the server's default currently is (used by `Reply.delay`).
    use_default: bool = False

    @classmethod
    def json_output(cls, output: Mapping[str, object], *, finish_reason: str = "stop") -> Reply:
        """
        A 200 completion whose message content is `output` as JSON.
        """
        return cls(content=json.dumps(output), finish_reason=finish_reason)

    @classmethod
    def raw_content(cls, content: str, *, finish_reason: str = "stop") -> Reply:
        """
        A 200 completion whose message content is `content` verbatim (e.g. not JSON at all).
        """
        return cls(content=content, finish_reason=finish_reason)

    @classmethod
    def refusal(cls, text: str = "I'm sorry, I can't help with that.") -> Reply:
        """
        A 200 completion in which the model refuses (content null, refusal set).
        """
        return cls(refusal_text=text)

    @classmethod
    def status(
        cls,
        status_code: int,
        *,
        error: Mapping[str, object] | None = None,
        code: str | None = None,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """
        An error reply shaped like OpenAI's: `{"error": {"message", "type", "param", "code"}}`.
        """
        defaults: tuple[str, str | None, str] = _DEFAULT_ERRORS.get(
            status_code, ("api_error", None, f"Error {status_code}.")
        )
        if code == "insufficient_quota":
            defaults = _QUOTA_ERROR
        err_type, default_code, default_message = defaults
        body: dict[str, object] = {
            "message": message or default_message,
            "type": err_type,
            "param": None,
            "code": code or default_code,
        }
        body.update(error or {})
        return cls(status_code=status_code, error=body, headers=tuple((headers or {}).items()))

    @classmethod
    def delay(cls, seconds: float, then: Reply | None = None) -> Reply:
        """
        Wait `seconds` before answering with `then` (the server's default reply when omitted).
        """
        if then is None:
            return cls(use_default=True, delay_seconds=seconds)
        return replace(then, delay_seconds=seconds)

    @classmethod
    def disconnect(cls) -> Reply:
        """
        Close the connection without sending any response.
        """
        return cls(drop_connection=True)

    def after(self, seconds: float) -> Reply:
        """
        This reply, sent `seconds` after the request arrives.
        """
        return replace(self, delay_seconds=seconds)


@dataclass(frozen=True)
class RecordedRequest:
    """
    One request as the stand-in saw it; the Authorization value is redacted.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    text: str
    body: Any = field(default=None)
    # time.monotonic() when the request arrived (rate budget tests read the spacing).
    received_at: float = field(default_factory=time.monotonic)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """
        The chat messages of a chat-completions request (empty for anything else).
        """
        if isinstance(self.body, dict) and isinstance(self.body.get("messages"), list):
            return list(self.body["messages"])
        return []


class OpenAIStandIn(Served):
    """
    The server: start it with `with OpenAIStandIn() as server:` or `start()` / `close()`.
    """

    def __init__(
        self,
        *,
        default_output: Mapping[str, object] = DEFAULT_OUTPUT,
        latency: float = 0.0,
    ) -> None:
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._script: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._default_output = dict(default_output)
        self._latency = latency
        self._connections: set[socket.socket] = set()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        """
        Bind 127.0.0.1 on a free port and serve from a background thread.
        """
        if self._httpd is not None:
            raise RuntimeError("stand-in already started")
        self._closing.clear()
        self._httpd = _Server(("127.0.0.1", 0), _Handler, standin=self)
        # A short poll interval: `shutdown()` waits up to one interval, once per test.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="openai-standin",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """
        Stop serving; delayed replies still waiting are abandoned and open connections closed.
        """
        if self._httpd is None:
            return
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        # Keep-alive connections would otherwise leave handler threads blocked on a read.
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    @property
    def base_url(self) -> str:
        """
        The URL to give the SDK, e.g. "http://127.0.0.1:PORT/v1".
        """
        if self._httpd is None:
            raise RuntimeError("stand-in not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    # --- scripting and inspection ---------------------------------------------------------------

    def script(self, *replies: Reply) -> None:
        """
        Queue replies; each request takes the next one, then the default once the queue is empty.
        """
        with self._lock:
            self._script.extend(replies)

    def set_default(
        self, *, output: Mapping[str, object] | None = None, latency: float | None = None
    ) -> None:
        """
        Change what unscripted requests get: the structured output and/or the fixed latency.
        """
        with self._lock:
            if output is not None:
                self._default_output = dict(output)
            if latency is not None:
                self._latency = latency

    @property
    def requests(self) -> list[RecordedRequest]:
        """
        A copy of every request received so far, oldest first.
        """
        with self._lock:
            return list(self._requests)

    @property
    def pending(self) -> int:
        """
        How many scripted replies have not been used yet.
        """
        with self._lock:
            return len(self._script)

    def reset(self) -> None:
        """
        Forget recorded requests and unused scripted replies.
        """
        with self._lock:
            self._script.clear()
            self._requests.clear()

    # --- used by the handler threads ------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _next_reply(self) -> Reply:
        with self._lock:
            default_output = dict(self._default_output)
            if self._script:
                reply = self._script.popleft()
            else:
                reply = Reply(use_default=True, delay_seconds=self._latency)
        if reply.use_default:
            return Reply.json_output(default_output).after(reply.delay_seconds)
        return reply

    def _track(self, conn: socket.socket, *, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _wait(self, seconds: float) -> bool:
        """
        Sleep up to `seconds`; False when the server is closing meanwhile.
        """
        return not self._closing.wait(seconds) if seconds > 0 else not self._closing.is_set()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any, *, standin: OpenAIStandIn) -> None:
        self.standin = standin
        super().__init__(address, handler)


class _Handler(QuietHandler):
    # HTTP/1.1 so the SDK keeps its connection alive, as it does with the real API.
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every reply, which would skew latency benchmarks.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.standin._track(self.connection, open_=True)

    def finish(self) -> None:
        self.server.standin._track(self.connection, open_=False)
        super().finish()

    def do_POST(self) -> None:
        standin = self.server.standin
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        text = raw.decode("utf-8", errors="replace")
        try:
            body: Any = json.loads(text) if text else None
        except json.JSONDecodeError:
            body = None
        standin._record(
            RecordedRequest(
                method=self.command,
                path=self.path,
                headers=_redacted(self.headers.items()),
                text=text,
                body=body,
            )
        )
        if self.path.split("?")[0] != CHAT_COMPLETIONS_PATH:
            self._send(404, {"error": {"message": "Unknown URL.", "code": "unknown_url"}}, ())
            return
        reply = standin._next_reply()
        if not standin._wait(reply.delay_seconds) or reply.drop_connection:
            self.close_connection = True
            return
        if reply.error is not None:
            self._send(reply.status_code, {"error": dict(reply.error)}, reply.headers)
            return
        model = body.get("model", "gpt-4o-mini") if isinstance(body, dict) else "gpt-4o-mini"
        completion = _completion(str(model), reply, prompt_chars=len(text))
        self._send(reply.status_code, completion, reply.headers)

    def _send(
        self, status: int, payload: Mapping[str, object], headers: tuple[tuple[str, str], ...]
    ) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("x-request-id", f"req_standin_{time.monotonic_ns()}")
            self.send_header("openai-processing-ms", "1")
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first (its timeout is shorter than our delay): nothing to do.
            self.close_connection = True


def _redacted(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {
        name.lower(): "<redacted>" if name.lower() == "authorization" else value
        for name, value in items
    }


def _completion(model: str, reply: Reply, *, prompt_chars: int) -> dict[str, object]:
    content = reply.content
    completion_tokens = max(1, len(content or reply.refusal_text or "") // 4)
    prompt_tokens = max(1, prompt_chars // 4)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": content,
                    "refusal": reply.refusal_text,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_standin",
    }
