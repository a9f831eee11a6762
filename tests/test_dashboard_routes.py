"""
The dashboard's routes against the per-test databases, in process (httpx over ASGI): what each
page shows, who may see it, what an action needs, and that nothing secret is ever rendered.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg.types.json import Jsonb
from pydantic import SecretStr

from broseph.dashboard import create_app
from broseph.dashboard.live import Watcher
from broseph.settings import Settings
from tests import dashboard_support as support
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent
AUTH = (support.USER, support.PASSWORD)
Client = httpx.AsyncClient


@pytest.fixture
async def client_for(
    settings: Settings,
) -> AsyncIterator[Callable[..., Client]]:
    """
    client_for(read_only=False, auth=AUTH, **settings overrides) → an httpx client on the app.
    """
    apps: list[Any] = []
    clients: list[Client] = []

    def make(
        *,
        read_only: bool = False,
        auth: Any = AUTH,
        trust_host_auth: bool = False,
        **overrides: Any,
    ) -> Client:
        configured = settings.model_copy(
            update={
                "dashboard_user": support.USER,
                "dashboard_password": SecretStr(support.PASSWORD),
                **overrides,
            }
        )
        app = create_app(configured, read_only=read_only, trust_host_auth=trust_host_auth)
        apps.append(app)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8080", auth=auth
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
    for app in apps:
        await app.state.dashboard.database.close()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "the page carries no CSRF token"
    return found.group(1)


async def _failed_nap(conn: Any, **params: Any) -> uuid.UUID:
    await support.install_nap(conn)
    [record] = await support.naps(conn, 1, **params)
    await support.fail(conn, [record])
    return record


async def test_every_page_needs_the_password(client_for):
    for auth in (None, (support.USER, "wrong"), ("someone", support.PASSWORD)):
        client = client_for(auth=auth)
        for path in ("/", "/jobs", "/workers", "/quarantine", "/events", "/static/htmx.min.js"):
            response = await client.get(path)
            assert response.status_code == 401, (auth, path)
            assert response.headers["www-authenticate"].startswith('Basic realm="broseph jobs"')
    bad_header = client_for(auth=None)
    for header in ("Basic !!!", "Bearer x", f"Basic {'A' * 10_000}", "Basic OnBhc3M="):
        response = await bad_header.get("/", headers={"Authorization": header})
        assert response.status_code == 401
    response = await client_for().get("/")
    assert response.status_code == 200 and "Overview" in response.text


async def test_without_a_password_only_loopback_names_are_served(client_for):
    client = client_for(auth=None, dashboard_user=None, dashboard_password=None)
    for host in ("127.0.0.1:8080", "localhost", "[::1]:8080", "127.0.0.2"):
        assert (await client.get("/jobs", headers={"Host": host})).status_code == 200, host
    for host in ("evil.example", "evil.example:8080", "10.0.0.5", "127.0.0.1.evil.example"):
        response = await client.get("/jobs", headers={"Host": host})
        assert response.status_code == 403, host
    # Mounted behind an application that authenticates: served whatever the host name.
    mounted = client_for(auth=None, dashboard_user=None, dashboard_password=None,
                         trust_host_auth=True)  # fmt: skip
    assert (await mounted.get("/jobs", headers={"Host": "jobs.example"})).status_code == 200


async def test_actions_need_the_token_of_the_dashboards_own_pages(client_for, conn):
    record = await _failed_nap(conn)
    client = client_for()
    page = await client.get(f"/jobs/{record}")
    assert page.status_code == 200 and "Retry" in page.text
    token = csrf_of(page.text)
    url = f"/jobs/{record}/retry"
    assert (await client.post(url)).status_code == 403
    assert (await client.post(url, data={"csrf": "0" * 64})).status_code == 403
    forged = await client.post(url, data={"csrf": token}, headers={"Sec-Fetch-Site": "cross-site"})
    assert forged.status_code == 403 and "cross-site request refused" in forged.text
    # Another user (same password, other name) gets another token.
    other = client_for(auth=("intruder", support.PASSWORD), dashboard_user="intruder")
    assert (await other.post(url, data={"csrf": token})).status_code == 403
    assert await support.statuses(conn, [record]) == {"failed": 1}

    for other_url, form in (
        (f"/jobs/{record}/cancel", {}),
        ("/quarantine/1/replay", {}),
        ("/bulk", {"action": "retry", "status": "failed", "as_of": "2030-01-01T00:00:00+00:00"}),
    ):
        assert (await client.post(other_url, data=form)).status_code == 403, other_url
    done = await client.post(url, data={"csrf": token}, headers={"Sec-Fetch-Site": "same-origin"})
    assert done.status_code == 303 and done.headers["location"].endswith("?done=retried")
    assert await support.statuses(conn, [record]) == {"retrying": 1}
    shown = await client.get(done.headers["location"])
    assert "Retried: the job is back in the queue." in shown.text
    again = await client.post(url, data={"csrf": token})
    assert again.status_code == 409 and "only failed jobs can be retried" in again.text


async def test_read_only_shows_no_action_and_refuses_them(client_for, conn):
    record = await _failed_nap(conn)
    await support.quarantine(conn, {"name": "Nope", "data": {}}, "unknown job name Nope", "1")
    writer = client_for()
    token = csrf_of((await writer.get(f"/jobs/{record}")).text)
    client = client_for(read_only=True)
    for path in (f"/jobs/{record}", "/jobs?status=failed", "/quarantine", "/", "/workers"):
        page = await client.get(path)
        assert page.status_code == 200, path
        assert 'method="post"' not in page.text and "<button" not in page.text.replace(
            '<button type="submit">Filter</button>', ""
        ), path
        assert "read-only" in page.text
    assert "Retry all matching" not in (await client.get("/jobs?status=failed")).text
    for url in (f"/jobs/{record}/retry", f"/jobs/{record}/cancel", "/quarantine/1/replay"):
        refused = await client.post(url, data={"csrf": token})
        assert refused.status_code == 403 and "read-only" in refused.text
    refused = await client.post("/bulk", data={"csrf": token, "action": "retry"})
    assert refused.status_code == 403
    assert (await client.get("/bulk?action=retry&status=failed")).status_code == 403
    assert await support.statuses(conn, [record]) == {"failed": 1}


SECRETS = ("SECRET-DEVICE-TOKEN", "sk-live1234567890abcdef", "hunter2", "fcm-secret-xyz", "pw-9")


async def test_nothing_secret_is_ever_rendered_and_payloads_are_escaped(client_for, conn, db_url):
    record = await _failed_nap(conn)
    await conn.execute(
        "UPDATE broseph.job_records SET result = %s, last_error = %s WHERE id = %s",
        (
            Jsonb({"token": "fcm-secret-xyz", "sent": 1, "note": "<b>bold</b>"}),
            "OperationalError: could not connect to postgresql://app:hunter2@db:5432/x",
            record,
        ),
    )
    payloads = [
        {"name": "SendPush", "data": {"userId": "u1", "deviceToken": "SECRET-DEVICE-TOKEN",
                                      "fcmTokens": ["SECRET-DEVICE-TOKEN"],
                                      "text": "key sk-live1234567890abcdef",
                                      "auth": {"password": "pw-9"},
                                      "title": "<script>alert('x')</script>"}},
        '{"name": "Broken", "data": {"apiKey": "sk-live1234567890abcdef", "x": "<img src=x>", ',
    ]  # fmt: skip
    for i, raw in enumerate(payloads):
        await support.quarantine(conn, raw, f"reason <i>{i}</i>", str(i))
    # The database URL holds a password (trust auth ignores it): it must not show either.
    url = db_url.replace("postgresql://postgres@", "postgresql://postgres:hunter2@")
    client = client_for(database_url=url)
    pages = [await client.get(p) for p in ("/", "/jobs", f"/jobs/{record}", "/quarantine")]
    for page in pages:
        assert page.status_code == 200
        for secret in SECRETS:
            assert secret not in page.text, (page.url, secret)
        assert "<script>alert" not in page.text and "<img src=x>" not in page.text
        assert "<b>bold</b>" not in page.text and "<i>0</i>" not in page.text
    quarantine = pages[3].text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in quarantine
    assert quarantine.count("[redacted]") >= 5 and "&lt;img src=x&gt;" in quarantine
    detail = pages[2].text
    assert "&lt;b&gt;bold&lt;/b&gt;" in detail and "[redacted]" in detail
    assert "postgresql://app:[redacted]@db:5432/x" in detail


async def test_an_unreachable_database_is_a_plain_503_without_its_address(client_for):
    client = client_for(database_url="postgresql://app:hunter2@127.0.0.1:1/nowhere")
    response = await client.get("/jobs")
    assert response.status_code == 503
    assert "The database is unreachable" in response.text
    assert "hunter2" not in response.text and "127.0.0.1:1" not in response.text


async def test_jobs_page_filters_counts_and_pages(client_for, conn):
    await support.install_nap(conn)
    failed = await support.naps(conn, 60, tag="failing")
    await support.fail(conn, failed, error="RuntimeError: upstream 503")
    pending = await support.naps(conn, 5, tag="waiting")
    client = client_for()
    page = await client.get("/jobs", params={"status": "failed", "type": "TestNap"})
    assert page.status_code == 200
    assert "60 matching" in page.text and page.text.count('data-status="failed"') == 50
    assert "RuntimeError: upstream 503" in page.text and str(pending[0]) not in page.text
    older = re.search(r'id="next-page" href="([^"]+)"', page.text)
    assert older
    rest = await client.get(older.group(1).replace("&amp;", "&"))
    assert rest.text.count('data-status="failed"') == 10 and 'id="next-page"' not in rest.text
    shown = set(re.findall(r'href="/jobs/([0-9a-f-]{36})"', page.text + rest.text))
    assert shown == {str(r) for r in failed}
    everything = await client.get("/jobs")
    assert everything.text.count("data-status=") == 50 and "matching" not in everything.text
    for params, message in (
        ({"status": "nope"}, "status &#39;nope&#39;: one of"),
        ({"group": "x"}, "group &#39;x&#39; is not a uuid"),
        ({"after": "garbage"}, "is not one this service made"),
    ):
        bad = await client.get("/jobs", params=params)
        assert bad.status_code == 400 and message in bad.text, params
    assert (await client.get(f"/jobs/{uuid.uuid4()}")).status_code == 404
    assert (await client.get("/jobs/999999")).status_code == 404
    assert (await client.get("/jobs/not-an-id")).status_code == 404


async def test_job_page_shows_record_queue_row_and_timeline(client_for, conn):
    record = await _failed_nap(conn, tag="timeline")
    client = client_for()
    by_record = await client.get(f"/jobs/{record}")
    cur = await conn.execute(
        "SELECT procrastinate_job_id AS j FROM broseph.job_records WHERE id = %s", (record,)
    )
    job_id = (await cur.fetchone())["j"]
    by_queue_id = await client.get(f"/jobs/{job_id}")
    for page in (by_record, by_queue_id):
        assert page.status_code == 200
        text = page.text
        assert str(record) in text and f">{job_id}<" in text
        assert '"tag": "timeline"' in text.replace("&#34;", '"')
        events = re.findall(r"<tr><td>(\w+)</td><td>\d{4}-", text)
        assert events == ["deferred", "started", "failed"]
        assert "RuntimeError: boom" in text


async def test_bulk_retry_shows_the_count_then_retries(client_for, conn):
    await support.install_nap(conn)
    failed = await support.naps(conn, 12)
    await support.fail(conn, failed)
    client = client_for()
    listing = await client.get("/jobs", params={"status": "failed"})
    link = re.search(r'id="bulk-retry" href="([^"]+)"', listing.text)
    assert link
    preview = await client.get(link.group(1).replace("&amp;", "&"))
    assert preview.status_code == 200 and "<strong>12</strong> job(s) match now." in preview.text
    form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', preview.text))
    assert form["action"] == "retry" and form["status"] == "failed"
    assert await support.statuses(conn, failed) == {"failed": 12}
    done = await client.post("/bulk", data=form)
    assert done.status_code == 200 and "Retried 12 job(s)" in done.text
    assert await support.statuses(conn, failed) == {"retrying": 12}
    form["as_of"] = "not a time"
    assert (await client.post("/bulk", data=form)).status_code == 400
    assert (await client.get("/bulk?action=delete")).status_code == 404


async def test_quarantine_replay_and_a_replay_still_rejected(client_for, conn):
    group = uuid.uuid4()
    good = await support.quarantine_prompt(conn, group, "database unavailable at the time", "7", 1)
    bad = await support.quarantine(
        conn, {"name": "SendPush", "data": {}, "timestamp": 2}, "unknown job name", "8"
    )
    # Not written by this version's ingress (no timestamp): refused with the reason, no crash.
    odd = await support.quarantine(conn, '{"name": "X", "data": []}', "by hand", "9")
    client = client_for()
    page = await client.get("/quarantine")
    token = csrf_of(page.text)
    replayed = await client.post(f"/quarantine/{good}/replay", data={"csrf": token})
    assert replayed.status_code == 303
    shown = await client.get(replayed.headers["location"])
    assert f"Replayed #{good} as job record" in shown.text
    cur = await conn.execute(
        "SELECT r.job_type, r.params FROM broseph.ingress_quarantine q"
        " JOIN broseph.job_records r ON r.id = q.record_id WHERE q.id = %s",
        (good,),
    )
    row = await cur.fetchone()
    assert row["job_type"] == "GeneratePrompt" and row["params"]["group_id"] == str(group)
    rejected = await client.post(f"/quarantine/{bad}/replay", data={"csrf": token})
    assert rejected.status_code == 409 and f"#{bad} is still rejected" in rejected.text
    assert "SendPush" in rejected.text
    unreadable = await client.post(f"/quarantine/{odd}/replay", data={"csrf": token})
    assert unreadable.status_code == 409
    assert "the stored job cannot be read (KeyError: &#39;timestamp&#39;)" in unreadable.text
    assert (await client.post("/quarantine/999/replay", data={"csrf": token})).status_code == 404


async def test_overview_and_workers_pages(client_for, conn):
    await support.install_nap(conn)
    await support.naps(conn, 3)
    running = await support.naps(conn, 2, tag="running")
    await support.take(conn, running)
    failed = await support.naps(conn, 4)
    await support.fail(conn, failed, error="RuntimeError: it broke")
    await conn.execute(
        "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '1 hour')"
    )
    cur = await conn.execute(
        "SELECT procrastinate_defer_periodic_job_v2('prompts', NULL, NULL, 'prompt_fanout', 0,"
        " 'prompt_fanout', extract(epoch FROM now())::bigint - 60, '{}') AS job_id"
    )
    tick = (await cur.fetchone())["job_id"]
    client = client_for()
    page = (await client.get("/")).text
    assert re.search(r'id="count-pending">3<', page)
    assert re.search(r'id="count-failed-24h"><a [^>]+>4<', page)
    assert "RuntimeError: it broke" in page
    assert "prompt_fanout" in page and f'href="/jobs/{tick}"' in page
    assert "*/15 * * * *" in page  # the cron of the registered tick, with its next due time
    assert "1 lost" in page
    workers = (await client.get("/workers")).text
    assert workers.count("s-lost") == 1 and workers.count("s-live") == 1
    assert all(str(r) in workers for r in running)


def _marker_read(watcher: Watcher) -> Callable[[], Any]:
    """
    Whether the watcher has read its first change marker (it compares later ones with it).
    """

    async def read() -> bool:
        return watcher._marker is not None

    return read


async def test_live_updates_are_noticed_by_listen_and_by_polling(settings, conn):
    await support.install_nap(conn)
    for listen in (True, False):
        configured = settings.model_copy(
            update={"listen_notify": listen, "dashboard_poll_seconds": 0.2 if not listen else 30}
        )
        app = create_app(configured)
        watcher: Watcher = app.state.dashboard.watcher
        events = watcher.events()
        try:
            assert (await anext(events)).startswith("retry: 3000\nevent: hello")
            # Ready once the watcher has read its first marker (after its LISTEN, when on).
            await wait_until(_marker_read(watcher), within=10, interval=0.01)
            [record] = await support.naps(conn, 1)
            # With LISTEN the deferral wakes it at once (its poll interval is 30 s here).
            assert (await asyncio.wait_for(anext(events), 5)).startswith("event: change")
            await support.fail(conn, [record])  # no NOTIFY: seen at the next poll (listen off)
            if not listen:
                assert (await asyncio.wait_for(anext(events), 5)).startswith("event: change")
        finally:
            await events.aclose()
            await app.state.dashboard.database.close()


def test_vendored_htmx_is_the_recorded_file():
    static = ROOT / "broseph" / "dashboard" / "static"
    recorded = re.search(r"sha256 `([0-9a-f]{64})`", (static / "VENDORED.md").read_text())
    assert recorded
    assert hashlib.sha256((static / "htmx.min.js").read_bytes()).hexdigest() == recorded.group(1)
    assert (static / "htmx.min.js").read_bytes().startswith(b"var htmx=function()")


async def test_readme_mount_example_runs(db_url, monkeypatch):
    """
    The README's ASGI example, as written, serves the dashboard under its mount point.
    """
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Dashboard", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code, "the Dashboard section has a python example"
    mount = re.search(r'Mount\("([^"]+)"', code.group(1))
    assert mount
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("DASHBOARD_USER", support.USER)
    monkeypatch.setenv("DASHBOARD_PASSWORD", support.PASSWORD)
    from broseph.settings import get_settings

    get_settings.cache_clear()
    namespace: dict[str, Any] = {}
    try:
        exec(compile(code.group(1), "README.md", "exec"), namespace)
        transport = httpx.ASGITransport(app=namespace["app"])
        async with httpx.AsyncClient(transport=transport, base_url="http://x", auth=AUTH) as c:
            overview = await c.get(mount.group(1) + "/")
            jobs = await c.get(mount.group(1) + "/jobs")
            anonymous = await c.get(mount.group(1) + "/jobs", auth=None)
        assert (overview.status_code, jobs.status_code, anonymous.status_code) == (200, 200, 401)
        assert f'href="{mount.group(1)}/static/dashboard.css"' in overview.text
        assert f'href="{mount.group(1)}/jobs"' in jobs.text
    finally:
        get_settings.cache_clear()
        for route in getattr(namespace.get("app"), "routes", []):
            dashboard = getattr(getattr(route, "app", None), "state", None)
            if dashboard is not None and hasattr(dashboard, "dashboard"):
                await dashboard.dashboard.database.close()
