"""
DeliverGroupEvent through the worker, the real firebase-admin SDK and the FCM stand-in: one job
notifies a group of 1 or of 10,000 members (at most 500 messages per send_each_async), members in
quiet hours get their own delivery at the end of their window, a retry resends only the devices
not yet answered, dead tokens are disabled — and no device token or API key reaches the logs.
(Crashes between the send and the record: tests/test_notification_crash.py.)
"""

# ruff: noqa: F811  (pytest fixtures imported from tests.notify_support are test arguments)
from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest
from firebase_admin import messaging

from broseph import enqueue, idempotency
from broseph.jobs.deliver_group_event import DeliverGroupEvent
from tests import factories
from tests.notify_support import (  # noqa: F401  (fixtures)
    ACCESS_TOKEN,
    add_device,
    assert_no_secrets,
    fcm,
    fcm_sender,
    logs,
    push_app,
    record,
    set_preferences,
    use_clock,
    wait_status,
    without_notify_triggers,
)

FAST_RETRY = {"max_attempts": 3, "backoff_seconds": 0.2, "backoff_type": "fixed"}
TODAY = datetime.datetime.now(datetime.UTC).date()


async def _group(conn, size: int, *, name: str = "Crew") -> tuple[uuid.UUID, list[uuid.UUID]]:
    """
    A group of `size` members, one fid device each, made set-based (10,000 take a second).
    """
    gid = await factories.group(conn, name=name)
    cur = await conn.execute(
        "INSERT INTO public.profiles (display_name)"
        " SELECT 'Member ' || g FROM generate_series(1, %s) AS g RETURNING id",
        (size,),
    )
    members = [row["id"] for row in await cur.fetchall()]
    await conn.execute(
        "INSERT INTO public.group_members (group_id, user_id) SELECT %s, unnest(%s::uuid[])",
        (gid, members),
    )
    await conn.execute(
        "INSERT INTO public.device_tokens (user_id, kind, identifier)"
        " SELECT u, 'fid', 'fid-' || md5(u::text || %s) FROM unnest(%s::uuid[]) AS u",
        (uuid.uuid4().hex, members),
    )
    return gid, members


