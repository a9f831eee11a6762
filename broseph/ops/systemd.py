"""
systemd's notify protocol, the few lines of it a `Type=notify` unit with `WatchdogSec=` needs:
READY=1 once the process serves, WATCHDOG=1 every half watchdog period, STOPPING=1 on the way
out. Without NOTIFY_SOCKET (not started by systemd) nothing is sent.

WATCHDOG=1 is sent by a task on the process's event loop, so a loop that stops running stops the
pings and systemd restarts the process after WatchdogSec — the same thing /livez checks
(broseph/ops/probes.py), and like it independent of the database.

The protocol is one datagram per message on a Unix socket (sd_notify(3)); written here rather
than depending on libsystemd bindings, which need a C build.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Mapping

import structlog

logger = structlog.get_logger("broseph.ops")


def notify(message: str, environ: Mapping[str, str] = os.environ) -> bool:
    """
    Send one notification to systemd; False when not started by systemd (or it is gone).
    """
    address = environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # Linux abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        logger.warning("systemd_notify_failed", error=str(exc))
        return False
    return True


def watchdog_period(environ: Mapping[str, str] = os.environ) -> float | None:
    """
    Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when no watchdog is armed
    for this process.
    """
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid.isdigit() and int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000


async def _ping(period: float, environ: Mapping[str, str]) -> None:
    while True:
        notify("WATCHDOG=1", environ)
        await asyncio.sleep(period)


@contextlib.asynccontextmanager
async def watchdog(environ: Mapping[str, str] = os.environ) -> AsyncIterator[None]:
    """
    READY=1 now, WATCHDOG=1 from the loop while the block runs (when armed), STOPPING=1 after.
    """
    if not environ.get("NOTIFY_SOCKET"):
        yield
        return
    notify("READY=1", environ)
    period = watchdog_period(environ)
    pinger = None
    if period is not None:
        pinger = asyncio.create_task(_ping(period, environ), name="systemd watchdog")
    try:
        yield
    finally:
        if pinger is not None:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger
        notify("STOPPING=1", environ)
