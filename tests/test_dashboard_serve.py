"""
Serving the dashboard: `broseph dashboard` as an operator types it (and what it refuses),
`uvicorn --factory broseph.dashboard:create_app` as the README says, and the dashboard through
a transaction pooler (PgBouncer in transaction mode, like Supavisor :6543).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
from psycopg.conninfo import conninfo_to_dict
from pydantic import SecretStr

from broseph.dashboard import create_app
from broseph.settings import Settings
from tests import dashboard_support as support
from tests import pg, pgcluster
from tests.conftest import venv_bin

pytest_plugins = ("tests.ops_fixtures",)  # cluster, ops_url, ops_conn

AUTH = (support.USER, support.PASSWORD)
README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _broseph(*args: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    return subprocess.run(
        [str(venv_bin("broseph")), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_dashboard_refuses_other_addresses_without_a_password(db_url):
    refused = _broseph(
        "dashboard", "--host", "0.0.0.0", DATABASE_URL=db_url,
        DASHBOARD_USER=None, DASHBOARD_PASSWORD=None,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "refusing to listen on 0.0.0.0 without a password" in refused.stderr
    assert "DASHBOARD_USER and DASHBOARD_PASSWORD" in refused.stderr
    half = _broseph(
        "dashboard", "--host", "192.0.2.1", DATABASE_URL=db_url,
        DASHBOARD_USER="ops", DASHBOARD_PASSWORD=None,
    )  # fmt: skip
    assert half.returncode == 2 and "without a password" in half.stderr
    no_db = _broseph("dashboard", DATABASE_URL=None, DASHBOARD_USER=None, DASHBOARD_PASSWORD=None)
    assert no_db.returncode == 2 and "DATABASE_URL is not set" in no_db.stderr
    assert "Traceback" not in refused.stderr + half.stderr + no_db.stderr


async def test_served_dashboard_answers_and_stops_on_sigterm(db_url, conn):
    await support.install_nap(conn)
    [record] = await support.naps(conn, 1)
    with support.served(db_url) as base:
        async with httpx.AsyncClient(base_url=base, auth=AUTH, timeout=10) as client:
            page = await client.get(f"/jobs/{record}")
            assert page.status_code == 200 and str(record) in page.text
            assert "default-src 'self'" in page.headers["content-security-policy"]
            assert page.headers["x-frame-options"] == "DENY"
            assert page.headers["cache-control"] == "no-store"
            assert (await client.get("/", auth=None)).status_code == 401


async def test_uvicorn_factory_from_the_readme(db_url):
    assert "uvicorn --factory broseph.dashboard:create_app" in " ".join(README.split())
    port = support.free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "DASHBOARD_USER": support.USER,
           "DASHBOARD_PASSWORD": support.PASSWORD}  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "uvicorn"), "--factory",
        "broseph.dashboard:create_app", "--port", str(port),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", auth=AUTH) as client:
            for _ in range(200):
                try:
                    response = await client.get("/workers")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            assert response.status_code == 200 and "Workers" in response.text
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 15)


async def test_dashboard_through_a_transaction_pooler(cluster, ops_url, ops_conn):
    [record] = await support.naps(ops_conn, 1)
    await support.fail(ops_conn, [record])
    with pgcluster.pgbouncer(cluster) as bouncer:
        dbname = str(conninfo_to_dict(ops_url)["dbname"])
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=pg.with_dbname(bouncer, dbname),
            prepared_statements=False,
            listen_notify=False,
            dashboard_poll_seconds=0.2,
            dashboard_user=support.USER,
            dashboard_password=SecretStr(support.PASSWORD),
        )
        app = create_app(settings)
        watcher = app.state.dashboard.watcher
        events = watcher.events()
        transport = httpx.ASGITransport(app=app)
        try:
            assert "hello" in await anext(events)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://127.0.0.1", auth=AUTH
            ) as client:
                # Every query many times over psycopg's prepare threshold (5): nothing prepared.
                for _ in range(8):
                    for path in ("/", "/jobs?status=failed", f"/jobs/{record}", "/workers"):
                        assert (await client.get(path)).status_code == 200, path
                page = await client.get(f"/jobs/{record}")
                token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
                assert token
                done = await client.post(f"/jobs/{record}/retry", data={"csrf": token.group(1)})
                assert done.status_code == 303
            # Polling (no LISTEN through the pooler) notices the retry.
            assert "event: change" in await asyncio.wait_for(anext(events), 10)
        finally:
            await events.aclose()
            await app.state.dashboard.database.close()
    assert await support.statuses(ops_conn, [record]) == {"retrying": 1}
