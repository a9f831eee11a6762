"""
GeneratePrompt through the job: the real `openai` SDK against the stand-in, the fallback policy,
and the stored prompt's natural key (a worker killed mid-job: tests/test_prompt_crash.py).
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import procrastinate
import psycopg
import pytest
import structlog
from rich.console import Console

from broseph import services
from broseph.demo import show
from broseph.jobs import generate_prompt
from broseph.providers.ai import normalize_prompt
from broseph.providers.prompt_bank import BANK
from broseph.settings import Settings
from tests import factories
from tests.conftest import wait_until
from tests.prompt_support import (
    API_KEY,
    DAY,
    FAST_RETRY,
    GOOD,
    OTHER,
    QUICK,
    SECRET_BODY,
    ai_settings,
    enqueue_prompt,
    fallbacks,
    finish,
    has_requests,
    prompts,
    record,
    stored,
    user_data,
)
from tests.standins.openai_server import OpenAIStandIn, Reply

UseAI = Callable[..., Awaitable[services.Services]]


@pytest.fixture
def standin() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn() as server:
        yield server


@pytest.fixture
async def use_ai(
    app: procrastinate.App, settings: Settings, standin: OpenAIStandIn
) -> AsyncIterator[UseAI]:
    """
    Install services built by `services.build` from settings that point at the stand-in.
    """
    built: list[services.Services] = []

    async def install(**overrides: Any) -> services.Services:
        svc = services.build(ai_settings(settings, standin, **overrides), services.pool_of(app))
        services.install(app, svc)
        built.append(svc)
        return svc

    yield install
    for svc in built:
        await svc.aclose()


@pytest.fixture
async def group(conn: psycopg.AsyncConnection[Any]) -> Any:
    """
    "Sunday Crew": 3 members, 4 messages in the week before DAY, two earlier prompts.
    """
    gid = await factories.group(conn, name="Sunday Crew", time_zone="Europe/Berlin")
    users = [await factories.user(conn, name=n) for n in ("Ana", "Ben", "Cy")]
    for uid in users:
        await factories.member(conn, gid, uid)
    for i, uid in enumerate([users[0], users[0], users[1], users[1]]):
        at = datetime.datetime(2026, 3, 1 + i, 12, tzinfo=datetime.UTC)
        await factories.message(conn, gid, uid, at=at, body=f"{SECRET_BODY} {i}")
    await factories.prompt(conn, gid, DAY - datetime.timedelta(days=2), text="Oldest prompt?")
    await factories.prompt(conn, gid, DAY - datetime.timedelta(days=1), text="Newest prompt?")
    return gid


# --- success ----------------------------------------------------------------------------------


async def test_structured_output_is_stored_as_an_openai_prompt(
    conn, group, standin, use_ai, start_worker
):
    await use_ai()
    # The reply waits a second so the record can be seen mid-way.
    standin.script(Reply.delay(1.0, then=Reply.json_output(GOOD)))
    rid = await enqueue_prompt(conn, group)
    with structlog.testing.capture_logs() as logs:
        await start_worker(queues=["prompts"])
        await wait_until(lambda: has_requests(standin, 1))

        async def reported() -> bool:  # the first update is written PROGRESS_FIRST_DELAY later
            return (await record(conn, rid))["progress_message"] is not None

        await wait_until(reported, within=1.0, interval=0.01)
        mid = await record(conn, rid)
        done, _ = await finish(conn, rid)

    assert (mid["status"], mid["progress_message"]) == ("processing", "context loaded")
    assert done["status"] == "completed" and done["attempts"] == 1
    assert (done["progress"], done["progress_message"]) == (100, "stored")
    prompt = await stored(conn, group)
    assert {k: prompt[k] for k in ("text", "category", "follow_up", "source")} == {
        **GOOD,
        "source": "openai",
    }
    assert done["result"] == {
        "local_date": "2026-03-06",
        "stored": True,
        "source": "openai",
        "category": "gratitude",
        "prompt_id": str(prompt["id"]),
    }
    [request] = standin.requests
    data = user_data(request)
    assert data["group_name"] == "Sunday Crew" and data["member_count"] == 3
    assert data["local_date"] == "2026-03-06"
    assert data["recent_prompts_to_avoid"] == ["Newest prompt?", "Oldest prompt?"]
    assert data["activity"] == "4 messages from 2 of 3 members in the last 7 days"
    # No message bodies unless AI_SEND_MESSAGE_TEXT allows them, in the request or in the logs.
    assert SECRET_BODY not in request.text and "sample_messages" not in data
    assert SECRET_BODY not in repr(logs) and API_KEY not in repr(logs)
    assert fallbacks(logs) == []


async def test_message_text_is_sent_only_when_the_setting_allows(
    conn, group, standin, use_ai, start_worker
):
    await use_ai(ai_send_message_text=True)
    rid = await enqueue_prompt(conn, group)
    await start_worker(queues=["prompts"])
    done, _ = await finish(conn, rid)

    assert done["status"] == "completed"
    samples = user_data(standin.requests[0])["sample_messages"]
    assert samples == [f"{SECRET_BODY} {i}" for i in (3, 2, 1, 0)]  # newest first


async def test_without_a_key_the_offline_bank_is_the_default(conn, group, app, start_worker):
    assert services.for_app(app).ai is None  # the test settings have no OPENAI_API_KEY
    rid = await enqueue_prompt(conn, group)
    with structlog.testing.capture_logs() as logs:
        await start_worker(queues=["prompts"])
        done, _ = await finish(conn, rid)

    prompt = await stored(conn, group)
    assert done["status"] == "completed" and prompt["source"] == "offline"
    assert prompt["text"] in {p.text for p in BANK}
    assert fallbacks(logs) == []  # the default, not a fallback


# --- transient errors: retried (by the adapter within an attempt, or by the job) --------------


# A 429 is not among them: it snoozes the job instead (tests/test_budgets.py).
@pytest.mark.parametrize("status", [500, 503])
async def test_transient_error_then_success_within_one_attempt(
    conn, group, standin, use_ai, start_worker, status
):
    await use_ai(openai_max_retries=2)
    standin.script(Reply.status(status, headers=FAST_RETRY), Reply.json_output(GOOD))
    rid = await enqueue_prompt(conn, group)
    await start_worker(queues=["prompts"])
    done, _ = await finish(conn, rid)

    assert done["status"] == "completed" and done["attempts"] == 1
    assert (await stored(conn, group))["source"] == "openai"
    assert len(standin.requests) == 2


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply.status(500), "server error"),
        (Reply.delay(1.5, then=Reply.json_output(OTHER)), "timed out"),
    ],
    ids=["500", "timeout"],
)
async def test_transient_error_retries_the_job_which_then_succeeds(
    conn, group, standin, use_ai, start_worker, reply, reason
):
    await use_ai(openai_timeout=0.4)  # and no retries inside the adapter
    standin.script(reply, Reply.json_output(GOOD))
    rid = await enqueue_prompt(conn, group, retry=QUICK)
    with structlog.testing.capture_logs() as logs:
        await start_worker(queues=["prompts"], fetch_job_polling_interval=0.1)
        done, seen = await finish(conn, rid)

    assert "retrying" in seen and seen[-1] == "completed"
    assert done["attempts"] == 2
    prompt = await stored(conn, group)
    assert (prompt["text"], prompt["source"]) == (GOOD["text"], "openai")
    [failure] = [e for e in logs if e["event"] == "job_failed"]
    assert failure["retrying"] is True and reason in failure["error"]
    assert fallbacks(logs) == []


async def test_transient_error_on_the_last_attempt_falls_back(
    conn, group, standin, use_ai, start_worker
):
    await use_ai()
    standin.script(Reply.status(503), Reply.status(503))
    rid = await enqueue_prompt(conn, group, retry={**QUICK, "max_attempts": 2})
    with structlog.testing.capture_logs() as logs:
        await start_worker(queues=["prompts"], fetch_job_polling_interval=0.1)
        done, seen = await finish(conn, rid)

    assert "retrying" in seen and done["status"] == "completed" and done["attempts"] == 2
    assert (await stored(conn, group))["source"] == "offline"
    [warning] = fallbacks(logs)
    assert warning["reason"] == "transient_error_on_last_attempt"
    assert "503" in warning["error"] and warning["attempt"] == 2
    assert warning["log_level"] == "warning"


# --- permanent errors and unusable output: the offline bank -----------------------------------


@pytest.mark.parametrize(
    ("reply", "detail"),
    [(Reply.status(401), "401"), (Reply.status(429, code="insufficient_quota"), "quota")],
    ids=["401", "insufficient_quota"],
)
async def test_permanent_error_falls_back_at_once(
    conn, group, standin, use_ai, start_worker, reply, detail
):
    await use_ai(openai_max_retries=2)
    standin.script(reply, reply, reply)
    rid = await enqueue_prompt(conn, group, retry=QUICK)
    with structlog.testing.capture_logs() as logs:
        await start_worker(queues=["prompts"])
        done, _ = await finish(conn, rid)

    assert done["status"] == "completed" and done["attempts"] == 1
    assert len(standin.requests) == 1  # neither the adapter nor the job asked again
    prompt = await stored(conn, group)
    assert prompt["source"] == "offline" and prompt["text"] in {p.text for p in BANK}
    [warning] = fallbacks(logs)
    assert warning["reason"] == "permanent_error" and detail in warning["error"]
    assert done["result"]["fallback_reason"].startswith("permanent_error")
    assert API_KEY not in repr(logs)


async def test_invalid_json_is_regenerated_once_then_falls_back(
    conn, group, standin, use_ai, start_worker
):
    await use_ai()
    standin.script(Reply.raw_content("not json"), Reply.raw_content('{"text": "cut'))
    rid = await enqueue_prompt(conn, group, retry=QUICK)
    with structlog.testing.capture_logs() as logs:
        await start_worker(queues=["prompts"])
        done, _ = await finish(conn, rid)

    assert done["status"] == "completed" and done["attempts"] == 1
    assert len(standin.requests) == 2  # the first try and one regeneration
    assert (await stored(conn, group))["source"] == "offline"
    [warning] = fallbacks(logs)
    assert warning["reason"] == "unusable_output"
    assert warning["error"] == "invalid JSON in the reply"


async def test_invalid_json_then_a_good_regeneration_is_used(
    conn, group, standin, use_ai, start_worker
):
    await use_ai()
    standin.script(Reply.raw_content("not json"), Reply.json_output(GOOD))
    rid = await enqueue_prompt(conn, group)
    with structlog.testing.capture_logs() as logs:
        await start_worker(queues=["prompts"])
        done, _ = await finish(conn, rid)

    assert done["status"] == "completed"
    assert (await stored(conn, group))["text"] == GOOD["text"]
    assert (await stored(conn, group))["source"] == "openai"
    assert fallbacks(logs) == []


async def test_a_repeat_of_the_last_30_is_rejected_then_falls_back(
    conn, group, standin, use_ai, start_worker
):
    # With the fixture's two, 30 recent prompts and an older 31st; the AI answers with the
    # 30th most recent, twice, in disguise.
    history = [p.text for p in BANK[:29]]
    for back, text in enumerate(history, start=3):
        await factories.prompt(conn, group, DAY - datetime.timedelta(days=back), text=text)
    history.pop()
    repeat = {"text": "  " + history[-1].upper() + "!! ", "category": "memories", "follow_up": None}
    await use_ai()
    standin.script(Reply.json_output(repeat), Reply.json_output(repeat))
    rid = await enqueue_prompt(conn, group)
    with structlog.testing.capture_logs() as logs:
        await start_worker(queues=["prompts"])
        done, _ = await finish(conn, rid)

    assert done["status"] == "completed" and len(standin.requests) == 2
    sent = user_data(standin.requests[0])["recent_prompts_to_avoid"]
    assert len(sent) == 30 and sent[-1] == history[-1] and BANK[28].text not in sent
    prompt = await stored(conn, group)
    assert prompt["source"] == "offline"
    last_30 = [p["text"] for p in await prompts(conn, group) if p["local_date"] < DAY][-30:]
    assert normalize_prompt(prompt["text"]) not in {normalize_prompt(t) for t in last_30}
    [warning] = fallbacks(logs)
    assert warning["reason"] == "unusable_output" and "repeat" in warning["error"]


# --- the natural key ----------------------------------------------------------------------------


async def test_a_prompt_stored_meanwhile_is_kept_and_nothing_new_is_stored(
    conn, group, standin, use_ai, start_worker
):
    await use_ai()
    # The reply waits long enough for a prompt to be set by hand while the AI "thinks".
    standin.script(Reply.delay(1.5, then=Reply.json_output(GOOD)))
    rid = await enqueue_prompt(conn, group)
    await start_worker(queues=["prompts"])
    await wait_until(lambda: has_requests(standin, 1))
    manual = await factories.prompt(conn, group, DAY, text="Set by hand while the AI thought")
    done, _ = await finish(conn, rid)

    assert done["status"] == "completed"
    assert done["result"]["stored"] is False
    assert done["progress_message"] == "already stored"
    prompt = await stored(conn, group)
    assert (prompt["id"], prompt["source"]) == (manual, "manual")


async def test_a_late_job_stores_for_the_local_date_it_was_enqueued_for(conn, group, start_worker):
    # With the date: the payload's, however late the job runs.
    with_date = await enqueue_prompt(conn, group, datetime.date(2025, 12, 31))
    # Without it: the group's local date when the record was created — 23:50 in Berlin on
    # 2026-03-06, though it runs months later (after midnight, after retries...).
    without = await enqueue_prompt(conn, group, None)
    await conn.execute(
        "UPDATE broseph.job_records SET created_at = %s WHERE id = %s",
        (datetime.datetime(2026, 3, 6, 22, 50, tzinfo=datetime.UTC), without),
    )
    await start_worker(queues=["prompts"])
    await finish(conn, with_date)
    await finish(conn, without)

    dates = [p["local_date"] for p in await prompts(conn, group)]
    assert datetime.date(2025, 12, 31) in dates and DAY in dates
    assert (await record(conn, without))["result"]["local_date"] == "2026-03-06"


async def test_missing_group_fails_and_inactive_group_is_skipped(conn, start_worker):
    inactive = await factories.group(conn, active=False)
    skipped = await enqueue_prompt(conn, inactive)
    missing = await enqueue_prompt(conn, "00000000-0000-4000-8000-000000000000")
    await start_worker(queues=["prompts"])

    done, _ = await finish(conn, skipped)
    assert done["status"] == "completed" and done["result"]["skipped"] == "group inactive"
    failed, _ = await finish(conn, missing)
    assert failed["status"] == "failed" and failed["attempts"] == 1
    assert "not found" in failed["last_error"]
    assert await prompts(conn, inactive) == []


# --- the demo section ---------------------------------------------------------------------------


async def test_enqueue_today_and_the_demo_section_show_each_groups_prompt(conn, start_worker):
    since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
    tokyo = await factories.group(conn, name="Band", time_zone="Asia/Tokyo")
    lima = await factories.group(conn, name="Flatmates", time_zone="America/Lima")
    ids = await generate_prompt.enqueue_today(conn, [tokyo, lima])
    assert await generate_prompt.enqueue_today(conn, [lima, tokyo]) == ids[::-1]  # same keys
    await start_worker(queues=["prompts"])
    for rid in ids:
        assert (await finish(conn, rid))[0]["status"] == "completed"

    assert show.prompts in show.SECTIONS  # `broseph demo` prints it after its jobs finish
    console = Console(record=True, width=200)
    console.print((await show.prompts(conn, since)).table)
    shown = console.export_text()
    cur = await conn.execute(
        "SELECT g.name, p.local_date, p.text FROM public.prompts p"
        " JOIN public.groups g ON g.id = p.group_id"
        " WHERE p.local_date = (now() AT TIME ZONE g.time_zone)::date"
    )
    rows = await cur.fetchall()
    assert {r["name"] for r in rows} == {"Band", "Flatmates"}
    for row in rows:
        assert row["name"] in shown and str(row["local_date"]) in shown
        assert row["text"][:40] in shown
