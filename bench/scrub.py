"""
(11) Log scrubbing: the time `broseph.logs.scrub` takes over one long value, against the
scrubber it replaced (same run, same machine).

The input is the shape that made the old pattern quadratic: one run of word characters without
'@' — a megabyte `source` or payload field logged whole. The old scrubber's URL-password pattern,
`(\\w+://[^:@/\\s]+:)[^@/\\s]+@`, restarted its `\\w+` at every character of such a run and
rescanned the rest of it: 30,000 characters took about a second, and each tenfold length a
hundredfold time. Ours starts only where "://" (or another literal) occurs and never scans a
character from two starting points.

The old scrubber runs in a subprocess, killed at a cap (`CAP_SECONDS`, smoke `SMOKE_CAP`): a capped
baseline is a lower bound (then the ratio is an upper bound), said in the notes.

    python -m bench.scrub            # this benchmark alone, its table
    python -m bench --only 11
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator

from bench import harness
from bench.harness import Context, Metric, Repetition, Sample
from broseph import logs

number = 11
title = "Log scrubbing of one long value"
# The old scrubber over a megabyte runs for about 20 minutes: one round is all a run affords.
max_reps = 1
SIZES = (("30k", 30_000), ("300k", 300_000), ("1m", 1_000_000))
CAP_SECONDS = 150.0
SMOKE_CAP = 3.0
# broseph/logs.py's scrubber before the linear one, verbatim.
OLD_PATTERNS = (
    (r"sk-[A-Za-z0-9_\-]{8,}", "[redacted]"),
    (r"(?i)bearer\s+[A-Za-z0-9._\-]+", "[redacted]"),
    (r"(\w+://[^:@/\s]+:)[^@/\s]+@", r"\g<1>[redacted]@"),
)
metrics = tuple(
    Metric(
        f"scrub_{key}",
        f"(11) scrub one {size:,}-character value",
        "ms",
        baseline="old scrubber (\\w+://… URL-password pattern)",
        decimals=1,
    )
    for key, size in SIZES
)

_OLD_SCRUB = """
import re, sys, time
patterns = [(re.compile(p), r) for p, r in {patterns!r}]
text = "job_start source=" + "a" * int(sys.argv[1])
started = time.perf_counter()
for pattern, replacement in patterns:
    text = pattern.sub(replacement, text)
print(time.perf_counter() - started)
"""


def value(size: int) -> str:
    return "job_start source=" + "a" * size


def ours(size: int) -> float:
    """
    Seconds `logs.scrub` takes over the value (best of three: the figure, not the noise).
    """
    text = value(size)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        logs.scrub(text)
        best = min(best, time.perf_counter() - started)
    return best


def old(size: int, cap: float) -> tuple[float, bool]:
    """
    Seconds the old scrubber takes over the value, in a fresh interpreter; (cap, True) when it
    had not finished at the cap.
    """
    code = _OLD_SCRUB.format(patterns=OLD_PATTERNS)
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, str(size)],
            capture_output=True,
            text=True,
            timeout=cap,
            check=True,
        )
    except subprocess.TimeoutExpired:
        return cap, True
    return float(done.stdout.strip()), False


async def rounds(ctx: Context) -> AsyncIterator[Repetition]:
    cap = SMOKE_CAP if ctx.smoke else CAP_SECONDS
    capped: set[str] = set()
    for _ in range(ctx.reps):
        repetition: Repetition = {}
        for key, size in SIZES:
            figure = await asyncio.to_thread(ours, size)
            baseline, hit_cap = await asyncio.to_thread(old, size, cap)
            if hit_cap:
                capped.add(f"{size:,}")
            repetition[f"scrub_{key}"] = Sample(figure * 1000, baseline * 1000)
        yield repetition
    ctx.note(
        "(11) one log value of N word characters without '@'; ours: best of 3 in-process;"
        f" old: one run in a fresh interpreter, killed at {cap:g} s"
        + (
            f" — capped at {', '.join(sorted(capped))} characters, so those baselines are lower"
            " bounds and their ratios upper bounds"
            if capped
            else ""
        )
    )


if __name__ == "__main__":
    harness.run_alone(__name__)
