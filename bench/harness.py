"""
What every benchmark shares: repetitions, medians, ratios to a same-run baseline, the table.

A benchmark declares its rows (`Metric`) and yields one `Repetition` per round: for each row the
figure it measured and, where the row has one, the baseline measured in the SAME round on the
same machine. The ratio is taken per round (figure ÷ baseline of that round), then summarised
like the figures: median and min–max over the rounds. Targets are checked on medians.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import statistics
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    from bench.database import BenchDatabase
    from bench.dbstats import DbStats


@dataclass(frozen=True)
class Target:
    """
    A pass mark, shown as `text` and checked on the row's medians.
    """

    text: str
    check: Callable[[Row], bool]


def ratio_at_least(x: float) -> Target:
    return Target(f"≥ {x:g}×", lambda row: row.ratio.median >= x)


def ratio_at_most(x: float) -> Target:
    return Target(f"≤ {x:g}×", lambda row: row.ratio.median <= x)


def at_least(x: float, unit: str = "") -> Target:
    return Target(f"≥ {x:,g} {unit}".strip(), lambda row: row.value.median >= x)


def at_most(x: float, unit: str = "") -> Target:
    return Target(f"≤ {x:,g} {unit}".strip(), lambda row: row.value.median <= x)


def both(first: Target, second: Target) -> Target:
    return Target(f"{first.text} and {second.text}", lambda r: first.check(r) and second.check(r))


@dataclass(frozen=True)
class Metric:
    """
    One row of the table: what is measured, in which unit, against which baseline.
    """

    key: str
    label: str
    unit: str
    # What the baseline is (None: the row has no baseline, and so no ratio).
    baseline: str | None = None
    target: Target | None = None
    # Decimals shown for figures in this unit.
    decimals: int = 0


@dataclass(frozen=True)
class Sample:
    """
    One round's figure for one row, with that round's baseline.
    """

    value: float
    baseline: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline is None:
            return None
        return self.value / self.baseline if self.baseline else math.inf


Repetition = dict[str, Sample]


@dataclass
class Context:
    """
    What a benchmark runs against, and how big it should be.
    """

    db: BenchDatabase
    redis_url: str
    reps: int
    smoke: bool
    workdir: Path
    # Benchmark-specific sizes chosen on the command line (e.g. the wave's group count).
    options: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # The bench database's transactions and WAL (bench/dbstats.py), opened by the run.
    stats: DbStats | None = None

    def size(self, full: int, smoke: int) -> int:
        return smoke if self.smoke else full

    def note(self, text: str) -> None:
        """
        A line printed under the table (sizes used, caveats, breakdowns).
        """
        self.notes.append(text)


class Benchmark(Protocol):
    """
    A module of `bench/`: its rows, and an async generator yielding one repetition per round.
    A module may also set `max_reps` (an int) when one round is all a full run can afford.
    """

    number: int
    title: str
    metrics: Sequence[Metric]

    def rounds(self, ctx: Context) -> AsyncIterator[Repetition]: ...


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values))


@dataclass(frozen=True)
class Row:
    """
    A metric summarised over its repetitions.
    """

    number: int
    metric: Metric
    samples: tuple[Sample, ...]
    # Rounds the benchmark was asked for.
    planned: int = 0

    @property
    def value(self) -> Spread:
        return Spread.of([s.value for s in self.samples])

    @property
    def baseline(self) -> Spread | None:
        values = [s.baseline for s in self.samples if s.baseline is not None]
        return Spread.of(values) if values else None

    @property
    def ratio(self) -> Spread:
        ratios = [r for r in (s.ratio for s in self.samples) if r is not None]
        return Spread.of(ratios) if ratios else Spread(math.nan, math.nan, math.nan)

    @property
    def met(self) -> bool | None:
        if self.metric.target is None or not self.samples:
            return None  # no target, or nothing measured (the run failed)
        return self.metric.target.check(self)

    def problems(self) -> list[str]:
        """
        Why this row is not a complete report (the smoke run's check), or nothing.
        """
        found = []
        if not self.samples or len(self.samples) < self.planned:
            found.append(f"{len(self.samples)} of {self.planned} repetitions")
        for sample in self.samples:
            if not math.isfinite(sample.value):
                found.append(f"figure {sample.value!r}")
            if self.metric.baseline is not None and (
                sample.baseline is None or not math.isfinite(sample.baseline) or not sample.baseline
            ):
                found.append(f"baseline {sample.baseline!r}")
        return found


def planned_reps(bench: Benchmark, ctx: Context) -> int:
    return min(ctx.reps, int(getattr(bench, "max_reps", ctx.reps)))


async def collect(bench: Benchmark, ctx: Context) -> list[Row]:
    """
    Run a benchmark for `ctx.reps` rounds (or its `max_reps`) and summarise each metric.
    """
    reps = planned_reps(bench, ctx)
    rounds: list[Repetition] = []
    async for repetition in bench.rounds(dataclasses.replace(ctx, reps=reps)):
        unknown = set(repetition) - {m.key for m in bench.metrics}
        if unknown:
            raise ValueError(f"benchmark {bench.number} reported unknown metrics {unknown}")
        rounds.append(repetition)
    return [
        Row(bench.number, metric, tuple(r[metric.key] for r in rounds if metric.key in r), reps)
        for metric in bench.metrics
    ]


def run_alone(module_name: str, *, reps: int = 1) -> None:
    """
    One benchmark that needs no database, run by itself (`python -m bench.<name> [--smoke]`):
    its table, its notes and the machine's load on stdout.
    """
    ctx = Context(
        db=cast("BenchDatabase", None),  # never used: the benchmark needs no database
        redis_url="",
        reps=reps,
        smoke="--smoke" in sys.argv[1:],
        workdir=Path("."),
    )
    rows = asyncio.run(collect(cast(Benchmark, sys.modules[module_name]), ctx))
    notes = [*ctx.notes, f"load: {Path('/proc/loadavg').read_text().strip()}"]
    print("\n".join([render(rows), *(f"- {note}" for note in notes)]))


# --- the table ----------------------------------------------------------------------------------

HEADER = (
    "| # | Measure | Unit | Ours: median | min–max | Baseline | Baseline: median | min–max "
    "| Ratio: median | min–max | Target | Met |"
)


def _num(x: float, decimals: int) -> str:
    if math.isnan(x):
        return "—"
    return f"{x:,.{decimals}f}"


def _ratio(x: float) -> str:
    # Two decimals, or two significant digits below 0.1 (a speed-up of 1,000× is not "0.00×").
    return f"{x:.2f}" if x >= 0.1 or x == 0 or not math.isfinite(x) else f"{x:.2g}"


def _span(spread: Spread, decimals: int) -> str:
    return f"{_num(spread.low, decimals)}–{_num(spread.high, decimals)}"


def render(rows: Sequence[Row]) -> str:
    """
    The markdown table: medians over the repetitions, min–max, ratio to the same-run baseline.
    """
    lines = [HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"]
    for row in rows:
        m, d = row.metric, row.metric.decimals
        if not row.samples:
            lines.append(f"| {row.number} | {m.label} | {m.unit} | not run |" + " |" * 8)
            continue
        base = row.baseline
        cells = [
            str(row.number),
            m.label,
            m.unit,
            _num(row.value.median, d),
            _span(row.value, d),
            m.baseline or "—",
            _num(base.median, d) if base else "—",
            _span(base, d) if base else "—",
            f"{_ratio(row.ratio.median)}×" if base else "—",
            f"{_ratio(row.ratio.low)}–{_ratio(row.ratio.high)}×" if base else "—",
            m.target.text if m.target else "—",
            {None: "—", True: "yes", False: "**no**"}[row.met],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def as_dict(row: Row) -> dict[str, object]:
    """
    A row as plain data (for `--json`).
    """
    return {
        "number": row.number,
        "key": row.metric.key,
        "label": row.metric.label,
        "unit": row.metric.unit,
        "baseline": row.metric.baseline,
        "target": row.metric.target.text if row.metric.target else None,
        "met": row.met,
        "samples": [dataclasses.asdict(s) | {"ratio": s.ratio} for s in row.samples],
    }
