"""
The HTTP endpoint of every long-running broseph process — worker, ingress, dashboard — on
`http://METRICS_ADDR:METRICS_PORT`:

- `GET /livez`: 200 when the process's event loop runs a no-op within LOOP_TIMEOUT seconds, 503
  when it does not (a blocked or dead loop). Nothing else is asked: never the database, which a
  worker rides out by design (DB_OUTAGE_TIMEOUT) — restarting it during an outage would only
  drop its in-flight work and lose nothing that waiting would not also get back.
- `GET /readyz`: 200 when every readiness check of the process passes (broseph/ops/readiness.py:
  database, migrations, LISTEN, Redis…), 503 otherwise; one line per check, failing ones with
  their reason.
- `GET /metrics`: Prometheus text from prometheus_client's registry (broseph/metrics.py, plus
  the process and GC collectors).

The server runs in a thread (the stdlib's WSGI server, as prometheus_client's own does) so that
it can still answer when the loop cannot: the probes themselves run on the loop, scheduled from
that thread and waited for with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import socketserver
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import prometheus_client
import structlog

from broseph.logs import scrub
from broseph.ops import systemd
from broseph.settings import Settings

logger = structlog.get_logger("broseph.ops")

# /livez: how long the loop may take to run a no-op. A loop busy for longer cannot heartbeat,
# renew locks or answer NOTIFY either.
LOOP_TIMEOUT = 2.0
# /readyz: the budget of all checks together (each gets what is left of it).
READY_TIMEOUT = 4.0

Check = Callable[[], Awaitable[None]]
Start = Callable[[], contextlib.AbstractAsyncContextManager[Any]]


class NotReady(Exception):
    """
    Raised by a readiness check; its message is the reason /readyz shows.
    """


@dataclass
class Probes:
    """
    The three endpoints as a WSGI application, for the event loop `loop` and these checks, run
    in order (later checks may rely on what earlier ones found, e.g. migrations on database).
    """

    loop: asyncio.AbstractEventLoop
    checks: Mapping[str, Check]

    def __post_init__(self) -> None:
        self._metrics = prometheus_client.make_wsgi_app()
        # The checks in progress: concurrent /readyz requests share one run (a flood of probes
        # costs the database no more than one).
        self._running: asyncio.Future[list[tuple[str, str | None]]] | None = None

    def livez(self) -> tuple[int, str]:
        try:
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0), self.loop).result(LOOP_TIMEOUT)
        except TimeoutError:
            return 503, f"event loop did not answer within {LOOP_TIMEOUT:g} s\n"
        except RuntimeError:  # the loop is closed: the process is on its way out
            return 503, "event loop stopped\n"
        return 200, "ok\n"

    def readyz(self) -> tuple[int, str]:
        try:
            future = asyncio.run_coroutine_threadsafe(self._ready(), self.loop)
        except RuntimeError:
            return 503, "not ready: event loop stopped\n"
        try:
            results = future.result(READY_TIMEOUT + LOOP_TIMEOUT)
        except TimeoutError:
            future.cancel()
            wait = READY_TIMEOUT + LOOP_TIMEOUT
            return 503, f"not ready: no answer from the event loop within {wait:g} s\n"
        failing = [name for name, reason in results if reason is not None]
        lines = [f"{name}: {reason or 'ok'}" for name, reason in results]
        head = f"not ready: {', '.join(failing)}" if failing else "ready"
        return (503 if failing else 200), "\n".join([head, *lines]) + "\n"

    async def _ready(self) -> list[tuple[str, str | None]]:
        if self._running is None:
            self._running = asyncio.ensure_future(self._check())
            self._running.add_done_callback(self._done)
        return await asyncio.shield(self._running)

    def _done(self, _: asyncio.Future[list[tuple[str, str | None]]]) -> None:
        self._running = None

    async def _check(self) -> list[tuple[str, str | None]]:
        deadline = self.loop.time() + READY_TIMEOUT
        results: list[tuple[str, str | None]] = []
        for name, check in self.checks.items():
            results.append((name, await _reason(check, deadline - self.loop.time())))
        return results

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == "/metrics":
            body: Iterable[bytes] = self._metrics(environ, start_response)
            return body
        if path == "/livez":
            status, text = self.livez()
        elif path == "/readyz":
            status, text = self.readyz()
        else:
            status, text = 404, "not found: /livez, /readyz or /metrics\n"
        reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
        start_response(
            f"{status} {reason}",
            [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")],
        )
        return [text.encode()]


async def _reason(check: Check, budget: float) -> str | None:
    """
    None when the check passes, else one line saying why not (secrets scrubbed).
    """
    if budget <= 0:
        return "not checked: the readiness budget was spent by earlier checks"
    try:
        await asyncio.wait_for(check(), budget)
    except NotReady as exc:
        return scrub(str(exc))
    except TimeoutError:
        return f"no answer within {budget:.1f} s"
    except Exception as exc:  # a check that breaks says so, as its reason
        detail = str(exc).strip().splitlines()
        return scrub(f"{type(exc).__name__}: {detail[-1] if detail else ''}")[:300]
    return None


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    # A request never keeps the process alive, and no thread list grows (Python ≥ 3.7).
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    # A client that connects and says nothing is dropped instead of holding a thread.
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:
        """
        A probe every few seconds is not news.
        """


@contextlib.asynccontextmanager
async def serving(checks: Mapping[str, Check], *, port: int, addr: str) -> AsyncIterator[int]:
    """
    Serve /livez, /readyz and /metrics for the running loop while the block runs; yields the
    bound port (port 0 binds a free one).
    """
    family, _, _, _, sockaddr = socket.getaddrinfo(
        addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    server_class = type("ProbeServer", (_Server,), {"address_family": family})
    app = Probes(asyncio.get_running_loop(), checks)
    server: WSGIServer = make_server(
        str(sockaddr[0]), port, app, server_class, handler_class=_Quiet
    )
    thread = threading.Thread(target=server.serve_forever, name="broseph-probes", daemon=True)
    thread.start()
    bound = int(server.server_port)
    logger.info("probes_serving", port=bound, addr=addr, paths=["/livez", "/readyz", "/metrics"])
    try:
        yield bound
    finally:
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        thread.join(timeout=5)


def background(run: Callable[[], Coroutine[Any, Any, None]], name: str) -> Start:
    """
    A task beside the probes (a metrics sampler): started with them, cancelled with them.
    """

    @contextlib.asynccontextmanager
    async def started() -> AsyncIterator[None]:
        task = asyncio.create_task(run(), name=name)
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return started


@contextlib.asynccontextmanager
async def running(
    settings: Settings, checks: Mapping[str, Check], *, beside: Iterable[Start] = ()
) -> AsyncIterator[int | None]:
    """
    What a long-running process serves beside its work: the probe endpoint when METRICS_PORT is
    set (yields its port, else None), the tasks `beside` it (samplers: they only feed /metrics),
    and systemd's watchdog when systemd asks for one (NOTIFY_SOCKET: broseph/ops/systemd.py).
    """
    async with contextlib.AsyncExitStack() as stack:
        port: int | None = None
        if settings.metrics_port is not None:
            port = await stack.enter_async_context(
                serving(checks, port=settings.metrics_port, addr=settings.metrics_addr)
            )
            for start in beside:
                await stack.enter_async_context(start())
        await stack.enter_async_context(systemd.watchdog())
        yield port
