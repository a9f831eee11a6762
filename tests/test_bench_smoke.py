"""
The benchmark package stays importable and working: one tiny benchmark, end to end, plus the
table arithmetic. Figures are never asserted here — speed is the benchmarks' business.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from bench import __main__ as bench_main
from bench import enqueue_one, harness
from bench.database import BenchDatabase


def test_every_benchmark_declares_its_rows() -> None:
    numbers = [b.number for b in bench_main.BENCHMARKS]
    assert numbers == sorted(numbers) == list(range(1, len(numbers) + 1))
    for bench in bench_main.BENCHMARKS:
        assert bench.metrics and bench.title
        assert len({m.key for m in bench.metrics}) == len(bench.metrics)


def test_rows_take_medians_ranges_and_per_round_ratios() -> None:
    metric = harness.Metric("x", "x", "jobs/s", baseline="raw", target=harness.ratio_at_least(1))
    row = harness.Row(
        1,
        metric,
        (harness.Sample(90, 100), harness.Sample(120, 100), harness.Sample(300, 200)),
        3,
    )
    assert (row.value.median, row.value.low, row.value.high) == (120, 90, 300)
    # Ratios are per round (0.9, 1.2, 1.5), not the ratio of the medians (120 / 100).
    assert (row.ratio.median, row.ratio.low, row.ratio.high) == (1.2, 0.9, 1.5)
    assert row.met is True
    assert row.problems() == []
    assert harness.Row(1, metric, row.samples[:2], 3).problems() == ["2 of 3 repetitions"]
    # A benchmark that failed has rows without samples: reported "not run", never a crash.
    empty = harness.Row(1, metric, (), 3)
    assert empty.met is None and harness.as_dict(empty)["met"] is None
    assert "not run" in harness.render([empty])
    table = harness.render([row])
    assert "| 1 | x | jobs/s | 120 | 90–300 | raw | 100 | 100–200 | 1.20× | 0.90–1.50× |" in table
    assert table.endswith("| ≥ 1× | yes |")


async def test_enqueue_benchmark_runs_and_reports(admin_url: str) -> None:
    db = await BenchDatabase.open(None, server=admin_url)
    try:
        with tempfile.TemporaryDirectory() as workdir:
            ctx = harness.Context(
                db=db, redis_url="", reps=2, smoke=True, workdir=Path(workdir), options={}
            )
            [row] = await harness.collect(enqueue_one, ctx)
    finally:
        await db.close()
    assert len(row.samples) == 2 and row.problems() == []
    assert all(math.isfinite(s.value) and s.value > 0 for s in row.samples)
    assert ctx.notes and "jobs per side" in ctx.notes[0]


async def test_a_database_with_data_is_refused(admin_url: str) -> None:
    db = await BenchDatabase.open(None, server=admin_url)
    try:
        async with await db.connect(autocommit=True) as conn:
            await conn.execute("INSERT INTO public.groups (name) VALUES ('real data')")
        with pytest.raises(Exception, match="not empty"):
            await BenchDatabase.open(db.url)
    finally:
        await db.close()


# --- the fast path the benchmarks motivated agrees with the slow one ---------------------------
# migrations/0010, 0015: enqueue_many screens a batch with broseph.params_screen and runs the
# per-row broseph.checked_params (which names the problem, or returns the canonical form) only
# when the screen says a row is invalid (2) or not canonical (1). The screen must never pass what
# checked_params refuses, nor call canonical what it would change.

_SPECS = {
    "flat": {"group_id": {"type": "uuid"}, "local_date": {"type": "date", "required": False}},
    "typed": {
        "n": {"type": "integer"},
        "kind": {"type": "enum", "values": ["a", "b"]},
        "note": {"type": "text", "max_length": 5, "required": False},
    },
    "rules": {
        "kind": {
            "type": "enum",
            "values": ["a", "b"],
            "requires": {"a": ["note"], "b": ["data.day"]},
        },
        "note": {"type": "text", "max_length": 5, "required": False},
        "data": {
            "type": "object",
            "required": False,
            "fields": {"day": {"type": "date", "required": False}},
        },
    },
    "nested": {
        "user_id": {"type": "uuid"},
        "data": {
            "type": "object",
            "fields": {
                "group_id": {"type": "uuid", "required": False},
                "deep": {
                    "type": "object",
                    "required": False,
                    "fields": {"day": {"type": "date"}},
                },
            },
        },
    },
}
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            "6f1c1c8e-2b7a-4f0e-9a51-0c3c2d1e4f5a",
            "6F1C1C8E-2B7A-4F0E-9A51-0C3C2D1E4F5A",
            "6f1c1c8e2b7a4f0e9a510c3c2d1e4f5a",
            "2026-02-28",
            "2028-02-29",
            "2026-02-29",
            "0000-01-01",
            "2026-13-01",
            "a",
            "b",
            "abcdef",
            "",
        ]
    ),
    # jsonb holds neither \u0000 nor lone surrogates (Postgres refuses them before any check).
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=6),
)
_KEYS = st.sampled_from(
    ["group_id", "local_date", "n", "kind", "note", "user_id", "data", "deep", "day", "extra"]
)
_VALUES = st.recursive(
    _SCALARS, lambda inner: st.dictionaries(_KEYS, inner, max_size=4), max_leaves=8
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec_name=st.sampled_from(sorted(_SPECS)), value=_VALUES)
def test_params_screen_never_passes_what_checked_params_refuses(
    screen_db: psycopg.Connection[Any], spec_name: str, value: Any
) -> None:
    spec = Jsonb(_SPECS[spec_name])
    screened = screen_db.execute(
        "SELECT broseph.params_screen(%s, ARRAY[%s::jsonb])", (spec, Jsonb(value))
    ).fetchone()
    try:
        with screen_db.transaction():
            row = screen_db.execute(
                "SELECT broseph.checked_params('T', %s, %s, '', 'params')", (spec, Jsonb(value))
            ).fetchone()
        assert row is not None
        checked, changed = True, row[0] != value
    except psycopg.errors.InvalidParameterValue:
        checked, changed = False, False
    assert screened is not None
    # Exactly equal, in fact; "never more permissive" is what behaviour depends on.
    assert (screened[0] < 2) == checked, (spec_name, value)
    if checked:
        assert (screened[0] == 1) == changed, (spec_name, value)


@pytest.fixture(scope="module")
def screen_db(admin_url: str, template_db: str) -> Iterator[psycopg.Connection[Any]]:
    from tests import pg

    name = pg.create_database(admin_url, template=template_db)
    try:
        with psycopg.connect(pg.with_dbname(admin_url, name), autocommit=True) as conn:
            yield conn
    finally:
        pg.drop_database(admin_url, name)
