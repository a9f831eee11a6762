"""
Helpers of the probe tests: GET a probe as Kubernetes (or curl) does, a fake systemd notify
socket, and waiting for a probe's answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    content_type: str = ""

    @property
    def lines(self) -> dict[str, str]:
        """
        /readyz's "name: reason" lines (the first line is the verdict).
        """
        found = {}
        for line in self.body.splitlines()[1:]:
            name, _, reason = line.partition(": ")
            found[name] = reason
        return found


def get(port: int, path: str, *, timeout: float = 10.0, host: str = "127.0.0.1") -> Answer:
    """
    One GET; an HTTP error status is an answer too. A timeout raises (TimeoutError).
    """
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=timeout) as response:
            return Answer(
                response.status, response.read().decode(), response.headers["Content-Type"]
            )
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read().decode(), error.headers["Content-Type"])


async def aget(port: int, path: str, *, wait: float = 10.0) -> Answer:
    return await asyncio.to_thread(get, port, path, timeout=wait)


async def until_answer(
    port: int, path: str, status: int, *, within: float = 30.0, contains: str = ""
) -> Answer:
    """
    Poll a probe until it answers `status` (and its body contains `contains`).
    """
    deadline = time.monotonic() + within
    last: Answer | str = "no answer yet"
    while True:
        try:
            answer = await aget(port, path, wait=5)
            if answer.status == status and contains in answer.body:
                return answer
            last = answer
        except OSError as exc:  # not listening yet, or a timeout
            last = repr(exc)
        if time.monotonic() > deadline:
            pytest.fail(f"{path} on :{port} did not answer {status} within {within}s: {last}")
        await asyncio.sleep(0.1)


@dataclass
class NotifySocket:
    """
    What systemd listens on for a Type=notify service: a Unix datagram socket.
    """

    path: Path
    sock: socket.socket
    received: list[str] = field(default_factory=list)

    def read(self, timeout: float = 0.0) -> list[str]:
        """
        Every datagram that arrived (waiting up to `timeout` for the first one).
        """
        self.sock.settimeout(timeout if timeout > 0 else 0.0001)
        with contextlib.suppress(TimeoutError, BlockingIOError):
            while True:
                self.received.append(self.sock.recv(4096).decode())
                self.sock.settimeout(0.0001)
        return self.received


@contextlib.contextmanager
def notify_socket(directory: Path) -> Iterator[NotifySocket]:
    path = directory / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        yield NotifySocket(path, sock)
    finally:
        sock.close()
