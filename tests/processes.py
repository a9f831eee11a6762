"""
Processes the tests start as an operator would: the `broseph` command, SIGTERM to stop, and a
fixture's list of started processes stopped at its end.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def broseph(
    args: tuple[str, ...], env: Mapping[str, str], *, timeout: float, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """
    The `broseph` console script of this environment with `env` as its whole environment.
    """
    command = [str(Path(sys.executable).parent / "broseph"), *args]
    return subprocess.run(
        command, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout
    )


def stop(process: subprocess.Popen[Any], within: float) -> int:
    """
    SIGTERM, then SIGKILL if it has not exited `within` seconds later; its exit code.
    """
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(within)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def each_closed(close: Callable[[T], object]) -> Iterator[list[T]]:
    """
    For a fixture (`yield from`): a list the test appends started things to, each closed after.
    """
    started: list[T] = []
    yield started
    for item in started:
        close(item)