async def _identifiers(conn, members: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    cur = await conn.execute(
        "SELECT user_id, identifier FROM public.device_tokens WHERE user_id = ANY(%s)",
        (members,),
    )
    return {row["user_id"]: row["identifier"] for row in await cur.fetchall()}


async def _deliver_prompt(conn, gid: uuid.UUID, **options: Any) -> tuple[uuid.UUID, uuid.UUID]:
    prompt_id = await factories.prompt(conn, gid, TODAY, text="Best snack?")
    payload = DeliverGroupEvent(group_id=gid, type="new_prompt", prompt_id=prompt_id)
    return prompt_id, await enqueue.enqueue(conn, payload, **options)


async def _statuses(conn, record_id: uuid.UUID) -> dict[str, int]:
    cur = await conn.execute(
        "SELECT status, count(*)::int AS n FROM public.notifications WHERE record_id = %s"
        " GROUP BY status",
        (record_id,),
    )
    return {row["status"]: row["n"] for row in await cur.fetchall()}


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """
    The size of every send_each_async call (the real one runs).
    """
    sizes: list[int] = []
    real = messaging.send_each_async

    async def spy(messages: list[Any], *args: Any, **kwargs: Any) -> Any:
        sizes.append(len(messages))
        return await real(messages, *args, **kwargs)

    monkeypatch.setattr(messaging, "send_each_async", spy)
    return sizes


async def test_a_group_of_one_gets_its_push_from_one_job(
    conn, fcm, push_app, start_worker, batches, logs
):
    await without_notify_triggers(conn)
    gid, [member] = await _group(conn, 1, name="Solo")
    prompt_id, rid = await _deliver_prompt(conn, gid)
    await start_worker()

    rec = await wait_status(conn, rid, "completed")
    assert rec["result"]["members"] == 1 and rec["result"]["sent"] == 1
    assert await _statuses(conn, rid) == {"sent": 1}
    identifier = (await _identifiers(conn, [member]))[member]
    [request] = fcm.requests_for(identifier)
    assert request.message["notification"] == {"title": "New prompt in Solo", "body": "Best snack?"}
    assert request.message["data"]["prompt_id"] == str(prompt_id)
    assert batches == [1]
    assert_no_secrets(logs(), [identifier, ACCESS_TOKEN])


@pytest.mark.slow
async def test_a_group_of_ten_thousand_is_one_job_and_batches_of_at_most_500(
    conn, fcm, push_app, start_worker, batches
):
    await without_notify_triggers(conn)
    await conn.execute("ALTER TABLE public.prompts ENABLE TRIGGER broseph_prompts_notify")
    gid, members = await _group(conn, 10_000)
    await factories.prompt(conn, gid, TODAY, text="Best snack?")  # the trigger enqueues
    cur = await conn.execute(
        "SELECT id FROM broseph.job_records WHERE job_type IN"
        " ('DeliverGroupEvent', 'SendNotification', 'NotifyMembers')"
    )
    [rid] = [row["id"] for row in await cur.fetchall()]  # one job for 10,000 members
    await start_worker()

    rec = await wait_status(conn, rid, "completed", within=240)
    assert rec["attempts"] == 1
    assert await _statuses(conn, rid) == {"sent": 10_000}
    identifiers = await _identifiers(conn, members)
    assert sum(fcm.delivered_to(i) for i in identifiers.values()) == 10_000
    assert {fcm.delivered_to(i) for i in identifiers.values()} == {1}
    assert sum(batches) == 10_000 and max(batches) <= 500 and len(batches) == 20


async def test_members_in_quiet_hours_are_rescheduled_alone(conn, fcm, push_app, start_worker):
    await without_notify_triggers(conn)
    gid, (awake, sleeping, other) = await _group(conn, 3)
    await conn.execute(
        "UPDATE public.profiles SET time_zone = 'America/Bogota' WHERE id = %s", (sleeping,)
    )
    # 03:00 in Bogotá (UTC-5 all year); the window 22:00–07:00 ends at 12:00 UTC. Tomorrow:
    # the rescheduled job must stay in the database's future, or the worker (whose queue reads
    # the real clock) would run it during the test.
    tomorrow = datetime.datetime.now(datetime.UTC).date() + datetime.timedelta(days=1)
    now = datetime.datetime.combine(tomorrow, datetime.time(8, 0), tzinfo=datetime.UTC)
    use_clock(push_app, lambda: now)
    await set_preferences(conn, sleeping, quiet_start="22:00", quiet_end="07:00")
    _, rid = await _deliver_prompt(conn, gid)
    await start_worker()

    rec = await wait_status(conn, rid, "completed")
    assert rec["result"]["rescheduled"] == 1 and rec["result"]["sent"] == 2
    cur = await conn.execute(
        "SELECT user_id FROM public.notifications WHERE record_id = %s", (rid,)
    )
    assert {row["user_id"] for row in await cur.fetchall()} == {awake, other}
    cur = await conn.execute(
        "SELECT r.id, r.params, r.idempotency_key, r.source FROM broseph.job_records r"
        " WHERE r.job_type = 'SendNotification'"
    )
    [own] = await cur.fetchall()
    assert own["params"]["user_id"] == str(sleeping)
    assert own["source"] == "quiet_hours"
    assert own["idempotency_key"] == idempotency.new_prompt(
        sleeping, uuid.UUID(own["params"]["data"]["prompt_id"])
    )
    rescheduled = await record(conn, own["id"])
    assert rescheduled["scheduled_at"] == now.replace(hour=12)
    identifiers = await _identifiers(conn, [awake, sleeping, other])
    assert [fcm.delivered_to(identifiers[u]) for u in (awake, sleeping, other)] == [1, 0, 1]


async def test_a_retry_resends_only_the_devices_not_yet_answered(conn, fcm, push_app, start_worker):
    await without_notify_triggers(conn)
    gid, members = await _group(conn, 4)
    identifiers = await _identifiers(conn, members)
    second = await add_device(conn, members[0], "token")  # one member, one device of two busy
    busy = [identifiers[members[1]], second.identifier]
    for identifier in busy:
        fcm.fail_once(identifier, status=429, error_code="QUOTA_EXCEEDED")
    _, rid = await _deliver_prompt(conn, gid, retry=FAST_RETRY)
    await start_worker()

    rec = await wait_status(conn, rid, "completed")
    assert rec["attempts"] == 2
    assert await _statuses(conn, rid) == {"sent": 4}
    # The answered devices got one request; the two that answered retry one more each.
    assert [len(fcm.requests_for(i)) for i in busy] == [2, 2]
    assert [len(fcm.requests_for(identifiers[m])) for m in members] == [1, 2, 1, 1]
    assert {fcm.delivered_to(i) for i in [*identifiers.values(), second.identifier]} == {1}
    cur = await conn.execute(
        "SELECT d.sends, d.status FROM broseph.notification_deliveries d"
        " JOIN public.notifications n ON n.id = d.notification_id WHERE n.record_id = %s",
        (rid,),
    )
    rows = await cur.fetchall()
    assert sorted(r["sends"] for r in rows) == [1, 1, 1, 2, 2]
    assert {r["status"] for r in rows} == {"delivered"}


async def test_dead_tokens_are_disabled_and_the_others_delivered(conn, fcm, push_app, start_worker):
    await without_notify_triggers(conn)
    gid, members = await _group(conn, 3)
    identifiers = await _identifiers(conn, members)
    dead = identifiers[members[2]]
    fcm.fail(dead, status=404, error_code="UNREGISTERED")
    _, rid = await _deliver_prompt(conn, gid)
    await start_worker()

    rec = await wait_status(conn, rid, "completed")
    assert rec["attempts"] == 1
    assert await _statuses(conn, rid) == {"sent": 2, "failed": 1}
    cur = await conn.execute(
        "SELECT user_id, disabled_reason FROM public.device_tokens WHERE disabled_at IS NOT NULL"
    )
    assert [(r["user_id"], r["disabled_reason"]) for r in await cur.fetchall()] == [
        (members[2], "FCM: UNREGISTERED")
    ]
    cur = await conn.execute(
        "SELECT reason FROM public.notifications WHERE record_id = %s AND user_id = %s",
        (rid, members[2]),
    )
    assert (await cur.fetchone())["reason"] == "all devices dead (1 disabled)"


async def test_preferences_off_are_skipped_with_the_reason_in_one_statement(
    conn, fcm, push_app, start_worker
):
    await without_notify_triggers(conn)
    gid, (on, off) = await _group(conn, 2)
    await set_preferences(conn, off, new_prompt=False)
    _, rid = await _deliver_prompt(conn, gid)
    await start_worker()

    await wait_status(conn, rid, "completed")
    cur = await conn.execute(
        "SELECT user_id, status, reason FROM public.notifications WHERE record_id = %s"
        " ORDER BY status",
        (rid,),
    )
    assert [tuple(r.values()) for r in await cur.fetchall()] == [
        (on, "sent", None),
        (off, "skipped", "new_prompt notifications are off in the user's preferences"),
    ]
