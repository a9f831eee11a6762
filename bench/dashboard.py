"""
(10) The dashboard over 1,000,000 job records: server time per page, and every query's plan.

The database holds N job records with their queue rows and events (records spread over the 14
days of retention, every status, N/100 groups and N/10 users, plus one 08:00 GeneratePrompt wave
of up to 10,000), loaded in bulk and vacuumed as autovacuum would leave them. What the pages show
is the same in both worlds (a group's 100 records, a user's ten, 200 failures in the wave, 20
running jobs); only the tables' size differs. Each page is served
by the real app (`broseph.dashboard.create_app`, Basic auth on) and called in process over ASGI
(httpx): the time from request to the whole response, median of REQUESTS calls after two warm-up
calls. Baseline: the same page in the same round over BASELINE records, in a second database on
the same server, requested in turn with ours — so the ratio says how much a page slows down with
the tables' size (1× = not at all).

Plans: the functions each page runs (`broseph.ops.inspect` / `overview` / `bulk`, the SQL inside
broseph.find_records included) run once more with auto_explain on the connection; the benchmark
fails unless every read of job_records, procrastinate_jobs and procrastinate_events goes through
an index (Index Scan, Index Only Scan, or a Bitmap Heap Scan fed by its Bitmap Index Scan) —
never a sequential scan. At the smoke run's size a sequential scan is the planner's right choice,
so there the check is that an index path exists (sequential scans disabled). Needs a superuser
(auto_explain, and the bulk load skips triggers with session_replication_role).
"""

from __future__ import annotations

import datetime
import json
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row
from pydantic import SecretStr

from bench.dashboard_world import World, load
from bench.database import BenchDatabase, with_dbname
from bench.harness import Context, Metric, Repetition, Sample, Target, at_most, both
from broseph import sql
from broseph.dashboard import create_app
from broseph.ops import bulk, inspect, overview
from broseph.settings import Settings

number = 10
title = "Dashboard pages over 1,000,000 job records"
max_reps = 1  # one round loads a million records
BASELINE = 1_000
REQUESTS = 25
BIG_TABLES = ("job_records", "procrastinate_jobs", "procrastinate_events")
# Reads through an index (a Bitmap Heap Scan only ever reads what its Bitmap Index Scan found).
INDEX_SCANS = ("Index Scan", "Index Only Scan", "Bitmap Heap Scan")
USER, PASSWORD = "bench", "bench-password"


def ratio_at_most(x: float) -> Target:
    return Target(f"≤ {x:g}×", lambda row: row.ratio.median <= x)


@dataclass(frozen=True)
class Page:
    key: str
    label: str
    target: Target


# Pages bounded by a page size answer as fast on a million records as on a thousand; the
# overview reads the last 24 hours (about N/14 records here) and so grows with the daily volume.
_SIZE_FREE = both(at_most(100, "ms"), ratio_at_most(2))
PAGES = (
    Page("overview", "overview", at_most(250, "ms")),
    Page("jobs", "jobs, first page (no filter)", _SIZE_FREE),
    Page("jobs_deep", "jobs, a page one week back (keyset cursor)", _SIZE_FREE),
    Page("jobs_wave", "jobs: failed GeneratePrompt since 07:55 (+ count)", _SIZE_FREE),
    Page("jobs_rare", "jobs: a filter matching nothing (+ count)", _SIZE_FREE),
    Page("jobs_group", "jobs: one group (+ count)", _SIZE_FREE),
    Page("jobs_user", "jobs: one user, failed (+ count)", _SIZE_FREE),
    Page("job", "one job: record, queue row, timeline", _SIZE_FREE),
    Page("bulk", "bulk retry confirmation (count of failed in the wave)", _SIZE_FREE),
    Page("workers", "workers", _SIZE_FREE),
)
metrics = tuple(
    Metric(
        page.key,
        f"(10) {page.label}, server time per page",
        "ms",
        baseline=f"same page, {BASELINE:,} records (smoke: 500), same round",
        target=page.target,
        decimals=1,
    )
    for page in PAGES
)


async def rounds(ctx: Context) -> AsyncIterator[Repetition]:
    n = ctx.size(full=1_000_000, smoke=5_000)
    small = ctx.size(full=BASELINE, smoke=500)
    ctx.note(
        f"(10) {n:,} job records (+ queue rows, ~{3 * n:,} events) against {small:,};"
        f" median of {REQUESTS} requests per page, in process over ASGI (no network)."
    )
    # The small world lives in a database of its own on the same server, so the two pages are
    # requested in turn (small, big, small, …): a change of the machine's load hits both alike.
    server = ctx.db.admin_url or with_dbname(ctx.db.url, "postgres")
    for _ in range(ctx.reps):
        small_db = await BenchDatabase.open(None, server=server)
        try:
            await ctx.db.reset()
            started = time.perf_counter()
            big_world = await load(ctx.db.url, n)
            ctx.note(f"(10) loaded {n:,} records in {time.perf_counter() - started:.0f} s.")
            small_world = await load(small_db.url, small)
            ours, baseline = await time_pages((ctx.db.url, big_world), (small_db.url, small_world))
        finally:
            await small_db.close()
        # At the smoke run's size a sequential scan is the planner's right choice; there the
        # check is that an index path exists for every read (sequential scans disabled).
        found = await plans(ctx.db.url, big_world, index_paths_only=ctx.smoke)
        ctx.note(
            "(10) plans, per page — reads of the big tables"
            + (" (smoke size: sequential scans disabled)" if ctx.smoke else "")
            + ": "
            + found
        )
        yield {p.key: Sample(ours[p.key], baseline[p.key]) for p in PAGES}
    await ctx.db.reset()


# --- the pages --------------------------------------------------------------------------------


