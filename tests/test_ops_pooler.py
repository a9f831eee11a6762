"""
Transaction-pooler mode (Supavisor :6543, PgBouncer): LISTEN/NOTIFY off and prepared statements
off — the worker finds its jobs by polling, and they all run.
"""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict

from tests import pg, pgcluster
from tests.ops_support import enqueue_naps, report, wait_for

pytest_plugins = ("tests.ops_fixtures",)  # cluster, ops_url, ops_conn, workers


POOLER_MODE = {"LISTEN_NOTIFY": "false", "PREPARED_STATEMENTS": "false", "POLL_INTERVAL": "0.2"}


async def test_polling_mode_runs_jobs_without_listen(ops_url, ops_conn, workers):
    await workers("poller", **POOLER_MODE)
    ids = await enqueue_naps(ops_conn, 50, millis=10)
    result = await wait_for(ops_conn, ids, within=30)
    assert result.completed == 50 and result.lost == 0
    cur = await ops_conn.execute(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE query ILIKE 'LISTEN%%'"
    )
    assert (await cur.fetchone())["n"] == 0  # nobody is listening: it was polling


async def test_worker_through_pgbouncer_in_transaction_mode(cluster, ops_url, ops_conn, workers):
    with pgcluster.pgbouncer(cluster) as bouncer:
        dbname = str(conninfo_to_dict(ops_url)["dbname"])
        await workers("pooled", **POOLER_MODE, DATABASE_URL=pg.with_dbname(bouncer, dbname))
        # Enough jobs that every worker query repeats far past psycopg's prepare threshold (5).
        ids = await enqueue_naps(ops_conn, 200, millis=0)
        result = await wait_for(ops_conn, ids, within=60)
        report("worker through PgBouncer, transaction mode (polling)", result, 0.0)
        assert result.completed == 200 and result.lost == 0 and result.duplicated == 0
