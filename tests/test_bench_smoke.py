"""
The benchmark package stays importable and working: one tiny benchmark, end to end, plus the
table arithmetic. Figures are never asserted here — speed is the benchmarks' business.
"""

from __future__ import annotations

import asyncio
import math
import os
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
from bench import accounting, cpu, enqueue_one, harness, roundtrips
from bench.database import BenchDatabase
from bench.dbstats import DbStats


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
    at_most = harness.Metric("y", "y", "ms", baseline="raw", target=harness.ratio_at_most(0.5))
    assert harness.Row(1, at_most, (harness.Sample(1, 2),), 1).met is True
    assert harness.Row(1, at_most, (harness.Sample(1.1, 2),), 1).met is False
    table = harness.render([row])
    assert "| 1 | x | jobs/s | 120 | 90–300 | raw | 100 | 100–200 | 1.20× | 0.90–1.50× |" in table
    assert table.endswith("| ≥ 1× | yes |")


async def test_enqueue_benchmark_runs_and_reports(admin_url: str) -> None:
    # End to end with all three sides (ours, raw procrastinate, PgQueuer) and the accounting.
    db = await BenchDatabase.open(None, server=admin_url)
    stats = await DbStats.open(db.url, db.monitor_url, db.name)
    try:
        with tempfile.TemporaryDirectory() as workdir:
            ctx = harness.Context(
                db=db,
                redis_url="",
                reps=2,
                smoke=True,
                workdir=Path(workdir),
                options={},
                stats=stats,
            )
            rows = await harness.collect(enqueue_one, ctx)
    finally:
        await stats.close()
        await db.close()
    for row in rows:
        assert len(row.samples) == 2 and row.problems() == [], row.metric.key
        assert all(math.isfinite(s.value) and s.value > 0 for s in row.samples)
    assert ctx.notes and "jobs per side" in ctx.notes[0]
    # One job per transaction, enqueue + COMMIT on a connection outside autocommit: each side
    # pays BEGIN, its statement, COMMIT — and exactly one transaction — per job.
    assert "3.00 round trips, 1.00 transactions" in ctx.notes[1]
    assert ctx.notes[1].count("3.00 round trips, 1.00 transactions") == 3


async def test_a_database_with_data_is_refused(admin_url: str) -> None:
    db = await BenchDatabase.open(None, server=admin_url)
    try:
        async with await db.connect(autocommit=True) as conn:
            await conn.execute("INSERT INTO public.groups (name) VALUES ('real data')")
        with pytest.raises(Exception, match="not empty"):
            await BenchDatabase.open(db.url)
    finally:
        await db.close()


# --- the accounting: per-process CPU, round trips, transactions, WAL ---------------------------


def _fake_process(root: Path, pid: int, utime: int, stime: int, start: int, ns: int) -> None:
    (root / str(pid)).mkdir(parents=True, exist_ok=True)
    # The command name may hold spaces and parentheses: fields are counted after the last ")".
    fields = ["S", *["0"] * 10, str(utime), str(stime), *["0"] * 6, str(start), "0"]
    (root / str(pid) / "stat").write_text(f"{pid} (post gres (x)) " + " ".join(fields) + "\n")
    (root / str(pid) / "schedstat").write_text(f"{ns} 0 0\n")


def test_process_cpu_reads_proc(tmp_path: Path) -> None:
    ticks = cpu._TICKS
    _fake_process(tmp_path, 42, utime=3 * ticks, stime=ticks, start=777, ns=4_250_000_000)
    # Whole process (all threads): utime + stime; the start time tells reused pids apart.
    assert cpu.process_cpu(42, tmp_path) == (4.0, 777)
    if cpu._SCHEDSTAT:  # a single-threaded backend: the scheduler's nanoseconds
        assert cpu.process_cpu(42, tmp_path, single_threaded=True) == (4.25, 777)
    assert cpu.process_cpu(43, tmp_path) is None  # gone
    (tmp_path / "stat").write_text("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n")
    assert cpu.machine_ticks(tmp_path) == (150.0, 1000.0)


def test_cpu_of_a_real_process_is_its_own() -> None:
    import subprocess
    import sys

    # The child burns CPU, says how much by its own precise clock, then idles. /proc's utime +
    # stime are sampled per clock tick and can run a little behind that clock, so the reading is
    # compared with what the child reports rather than waited for to reach a threshold.
    burn = (
        "import sys, time\n"
        "while time.process_time() < 0.6: pass\n"
        "print(time.process_time(), flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", burn], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        burnt = float(child.stdout.readline())
        found = cpu.process_cpu(child.pid)
        again = cpu.process_cpu(child.pid)
        assert found is not None and again is not None and found[1] == again[1]
        assert abs(found[0] - burnt) < 0.3, (found, burnt)
        assert found[0] > 0.3, (found, burnt)
    finally:
        child.kill()
        child.wait()