def _paths(world: World) -> dict[str, str]:
    since = (world.wave_at - datetime.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
    return {
        "overview": "/",
        "jobs": "/jobs",
        "jobs_deep": f"/jobs?after={world.middle.token()}",
        "jobs_wave": f"/jobs?status=failed&type=GeneratePrompt&since={since}",
        "jobs_rare": "/jobs?status=cancelled&type=NotifyMembers&since=1h",
        "jobs_group": f"/jobs?group={world.group}",
        "jobs_user": f"/jobs?user={world.user}&status=failed",
        "job": f"/jobs/{world.failed}",
        "bulk": f"/bulk?action=retry&type=GeneratePrompt&since={since}",
        "workers": "/workers",
    }


async def time_pages(*worlds: tuple[str, World]) -> list[dict[str, float]]:
    """
    Median milliseconds per page in each world, served by the real app in process; the worlds'
    requests alternate, after two warm-up requests each.
    """
    apps = [create_app(_settings(url)) for url, _ in worlds]
    clients = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://x", auth=(USER, PASSWORD)
        )
        for app in apps
    ]
    found: list[dict[str, float]] = [{} for _ in worlds]
    try:
        for key in _paths(worlds[0][1]):
            times: list[list[float]] = [[] for _ in worlds]
            for i in range(REQUESTS + 2):
                for w, ((_, world), client) in enumerate(zip(worlds, clients, strict=True)):
                    path = _paths(world)[key]
                    started = time.perf_counter()
                    response = await client.get(path)
                    elapsed = time.perf_counter() - started
                    if response.status_code != 200:
                        raise RuntimeError(f"{path}: HTTP {response.status_code}")
                    if i >= 2:
                        times[w].append(elapsed * 1000)
            for w, measured in enumerate(times):
                found[w][key] = statistics.median(measured)
    finally:
        for client in clients:
            await client.aclose()
        for app in apps:
            await app.state.dashboard.database.close()
    return found


def _settings(url: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        dashboard_user=USER,
        dashboard_password=SecretStr(PASSWORD),
    )


# --- the plans --------------------------------------------------------------------------------

Reader = Callable[[inspect.Conn], Awaitable[Any]]


def _readers(world: World) -> dict[str, Reader]:
    since = world.wave_at - datetime.timedelta(minutes=5)
    wave = inspect.Filter(statuses=("failed",), job_type="GeneratePrompt", since=since)
    rare = inspect.Filter(
        statuses=("cancelled",), job_type="NotifyMembers", since=inspect.parse_since("1h")
    )
    group = inspect.Filter(group_id=world.group)
    user = inspect.Filter(user_id=world.user, statuses=("failed",))

    async def listing(conn: inspect.Conn, flt: inspect.Filter) -> None:
        await inspect.find(conn, flt, limit=50)
        await inspect.count(conn, flt, cap=10_000)

    async def workers(conn: inspect.Conn) -> None:
        for name in ("workers", "running_jobs"):
            await conn.execute(sql.query(name))

    return {
        "overview": lambda c: overview.load(c),
        "jobs": lambda c: inspect.find(c, inspect.Filter(), limit=50),
        "jobs_deep": lambda c: inspect.find(c, inspect.Filter(), after=world.middle, limit=50),
        "jobs_wave": lambda c: listing(c, wave),
        "jobs_rare": lambda c: listing(c, rare),
        "jobs_group": lambda c: listing(c, group),
        "jobs_user": lambda c: listing(c, user),
        "job": lambda c: inspect.show(c, str(world.failed)),
        "bulk": lambda c: bulk.preview(c, "retry", inspect.Filter(job_type="GeneratePrompt",
                                                                   since=since)),
        "workers": workers,
    }  # fmt: skip


async def plans(url: str, world: World, *, index_paths_only: bool = False) -> str:
    """
    Run each page's reads under auto_explain; fail unless the big tables are read through
    indexes only. Returns a summary for the report's notes.
    """
    summary = []
    for key, reader in _readers(world).items():
        scans = await explained_scans(url, reader, no_seqscan=index_paths_only)
        on_big = sorted({f"{node} on {table}" for node, table in scans if table in BIG_TABLES})
        bad = [s for s in on_big if not s.startswith(INDEX_SCANS)]
        if bad:
            raise AssertionError(f"(10) page {key!r} reads a big table without an index: {bad}")
        summary.append(f"{key}: {', '.join(on_big) or 'none'}")
    return "; ".join(summary)


async def explained_scans(
    url: str, reader: Reader, *, no_seqscan: bool = False
) -> list[tuple[str, str]]:
    """
    (node type, table) of every scan in the plans of every statement `reader` runs, the
    statements inside SQL functions included (auto_explain, nested statements on).
    """
    notices: list[str] = []
    async with await psycopg.AsyncConnection.connect(
        url, autocommit=True, row_factory=dict_row
    ) as conn:
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        for setting in (
            "LOAD 'auto_explain'",
            "SET auto_explain.log_min_duration = 0",
            "SET auto_explain.log_nested_statements = on",
            "SET auto_explain.log_format = 'json'",
            "SET auto_explain.log_level = 'notice'",
            *(["SET enable_seqscan = off"] if no_seqscan else []),
        ):
            await conn.execute(setting.encode())
        await reader(conn)
    scans: list[tuple[str, str]] = []
    for notice in notices:
        if "{" in notice:
            _walk(json.loads(notice[notice.index("{") :])["Plan"], scans)
    if not scans:
        raise AssertionError("auto_explain reported no plan (is auto_explain available?)")
    return scans


def _walk(node: dict[str, Any], scans: list[tuple[str, str]]) -> None:
    if "Relation Name" in node:
        scans.append((str(node["Node Type"]), str(node["Relation Name"])))
    for child in node.get("Plans", []):
        _walk(child, scans)
