"""
`broseph health`: exit 0 only when the database answers, migrations are current and enough
workers are alive; non-zero (with the reason) otherwise — including with the database down.
"""

from __future__ import annotations

import json

from broseph.ops import health
from broseph.settings import Settings
from tests import pg
from tests.ops_support import broseph

pytest_plugins = ("tests.ops_fixtures",)  # cluster, ops_url, ops_conn, workers


def _settings(url: str) -> Settings:
    return Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]


async def test_health_checks_workers_backlog_and_migrations(cluster, ops_url, ops_conn):
    await ops_conn.execute(
        "SELECT broseph.enqueue('ProcessEngagement', jsonb_build_object("
        "'group_id', gen_random_uuid()::text, 'local_date', '2026-01-01'))"
    )
    report = await health.check(_settings(ops_url))
    assert report.healthy is False and report.database is True
    assert report.pending_migrations == []
    assert report.problems == ["0 live worker(s), at least 1 expected (heartbeat younger than 30s)"]
    assert {"queue": "engagement", "status": "todo", "jobs": 1} in report.depth
    [engagement] = [q for q in report.pending if q["queue"] == "engagement"]
    assert engagement["jobs"] == 1 and engagement["seconds"] >= 0
    assert (await health.check(_settings(ops_url), min_workers=0)).healthy

    # One live worker (fresh heartbeat) and one lost (silent for an hour).
    await ops_conn.execute(
        "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now()),"
        " (now() - interval '1 hour')"
    )
    report = await health.check(_settings(ops_url), max_pending_age=3600)
    assert report.healthy and (report.live_workers, report.lost_workers) == (1, 1)
    stale = await health.check(_settings(ops_url), max_pending_age=0)
    assert not stale.healthy
    assert stale.problems[0].startswith("queue engagement: oldest pending job waited")

    empty = pg.create_database(cluster.admin_url, prefix="bempty")
    try:
        bare = await health.check(_settings(cluster.url(empty)), min_workers=0)
    finally:
        pg.drop_database(cluster.admin_url, empty)
    assert bare.database and not bare.healthy
    assert {"procrastinate/schema.sql", "0009_operations.sql"} <= set(bare.pending_migrations)
    assert bare.problems[0].startswith("migrations not applied: ")


async def test_broseph_health_exits_0_when_healthy_and_non_zero_with_the_database_down(
    cluster, ops_url, workers
):

    await workers("w")
    alive = broseph(ops_url, "health")
    assert alive.returncode == 0, alive.stdout + alive.stderr
    assert "healthy" in alive.stdout and "live workers: 1" in alive.stdout

    cluster.stop()
    try:
        down = broseph(ops_url, "health", "--json")
    finally:
        cluster.start()
    assert down.returncode == 1
    report = json.loads(down.stdout)
    assert report["database"] is False and report["healthy"] is False
    assert report["problems"][0].startswith("database unreachable: ")


def test_health_refuses_negative_or_non_finite_limits_in_one_line():
    for args in (
        ["--min-workers", "-3"],
        ["--max-pending-age", "-1"],
        ["--max-pending-age", "nan"],
        ["--max-pending-age", "inf"],
    ):
        result = broseph("postgresql://nobody@127.0.0.1:1/x", "health", *args)
        assert result.returncode == 2, args
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(f"error: Invalid value for '{args[0]}'"), line
        assert line.endswith("— see 'broseph health --help'"), line