async def test_meter_counts_this_databases_backends_even_those_that_exit(admin_url: str) -> None:
    db = await BenchDatabase.open(None, server=admin_url)
    other = await BenchDatabase.open(None, server=admin_url)
    try:
        meter = cpu.CpuMeter(
            db.monitor_url,
            db.name,
            [cpu.Group("mine", app_names=("bench-test-mine",))],
            sample_every=0.05,
        )
        meter.start()
        spin = "SELECT count(*) FROM generate_series(1, 4000000)"
        # A backend of the bench database that works, then exits before the interval ends.
        async with await psycopg.AsyncConnection.connect(
            db.url, application_name="bench-test-mine", autocommit=True
        ) as conn:
            await conn.execute(spin)
            await asyncio.sleep(0.2)  # at least one sighting after the work
        # Another database's backend, same application_name: not this database's.
        async with await psycopg.AsyncConnection.connect(
            other.url, application_name="bench-test-mine", autocommit=True
        ) as conn:
            await conn.execute(spin)
            await conn.execute(spin)
        # The harness's own backend in this database: no group's.
        async with await db.connect(autocommit=True) as conn:
            await conn.execute(spin)
            await asyncio.sleep(0.2)
        usage = meter.stop()
    finally:
        await other.close()
        await db.close()
    mine = usage.groups["mine"]
    assert mine.processes == 0
    # The one spin (~0.1–0.5 s here), not the other database's two.
    assert 0.05 < mine.backends < 2.0
    assert usage.other_backends > 0.05
    assert usage.other_backends < 3 * mine.backends
    assert 0 <= usage.busy_share <= 1


async def test_round_trips_are_counted_where_psycopg_waits(tmp_path: Path) -> None:
    url = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    async with await psycopg.AsyncConnection.connect(url) as conn:
        counter = roundtrips.count(conn)
        await conn.execute("SELECT 1")  # BEGIN (implicit) + the statement
        await conn.execute("SELECT 2")
        await conn.commit()
        assert counter.value == 4
        await conn.set_autocommit(True)  # client-side only: no round trip
        await conn.execute("LISTEN bench_test")
        await conn.execute("NOTIFY bench_test")
        async for _ in conn.notifies(timeout=0.2, stop_after=1):
            pass  # waiting for a pushed notification: no round trip
        assert counter.value == 6
    # A process-wide counter lives in a file another process can read.
    path = tmp_path / "trips"
    shared = roundtrips.Counter(path)
    assert roundtrips.read(path) == 0
    for _ in range(3):
        shared.add(None)
    shared.add(type("Gen", (), {"__name__": "notifies"})())
    assert roundtrips.read(path) == 3


async def test_transactions_and_wal_are_this_databases(admin_url: str) -> None:
    db = await BenchDatabase.open(None, server=admin_url)
    other = await BenchDatabase.open(None, server=admin_url)
    stats = await DbStats.open(db.url, db.monitor_url, db.name)
    try:
        async with await db.connect(autocommit=True) as conn:
            await conn.execute("CREATE TABLE t (x text)")
        mark = await stats.mark()
        async with await db.connect(autocommit=True) as conn:
            for _ in range(7):
                await conn.execute(
                    "INSERT INTO t SELECT repeat('x', 100) FROM generate_series(1, 50)"
                )
        # Another database writes ten times as much at the same time: not ours.
        async with await other.connect(autocommit=True) as conn:
            await conn.execute("CREATE TABLE u (x text)")
            await conn.execute(
                "INSERT INTO u SELECT repeat('y', 100) FROM generate_series(1, 3500)"
            )
        delta = await stats.since(mark, settle=False)
    finally:
        await stats.close()
        await other.close()
        await db.close()
    # The seven statements and the connection's own (accounting.CONNECTION_XACTS), exactly.
    assert delta.xacts == 7 + accounting.CONNECTION_XACTS
    if stats.walinspect:
        assert delta.wal_exact
        assert 7 * 50 * 100 < delta.wal_bytes < 7 * 50 * 400 + delta.wal_fpi_bytes
        assert 0 <= delta.wal_fpi_bytes < delta.wal_bytes
        assert delta.server_wal_bytes > delta.wal_bytes + 3500 * 100


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
