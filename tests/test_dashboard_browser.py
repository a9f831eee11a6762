"""
The dashboard in a real browser: Playwright for Python driving Debian's chromium against
`broseph dashboard` started as an operator starts it, on a per-test database.

Each scenario an operator plays through the dashboard, and the screenshots of every page
(docs/dashboard/*.png) taken from one deterministic world. They are written to a temporary
folder; to refresh the committed ones:
`DASHBOARD_SCREENSHOTS=docs/dashboard pytest tests/test_dashboard_browser.py -k screenshots`.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from playwright.async_api import Error as PlaywrightError
from psycopg.types.json import Jsonb

from tests import dashboard_support as support
from tests.ops_support import run_until_idle

# The flags the project's browser tests run chromium with (--no-sandbox: CI runs as root).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ROOT = Path(__file__).resolve().parent.parent
MakePage = Callable[..., Awaitable[Page]]
WAVE_AGE_MAX = datetime.timedelta(hours=23, minutes=55)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        message = "Debian's chromium is not installed (apt-get install chromium; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it: never let these tests skip there
        pytest.skip(message)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture
async def page_for(browser: Browser) -> AsyncIterator[MakePage]:
    contexts = []

    async def make(base: str, *, credentials: bool | str = True) -> Page:
        password = credentials if isinstance(credentials, str) else support.PASSWORD
        context = await browser.new_context(
            base_url=base,
            http_credentials=(
                {"username": support.USER, "password": password} if credentials else None
            ),
            viewport={"width": 1360, "height": 900},
            timezone_id="UTC",
        )
        contexts.append(context)
        page = await context.new_page()
        page.set_default_timeout(15_000)
        return page

    yield make
    for context in contexts:
        await context.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("DASHBOARD_SCREENSHOTS") or tmp_path)
    if not folder.is_absolute():
        folder = ROOT / folder
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def test_a_failed_job_is_found_opened_retried_and_its_status_changes_live(
    conn, db_url, page_for
):
    await support.install_nap(conn)
    await support.naps(conn, 4, tag="noise")
    [target] = await support.naps(conn, 1, tag="needle")
    await support.fail(conn, [target], error="RuntimeError: upstream timed out")
    with support.served(db_url) as base:
        page = await page_for(base)
        await page.goto("/jobs")
        await page.select_option("select[name=status]", "failed")
        await page.select_option("select[name=type]", "TestNap")
        await page.get_by_role("button", name="Filter").click()
        rows = page.locator("#jobs tr[data-status]")
        await expect(rows).to_have_count(1)
        await expect(page.locator("#jobs")).to_contain_text("RuntimeError: upstream timed out")
        await page.get_by_role("link", name=str(target)).click()
        await expect(page.locator("#status")).to_have_text("failed")
        # Anything set on this page survives only if the page is never reloaded.
        await page.evaluate("window.__sameDocument = 'yes'")
        await page.get_by_role("button", name="Retry").click()
        await expect(page.locator("#status")).to_have_text("retrying")
        await run_until_idle(db_url)  # a worker takes it: nobody touches the page
        await expect(page.locator("#status")).to_have_text("completed")
        await expect(page.locator("#timeline")).to_contain_text("retried")
        await expect(page.locator("#timeline")).to_contain_text("succeeded")
        assert await page.evaluate("window.__sameDocument") == "yes"
    assert await support.statuses(conn, [target]) == {"completed": 1}


async def test_a_pending_job_is_cancelled(conn, db_url, page_for):
    await support.install_nap(conn)
    [pending] = await support.naps(conn, 1)
    with support.served(db_url) as base:
        page = await page_for(base)
        await page.goto(f"/jobs/{pending}")
        await expect(page.locator("#status")).to_have_text("pending")
        page.once("dialog", lambda dialog: dialog.accept())
        await page.get_by_role("button", name="Cancel").click()
        await expect(page.locator("#status")).to_have_text("cancelled")
        await expect(page.get_by_role("status")).to_have_text("Cancelled.")
        await expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    assert await support.statuses(conn, [pending]) == {"cancelled": 1}


async def test_bulk_retry_of_fifty_failed_jobs(conn, db_url, page_for):
    await support.install_nap(conn)
    failed = await support.naps(conn, 50, tag="bulk")
    await support.fail(conn, failed, error="RuntimeError: the API was down")
    with support.served(db_url) as base:
        page = await page_for(base)
        await page.goto("/jobs?status=failed&type=TestNap")
        await expect(page.locator(".actions .muted")).to_contain_text("50 matching")
        await page.locator("#bulk-retry").click()
        await expect(page.locator("#bulk-count")).to_have_text("50 job(s) match now.")
        assert await support.statuses(conn, failed) == {"failed": 50}  # nothing before confirming
        await page.locator("#bulk-confirm").click()
        await expect(page.locator("#bulk-outcome")).to_contain_text("Retried 50 job(s)")
    assert await support.statuses(conn, failed) == {"retrying": 50}


async def test_a_quarantined_ingress_job_is_replayed(conn, db_url, page_for):
    group = uuid.uuid4()
    qid = await support.quarantine_prompt(
        conn, group, "database unavailable when it arrived", "42", 1764489600000
    )
    with support.served(db_url) as base:
        page = await page_for(base)
        await page.goto("/quarantine")
        row = page.locator(f"#q-{qid}")
        await expect(row).to_contain_text("database unavailable when it arrived")
        await row.get_by_role("button", name="Replay").click()
        await expect(page.get_by_role("status")).to_contain_text(f"Replayed #{qid} as job record")
        await expect(page.locator(f"#q-{qid}")).to_contain_text("replayed")
        await page.get_by_role("status").get_by_role("link").click()
        await expect(page.locator("h1")).to_contain_text("GeneratePrompt")
        await expect(page.locator("#params")).to_contain_text(str(group))
    cur = await conn.execute(
        "SELECT r.job_type FROM broseph.ingress_quarantine q JOIN broseph.job_records r"
        " ON r.id = q.record_id WHERE q.id = %s",
        (qid,),
    )
    assert (await cur.fetchone())["job_type"] == "GeneratePrompt"


async def test_without_credentials_the_browser_gets_401(db_url, page_for):
    with support.served(db_url) as base:
        for credentials in (False, "wrong"):
            page = await page_for(base, credentials=credentials)
            answers: list[tuple[str, int]] = []
            page.on("response", lambda r, seen=answers: seen.append((r.url, r.status)))
            for path in ("/", "/jobs", "/quarantine"):
                try:
                    response = await page.goto(path)
                    assert response is not None and response.status == 401
                except PlaywrightError as exc:
                    # Without credentials chromium shows its own error page for the challenge.
                    assert "ERR_INVALID_AUTH_CREDENTIALS" in str(exc)
                assert (base + path, 401) in answers, (credentials, path)
            assert not [a for a in answers if a[1] == 200], answers


async def test_read_only_mode_shows_no_action(conn, db_url, page_for):
    await support.install_nap(conn)
    [failed] = await support.naps(conn, 1)
    await support.fail(conn, [failed])
    [pending] = await support.naps(conn, 1)
    await support.quarantine(conn, {"name": "X", "data": {}, "timestamp": 1}, "unknown", "1")
    with support.served(db_url, "--read-only") as base:
        page = await page_for(base)
        for path in (
            f"/jobs/{failed}",
            f"/jobs/{pending}",
            "/jobs?status=failed",
            "/quarantine",
            "/",
        ):
            await page.goto(path)
            await expect(page.locator("header .ro")).to_have_text("read-only")
            await expect(page.locator("form[method=post]")).to_have_count(0)
            actions = page.get_by_role("button", name=re.compile("Retry|Cancel|Abort|Replay"))
            await expect(actions).to_have_count(0)
            await expect(page.locator("#bulk-retry, #bulk-cancel")).to_have_count(0)
    assert await support.statuses(conn, [failed, pending]) == {"failed": 1, "pending": 1}


# --- screenshots of every page, from one deterministic world ----------------------------------


async def test_screenshots_of_every_page(conn, db_url, page_for, shots):
    world = await _world(conn)
    with support.served(db_url) as base:
        page = await page_for(base)
        await page.goto("/")
        await expect(page.locator("#count-failed-24h")).to_have_text("9")
        await page.screenshot(path=shots / "overview.png", full_page=True)
        since = world["wave"] - datetime.timedelta(minutes=5)
        jobs = f"/jobs?status=failed&type=GeneratePrompt&since={since:%Y-%m-%dT%H:%M}"
        await page.goto(jobs)
        await expect(page.locator("#jobs tr[data-status]")).to_have_count(6)
        await page.screenshot(path=shots / "jobs.png", full_page=True)
        await page.goto(f"/jobs/{world['failed']}")
        await expect(page.locator("#status")).to_have_text("failed")
        await page.screenshot(path=shots / "job.png", full_page=True)
        await page.goto(jobs)
        await page.locator("#bulk-retry").click()
        await expect(page.locator("#bulk-count")).to_have_text("6 job(s) match now.")
        await page.screenshot(path=shots / "bulk.png", full_page=True)
        await page.goto("/workers")
        await expect(page.locator("#running tr")).to_have_count(3)
        await page.screenshot(path=shots / "workers.png", full_page=True)
        await page.goto("/quarantine")
        await expect(page.locator("#quarantine")).to_contain_text("[redacted]")
        await page.screenshot(path=shots / "quarantine.png", full_page=True)
    for name in ("overview", "jobs", "job", "bulk", "workers", "quarantine"):
        assert (shots / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _group(n: int) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"broseph-demo-group-{n}")


def _group_days(groups: int, day: str) -> list[dict[str, Any]]:
    # One job per group for `day` (prompts, engagement roll-ups).
    return [{"group_id": str(_group(g)), "local_date": day} for g in range(groups)]


def _user(n: int) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"broseph-demo-user-{n}")


def _prompt(n: int) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"broseph-demo-prompt-{n}")


async def _enqueue(conn: Any, job_type: str, params: list[dict[str, Any]]) -> list[uuid.UUID]:
    cur = await conn.execute(
        "SELECT broseph.enqueue_many(%s, %s::jsonb[]) AS ids",
        (job_type, [Jsonb(p) for p in params]),
    )
    return list((await cur.fetchone())["ids"])


async def _world(conn: Any) -> dict[str, Any]:
    """
    A day of Broseph: the 08:00 prompt wave (120 groups, some failures after OpenAI rate limits),
    notifications through the day, engagement roll-ups, a worker running two jobs, the periodic
    ticks, two quarantined ingress jobs. The same every run but for ids and the clock.
    """
    cur = await conn.execute("SELECT now() AS now")
    now = (await cur.fetchone())["now"]
    # The latest 08:00 UTC that is at least two minutes old and inside the overview's 24 hours.
    today = now.replace(hour=8, minute=0, second=0, microsecond=0)
    candidates = [today, today - datetime.timedelta(days=1)]
    fits = [w for w in candidates if datetime.timedelta(minutes=2) <= now - w <= WAVE_AGE_MAX]
    wave = fits[0] if fits else now - datetime.timedelta(hours=1)
    day = wave.date().isoformat()
    prompts = await _enqueue(conn, "GeneratePrompt", _group_days(120, day))
    pushes = await _enqueue(
        conn,
        "SendNotification",
        [{"user_id": str(_user(u)), "type": "new_prompt",
          "data": {"group_id": str(_group(u % 120)), "prompt_id": str(_prompt(u % 120))}}
         for u in range(300)],
    )  # fmt: skip
    engagement = await _enqueue(conn, "ProcessEngagement", _group_days(52, day))
    fanouts = await _enqueue(
        conn,
        "NotifyMembers",
        [
            {"group_id": str(_group(g)), "type": "new_prompt", "prompt_id": str(_prompt(g))}
            for g in range(5)
        ],
    )
    created = {r: wave + datetime.timedelta(seconds=i * 0.4) for i, r in enumerate(prompts)}
    created |= {
        r: now - datetime.timedelta(hours=23) + datetime.timedelta(minutes=4.5 * i)
        for i, r in enumerate(pushes)
    }
    created |= {
        r: now - datetime.timedelta(hours=20) + datetime.timedelta(minutes=22 * i)
        for i, r in enumerate(engagement)
    }
    created |= {r: wave + datetime.timedelta(seconds=50 + i) for i, r in enumerate(fanouts)}
    await support.fail(conn, prompts[:6], error="OpenAIError: 429 rate limit reached (RPM)")
    await support.fail(conn, pushes[:3], error="FCM UNAVAILABLE: the service is unavailable")
    await support.take(conn, engagement[-2:])
    await conn.execute(
        "UPDATE broseph.job_records SET progress = 40, progress_message = 'counting messages'"
        " WHERE id = %s",
        (engagement[-2],),
    )
    await support.complete(conn, prompts[6:116] + pushes[3:] + engagement[:40] + fanouts)
    for record, at in created.items():
        await conn.execute(
            "UPDATE broseph.job_records SET created_at = %s,"
            " started_at = CASE WHEN started_at IS NULL THEN NULL ELSE %s END,"
            " finished_at = CASE WHEN finished_at IS NULL THEN NULL ELSE %s END WHERE id = %s",
            (
                at,
                at + datetime.timedelta(seconds=1.2),
                at + datetime.timedelta(seconds=3.1),
                record,
            ),
        )
    await conn.execute(
        "WITH o AS (SELECT e.id, r.created_at, row_number() OVER (PARTITION BY e.job_id"
        " ORDER BY e.id) AS n FROM procrastinate_events e JOIN broseph.job_records r"
        " ON r.procrastinate_job_id = e.job_id)"
        " UPDATE procrastinate_events e SET at = o.created_at + (o.n - 1) * interval '1.55 s'"
        " FROM o WHERE o.id = e.id"
    )
    await conn.execute(
        "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '2 s'"
    )  # the worker that runs the two engagement jobs
    for task, queue, minutes in (
        ("prompt_fanout", "prompts", 4), ("engagement_nightly", "engagement", 31),
        ("prompt_reminders", "notifications", 4), ("ops_rescue", "ops", 0.1),
    ):  # fmt: skip
        stamp = int((now - datetime.timedelta(minutes=minutes)).timestamp())
        cur = await conn.execute(
            "SELECT procrastinate_defer_periodic_job_v2(%s, NULL, NULL, %s, 0, %s, %s, %s) AS id",
            (queue, task, task, stamp, Jsonb({"timestamp": stamp})),
        )
        job_id = (await cur.fetchone())["id"]
        await conn.execute(
            "UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", (job_id,)
        )
        await conn.execute("SELECT procrastinate_finish_job_v1(%s, 'succeeded', false)", (job_id,))
        await conn.execute(
            "UPDATE procrastinate_events SET at = to_timestamp(%s) + interval '0.8 s' * (id -"
            " (SELECT min(id) FROM procrastinate_events WHERE job_id = %s)) WHERE job_id = %s",
            (stamp, job_id, job_id),
        )
    await support.quarantine(
        conn,
        {"name": "SendPush", "data": {"userId": str(_user(7)), "deviceToken": "fcm:APA91b-secret",
                                      "title": "New prompt"}, "timestamp": 1764489600000},
        "unknown job name 'SendPush' (known: GeneratePrompt, ProcessEngagement, SendNotification)",
        "1187",
    )  # fmt: skip
    await support.quarantine(
        conn,
        {"name": "GeneratePrompt", "data": {"groupId": "not-a-uuid"}, "timestamp": 1764489660000},
        "GeneratePrompt: group_id: Input should be a valid UUID",
        "1188",
    )
    return {"wave": wave, "failed": prompts[0]}
