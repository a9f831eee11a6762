"""
The `prompt_reminders` periodic task: members who have not answered their group's prompt by
REMINDER_HOUR in their own time zone get one prompt_reminder per prompt, however many ticks run.
"""

# ruff: noqa: F811  (pytest fixtures imported from tests.notify_support are test arguments)
from __future__ import annotations

import asyncio
import datetime

import pytest

from broseph import services, worker
from broseph.jobs import send_notification
from tests import factories
from tests.notify_support import (  # noqa: F401  (fixtures)
    add_device,
    logs,
    no_secrets_in_logs,
    set_preferences,
    wait_status,
)

UTC = datetime.UTC
TODAY = datetime.datetime.now(UTC).date()


@pytest.fixture(autouse=True)
def _no_secrets(no_secrets_in_logs):
    """
    Every test here: no device token, access token or message body in its logs.
    """


def at(day: datetime.date, hour: int, minute: int = 0) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(hour, minute), tzinfo=UTC)


def ts(moment: datetime.datetime) -> int:
    return int(moment.timestamp())


async def _prompt(conn, gid, *, created: datetime.datetime, text: str = "Best snack?"):
    pid = await factories.prompt(conn, gid, created.date(), text=text)
    await conn.execute(
        "UPDATE public.prompts SET created_at = %s, published_at = %s WHERE id = %s",
        (created, created, pid),
    )
    return pid


async def _member(conn, gid, name: str, time_zone: str = "UTC"):
    uid = await factories.user(conn, name=name, time_zone=time_zone)
    await factories.member(conn, gid, uid)
    return uid


async def _reminders(conn) -> list[dict]:
    cur = await conn.execute(
        "SELECT id, params, idempotency_key, status FROM broseph.job_records"
        " WHERE job_type = 'SendNotification' AND params ->> 'type' = 'prompt_reminder'"
        " ORDER BY idempotency_key"
    )
    return [dict(row) for row in await cur.fetchall()]


async def test_each_member_is_reminded_once_per_prompt_at_their_own_reminder_hour(conn, app):
    svc = services.for_app(app)
    gid = await factories.group(conn, name="Crew")
    utc = await _member(conn, gid, "Uma")
    berlin = await _member(conn, gid, "Bea", "Europe/Berlin")
    new_york = await _member(conn, gid, "Nia", "America/New_York")
    tokyo = await _member(conn, gid, "Tai", "Asia/Tokyo")
    answered = await _member(conn, gid, "Abe")
    muted = await _member(conn, gid, "Mo")
    switched_off = await _member(conn, gid, "Ola")
    await conn.execute("UPDATE public.group_members SET muted = true WHERE user_id = %s", (muted,))
    await set_preferences(conn, switched_off, prompt_reminder=False)
    prompt = await _prompt(conn, gid, created=at(TODAY, 8))
    await factories.message(conn, gid, answered, prompt_id=prompt, body="pretzels")
    # A second group whose prompt only arrived after 20:00: not "today's" for a reminder at 20:00.
    late_group = await factories.group(conn, name="Late")
    late = await _member(conn, late_group, "Lee")
    await _prompt(conn, late_group, created=at(TODAY, 20, 10))

    # 11:15 UTC is 20:15 in Tokyo: Tai's reminder (the prompt arrived at 17:00 Tokyo time).
    assert await send_notification.remind(svc, ts(at(TODAY, 11, 15))) == 1
    # 20:15 UTC: past 20:00 for Uma (UTC) and Bea (21:15 in Berlin); 15:15 for Nia. The tick
    # runs twice, then twice at once, as two workers would.
    first = await send_notification.remind(svc, ts(at(TODAY, 20, 15)))
    again = await send_notification.remind(svc, ts(at(TODAY, 20, 15)))
    racing = await asyncio.gather(
        send_notification.remind(svc, ts(at(TODAY, 20, 30))),
        send_notification.remind(svc, ts(at(TODAY, 20, 30))),
    )
    assert (first, again, sum(racing)) == (2, 0, 0)
    jobs = await _reminders(conn)
    assert [j["idempotency_key"] for j in jobs] == sorted(
        f"reminder:{u}:{prompt}" for u in (utc, berlin, tokyo)
    )
    assert {j["params"]["data"]["prompt_id"] for j in jobs} == {str(prompt)}

    # 01:15 UTC tomorrow is 20:15 in New York: Nia's turn, for the same (latest) prompt.
    tomorrow = TODAY + datetime.timedelta(days=1)
    assert await send_notification.remind(svc, ts(at(tomorrow, 1, 15))) == 1
    assert await send_notification.remind(svc, ts(at(tomorrow, 1, 30))) == 0
    # Tomorrow 20:15 UTC: the group's prompt is over a day old, so nobody is reminded of it
    # again; the late group's prompt (20:10 today) is Lee's, for tomorrow's reminder.
    assert await send_notification.remind(svc, ts(at(tomorrow, 20, 15))) == 1
    assert await send_notification.remind(svc, ts(at(tomorrow, 20, 45))) == 0

    jobs = await _reminders(conn)
    users = sorted(j["params"]["user_id"] for j in jobs)
    assert users == sorted(map(str, (utc, berlin, new_york, tokyo, late)))
    assert len({j["idempotency_key"] for j in jobs}) == len(jobs) == 5
    for absent in (answered, muted, switched_off):
        assert str(absent) not in users


async def test_reminders_are_pushed_unless_answered_meanwhile(conn, app, start_worker):
    svc = services.for_app(app)
    gid = await factories.group(conn, name="Crew")
    sam = await _member(conn, gid, "Sam")
    ana = await _member(conn, gid, "Ana")
    for uid in (sam, ana):
        await add_device(conn, uid)
    prompt = await _prompt(conn, gid, created=at(TODAY, 8), text="Best snack?")
    assert await send_notification.remind(svc, ts(at(TODAY, 20, 15))) == 2
    # Ana answers before the worker gets to her reminder.
    await factories.message(conn, gid, ana, prompt_id=prompt, body="pretzels")
    await start_worker()

    jobs = {j["params"]["user_id"]: j for j in await _reminders(conn)}
    await wait_status(conn, jobs[str(sam)]["id"], "completed")
    rec = await wait_status(conn, jobs[str(ana)]["id"], "completed")
    assert rec["result"]["status"] == "skipped"
    cur = await conn.execute(
        "SELECT title, body, notification_type FROM broseph.push_outbox"
        " WHERE notification_type = 'prompt_reminder'"
    )
    assert [dict(r) for r in await cur.fetchall()] == [
        {
            "title": "Crew is waiting for your answer",
            "body": "Best snack?",
            "notification_type": "prompt_reminder",
        }
    ]


def test_the_tick_is_scheduled_from_reminder_cron(settings):
    app = worker.create_app(settings.model_copy(update={"reminder_cron": "*/15 * * * *"}))
    periodic = {task.task.name: task.cron for task in app.periodic_registry.periodic_tasks.values()}
    assert periodic["prompt_reminders"] == "*/15 * * * *"
