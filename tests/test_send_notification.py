"""
SendNotification through the worker, the real firebase-admin SDK and the FCM stand-in: delivery to
every device, token hygiene, retries that resend only what failed, preferences, muted groups,
staleness, quiet hours — and no device token, API key or message body in the logs.
"""

# ruff: noqa: F811  (pytest fixtures imported from tests.notify_support are test arguments)
from __future__ import annotations

import datetime
import uuid

import pytest
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from broseph import services
from broseph.jobs.send_notification import SendNotification, refusal
from broseph.notify.content import messages_body
from broseph.providers.push_fcm import FcmPushSender
from broseph.providers.push_outbox import OutboxPushSender
from tests import factories
from tests.notify_support import (  # noqa: F401  (fixtures)
    ACCESS_TOKEN,
    PROJECT_ID,
    add_device,
    assert_no_secrets,
    deliveries,
    fcm,
    fcm_sender,
    logs,
    no_secrets_in_logs,
    notification,
    notification_row,
    push_app,
    record,
    send,
    service_account,
    set_preferences,
    sql_enqueue,
    use_clock,
    wait_status,
    without_notify_triggers,
    world,
)

FAST_RETRY = {"max_attempts": 3, "backoff_seconds": 0.2, "backoff_type": "fixed"}
PROMPT_TEXT = "What song is stuck in your head today?"
MESSAGE_BODY = f"the door code is {uuid.uuid4().hex[:8]}"


@pytest.fixture
async def w(conn):
    await without_notify_triggers(conn)
    return await world(conn)


@pytest.fixture(autouse=True)
def _no_secrets(no_secrets_in_logs):
    """
    Every test here: no device token, access token or message body in its logs.
    """


def secrets_of(w, *extra: str) -> list[str]:
    return [*(d.identifier for d in w.devices), ACCESS_TOKEN, *extra]


async def _prompt(conn, w) -> uuid.UUID:
    today = datetime.datetime.now(datetime.UTC).date()
    return await factories.prompt(conn, w.group_id, today, text=PROMPT_TEXT)


async def test_new_prompt_reaches_all_three_devices_exactly_once(
    conn, w, fcm, push_app, start_worker, logs
):
    prompt_id = await _prompt(conn, w)
    rid = await send(
        conn, notification(w.user_id, "new_prompt", group_id=w.group_id, prompt_id=prompt_id)
    )
    await start_worker()

    rec = await wait_status(conn, rid, "completed")
    row = await notification_row(conn, rid)
    assert row["status"] == "sent" and row["reason"] is None and row["sent_at"] is not None
    assert rec["result"]["delivered"] == 3 and rec["attempts"] == 1
    for device in w.devices:
        (request,) = fcm.requests_for(device.identifier)  # exactly once
        assert request.kind == device.kind and request.status == 200
        message = request.message
        # Text from the database, deep-link ids in the data, one collapse key per group.
        assert message["notification"] == {
            "title": "New prompt in Climbing crew",
            "body": PROMPT_TEXT,
        }
        assert message["data"] == {
            "type": "new_prompt",
            "notification_id": str(row["id"]),
            "group_id": str(w.group_id),
            "prompt_id": str(prompt_id),
        }
        assert message["android"]["collapse_key"] == f"group-{w.group_id}"
        assert message["apns"]["headers"]["apns-collapse-id"] == f"group-{w.group_id}"
    found = await deliveries(conn, row["id"])
    assert {d["status"] for d in found.values()} == {"delivered"}
    assert {d["sends"] for d in found.values()} == {1}
    assert_no_secrets(logs(), secrets_of(w, PROMPT_TEXT))


async def test_new_message_text_comes_from_the_database_not_the_payload(
    conn, w, fcm, push_app, start_worker, logs
):
    ben = await factories.user(conn, name="Ben")
    await factories.member(conn, w.group_id, ben)
    for sender, body in ((w.friend_id, MESSAGE_BODY), (ben, "x"), (w.friend_id, MESSAGE_BODY)):
        await factories.message(conn, w.group_id, sender, body=body)
    cur = await conn.execute(
        "SELECT id FROM public.messages ORDER BY created_at DESC, id DESC LIMIT 1"
    )
    newest = (await cur.fetchone())["id"]
    await conn.execute(
        "UPDATE public.groups SET name = 'Renamed crew' WHERE id = %s", (w.group_id,)
    )
    rid = await send(conn, notification(w.user_id, "new_message", group_id=w.group_id))
    await start_worker()

    await wait_status(conn, rid, "completed")
    message = fcm.requests_for(w.devices[0].identifier)[0].message
    assert message["notification"]["title"] == "Renamed crew"
    assert message["notification"]["body"] in (
        messages_body(3, 2, ["Ana", "Ben"]),
        messages_body(3, 2, ["Ben", "Ana"]),
    )
    assert message["data"]["message_count"] == "3"
    assert message["data"]["message_id"] == str(newest)
    assert MESSAGE_BODY not in repr(message)  # pushes carry counts and names, never the text
    row = await notification_row(conn, rid)
    assert row["message_count"] == 3 and row["covered_until"] is not None
    # Nothing new since: the next new_message for the group is skipped, nothing sent.
    again = await send(
        conn, notification(w.user_id, "new_message", group_id=w.group_id), idempotency_key="2"
    )
    await wait_status(conn, again, "completed")
    assert (await notification_row(conn, again))["status"] == "skipped"
    assert len(fcm.requests_for(w.devices[0].identifier)) == 1
    assert_no_secrets(logs(), secrets_of(w, MESSAGE_BODY))


async def test_unregistered_device_is_disabled_and_the_others_delivered(
    conn, w, fcm, push_app, start_worker, logs
):
    dead = w.devices[1]
    fcm.fail(dead.identifier, status=404, error_code="UNREGISTERED")
    prompt_id = await _prompt(conn, w)
    rid = await send(
        conn, notification(w.user_id, "new_prompt", group_id=w.group_id, prompt_id=prompt_id)
    )
    await start_worker()

    rec = await wait_status(conn, rid, "completed")
    row = await notification_row(conn, rid)
    assert row["status"] == rec["result"]["status"] == "sent"
    assert rec["result"]["dead_token"] == 1 and rec["result"]["delivered"] == 2
    cur = await conn.execute(
        "SELECT id, disabled_at, disabled_reason FROM public.device_tokens WHERE user_id = %s",
        (w.user_id,),
    )
    tokens = {r["id"]: r for r in await cur.fetchall()}
    assert tokens[dead.id]["disabled_at"] is not None
    assert tokens[dead.id]["disabled_reason"] == "FCM: UNREGISTERED"
    assert all(tokens[d.id]["disabled_at"] is None for d in (w.devices[0], w.devices[2]))
    assert [fcm.delivered_to(d.identifier) for d in w.devices] == [1, 0, 1]

    # The next notification does not even try the dead device.
    friend = await send(
        conn, notification(w.user_id, "friend_joined", group_id=w.group_id, friend_id=w.friend_id)
    )
    await wait_status(conn, friend, "completed")
    assert len(fcm.requests_for(dead.identifier)) == 1
    assert [fcm.delivered_to(d.identifier) for d in w.devices] == [2, 0, 2]
    assert_no_secrets(logs(), secrets_of(w, PROMPT_TEXT))


async def test_quota_exceeded_retries_only_that_device_until_the_budget_is_spent(
    conn, w, fcm, push_app, start_worker, logs
):
    busy = w.devices[2]
    fcm.fail(busy.identifier, status=429, error_code="QUOTA_EXCEEDED")  # every time
    prompt_id = await _prompt(conn, w)
    rid = await send(
        conn,
        notification(w.user_id, "new_prompt", group_id=w.group_id, prompt_id=prompt_id),
        retry={**FAST_RETRY, "backoff_seconds": 1.0},
    )
    await start_worker()

    # After the first attempt: retrying, with FCM's error code, and the notification pending.
    rec = await wait_status(conn, rid, "retrying")
    assert "QUOTA_EXCEEDED" in rec["last_error"] and rec["next_attempt_at"] is not None
    row = await notification_row(conn, rid)
    assert row["status"] == "pending" and "QUOTA_EXCEEDED" in row["reason"]

    rec = await wait_status(conn, rid, "failed")
    assert rec["attempts"] == 3
    row = await notification_row(conn, rid)
    assert row["status"] == "sent"  # two devices have it
    assert "QUOTA_EXCEEDED" in row["reason"]
    # One request per attempt to the busy device; the delivered ones were never sent again.
    assert len(fcm.requests_for(busy.identifier)) == 3
    assert [len(fcm.requests_for(d.identifier)) for d in w.devices[:2]] == [1, 1]
    assert_no_secrets(logs(), secrets_of(w, PROMPT_TEXT))


async def test_quota_exceeded_once_then_delivered_on_the_job_retry(
    conn, w, fcm, push_app, start_worker
):
    busy = w.devices[0]
    fcm.fail_once(busy.identifier, status=429, error_code="QUOTA_EXCEEDED")
    prompt_id = await _prompt(conn, w)
    rid = await send(
        conn,
        notification(w.user_id, "new_prompt", group_id=w.group_id, prompt_id=prompt_id),
        retry=FAST_RETRY,
    )
    await start_worker()

    rec = await wait_status(conn, rid, "completed")
    assert rec["attempts"] == 2
    assert (await notification_row(conn, rid))["status"] == "sent"
    assert [len(fcm.requests_for(d.identifier)) for d in w.devices] == [2, 1, 1]
    assert [fcm.delivered_to(d.identifier) for d in w.devices] == [1, 1, 1]


@pytest.mark.slow
async def test_503_outlasting_the_sdk_retries_then_success_resends_only_that_device(
    conn, w, fcm, push_app, start_worker, logs
):
    # ~7 s: firebase-admin retries a 503 itself 4 times (0 + 1 + 2 + 4 s) before giving up; five
    # scripted failures outlast that, so the JOB's retry is what finally delivers.
    down = w.devices[1]
    fcm.fail(down.identifier, status=503, error_code="UNAVAILABLE", times=5)
    prompt_id = await _prompt(conn, w)
    rid = await send(
        conn,
        notification(w.user_id, "new_prompt", group_id=w.group_id, prompt_id=prompt_id),
        retry=FAST_RETRY,
    )
    await start_worker()

    rec = await wait_status(conn, rid, "completed", within=30)
    assert rec["attempts"] == 2
    assert [len(fcm.requests_for(d.identifier)) for d in w.devices] == [1, 6, 1]
    assert [fcm.delivered_to(d.identifier) for d in w.devices] == [1, 1, 1]
    row = await notification_row(conn, rid)
    found = await deliveries(conn, row["id"])
    assert found[down.id]["sends"] == 2 and found[down.id]["status"] == "delivered"
    assert found[w.devices[0].id]["sends"] == 1
    assert_no_secrets(logs(), secrets_of(w, PROMPT_TEXT))


async def test_all_devices_dead_fails_the_notification_and_completes_the_job(
    conn, fcm, push_app, start_worker, logs
):
    await without_notify_triggers(conn)
    w = await world(conn, kinds=("fid", "token"))
    fcm.fail(w.devices[0].identifier, status=404, error_code="UNREGISTERED")
    fcm.fail(w.devices[1].identifier, status=403, error_code="SENDER_ID_MISMATCH")
    rid = await send(
        conn, notification(w.user_id, "friend_joined", group_id=w.group_id, friend_id=w.friend_id)
    )
    await start_worker()

    rec = await wait_status(conn, rid, "completed")
    row = await notification_row(conn, rid)
    assert row["status"] == rec["result"]["status"] == "failed"
    assert (rec["result"]["dead_token"], rec["result"]["delivered"]) == (2, 0)
    cur = await conn.execute(
        "SELECT count(*) AS n FROM public.device_tokens WHERE user_id = %s AND disabled_at IS NULL",
        (w.user_id,),
    )
    assert (await cur.fetchone())["n"] == 0
    # Now there is nobody to send to: the next one says so without calling FCM.
    again = await send(
        conn,
        notification(w.user_id, "friend_joined", group_id=w.group_id, friend_id=w.friend_id),
        idempotency_key="again",
    )
    rec = await wait_status(conn, again, "completed")
    assert (await notification_row(conn, again))["status"] == rec["result"]["status"] == "skipped"
    assert rec["result"]["delivered"] == rec["result"]["dead_token"] == 0
    assert [len(fcm.requests_for(d.identifier)) for d in w.devices] == [1, 1]
    assert_no_secrets(logs(), secrets_of(w))


@pytest.mark.parametrize("arrange", ["prefs", "muted", "left"])
async def test_preference_off_muted_or_left_is_skipped_with_the_reason(
    conn, w, fcm, push_app, start_worker, arrange
):
    # The wording is tests/test_decisions.py's; here, that the database's state took the branch.
    reason = refusal(
        "new_prompt",
        enabled=arrange != "prefs",
        is_member=arrange != "left",
        muted=arrange == "muted",
    )
    if arrange == "prefs":
        await set_preferences(conn, w.user_id, new_prompt=False)
    elif arrange == "muted":
        await conn.execute(
            "UPDATE public.group_members SET muted = true WHERE user_id = %s", (w.user_id,)
        )
    else:
        await conn.execute("DELETE FROM public.group_members WHERE user_id = %s", (w.user_id,))
    prompt_id = await _prompt(conn, w)
    rid = await send(
        conn, notification(w.user_id, "new_prompt", group_id=w.group_id, prompt_id=prompt_id)
    )
    await start_worker()

    rec = await wait_status(conn, rid, "completed")
    assert rec["result"] == {
        "status": "skipped",
        "reason": reason,
        "notification_id": rec["result"]["notification_id"],
    }
    row = await notification_row(conn, rid)
    assert (row["status"], row["reason"]) == ("skipped", reason)
    assert all(fcm.requests_for(d.identifier) == [] for d in w.devices)


async def test_a_stale_new_message_is_skipped_with_the_reason(conn, w, fcm, push_app, start_worker):
    three_hours_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=3)
    # A member since yesterday: messages before one joined are not "new" to them.
    await conn.execute("UPDATE public.group_members SET joined_at = now() - interval '1 day'")
    await factories.message(conn, w.group_id, w.friend_id, at=three_hours_ago)
    rid = await send(conn, notification(w.user_id, "new_message", group_id=w.group_id))
    await start_worker()

    await wait_status(conn, rid, "completed")
    row = await notification_row(conn, rid)
    # Skipped, the stale message counted as covered (the next push will not announce it).
    assert (row["status"], row["message_count"]) == ("skipped", 1)
    assert row["covered_until"] is not None
    assert all(fcm.requests_for(d.identifier) == [] for d in w.devices)


async def test_quiet_hours_reschedule_to_their_end_in_the_users_time_zone(
    conn, fcm, push_app, start_worker, logs
):
    await without_notify_triggers(conn)
    w = await world(conn, time_zone="Asia/Tokyo")
    await set_preferences(
        conn, w.user_id, quiet_start=datetime.time(22), quiet_end=datetime.time(7)
    )
    prompt_id = await _prompt(conn, w)
    # 14:30 UTC is 23:30 in Tokyo: quiet until 07:00 Tokyo = 22:00 UTC the same day. Tomorrow's,
    # so that 22:00 is still ahead of the real clock the queue schedules by (run between 22:00
    # and midnight UTC, today's would be due at once and run again under the test's clock).
    tomorrow = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    now = tomorrow.replace(hour=14, minute=30, second=0, microsecond=0)
    use_clock(push_app, lambda: now)
    payload = notification(w.user_id, "new_prompt", group_id=w.group_id, prompt_id=prompt_id)
    rid = await send(conn, payload)
    await start_worker()

    rec = await wait_status(conn, rid, "completed")
    end = now.replace(hour=22, minute=0)
    local = end.astimezone(datetime.timezone(datetime.timedelta(hours=9)))
    assert rec["result"]["status"] == "rescheduled"
    assert rec["result"]["run_at"] == end.isoformat()
    assert rec["result"]["local_end"] == f"{local:%Y-%m-%d} 07:00 Asia/Tokyo"
    later = uuid.UUID(rec["result"]["record_id"])
    nxt = await record(conn, later)
    assert (nxt["status"], nxt["scheduled_at"], nxt["params"]) == (
        "pending",
        end,
        payload.to_params(),
    )
    assert nxt["idempotency_key"] == f"quiet:{rid}" and nxt["source"] == "quiet_hours"
    assert await notification_row(conn, rid) is None  # not dropped, not decided: deferred
    assert all(fcm.requests_for(d.identifier) == [] for d in w.devices)

    # At 07:00 in Tokyo it goes out.
    use_clock(push_app, lambda: end + datetime.timedelta(seconds=1))
    await conn.execute(
        "UPDATE procrastinate_jobs SET scheduled_at = now() WHERE id = %s",
        (nxt["procrastinate_job_id"],),
    )
    await wait_status(conn, later, "completed")
    assert (await notification_row(conn, later))["status"] == "sent"
    assert [fcm.delivered_to(d.identifier) for d in w.devices] == [1, 1, 1]
    assert_no_secrets(logs(), secrets_of(w, PROMPT_TEXT))


async def test_payload_is_validated_per_type(conn, w, app, start_worker):
    with pytest.raises(ValidationError, match=r"needs data\.prompt_id"):
        SendNotification.model_validate(
            {"user_id": str(w.user_id), "type": "new_prompt", "data": {"group_id": str(w.group_id)}}
        )
    with pytest.raises(ValidationError, match="extra"):
        SendNotification.model_validate(
            {
                "user_id": str(w.user_id),
                "type": "new_message",
                "data": {"group_id": str(w.group_id), "body": "hi"},
            }
        )
    # The SQL face checks the same: types, unknown fields and the per-type rule (migrations/0015).
    with pytest.raises(Exception, match=r'unknown field "data\.body"'):
        await sql_enqueue(
            conn, {"user_id": str(w.user_id), "type": "new_message", "data": {"body": "hi"}}
        )
    params = {
        "user_id": str(w.user_id),
        "type": "friend_joined",
        "data": {"group_id": str(w.group_id)},
    }
    with pytest.raises(Exception, match=r'type "friend_joined" needs data\.friend_id'):
        await sql_enqueue(conn, params)
    # A job stored before that rule (or by hand) fails permanently, naming the missing id.
    rid = await sql_enqueue(
        conn, {**params, "data": {**params["data"], "friend_id": str(w.user_id)}}
    )
    await conn.execute(
        "UPDATE broseph.job_records SET params = %s WHERE id = %s", (Jsonb(params), rid)
    )
    await start_worker()
    rec = await wait_status(conn, rid, "failed")
    assert rec["attempts"] == 1 and "needs data.friend_id" in rec["last_error"]


async def test_without_credentials_the_outbox_records_and_logs_deliveries(
    conn, w, app, start_worker, logs
):
    assert isinstance(services.for_app(app).push, OutboxPushSender)
    prompt_id = await _prompt(conn, w)
    rid = await send(
        conn, notification(w.user_id, "new_prompt", group_id=w.group_id, prompt_id=prompt_id)
    )
    await start_worker()

    await wait_status(conn, rid, "completed")
    cur = await conn.execute("SELECT * FROM broseph.push_outbox ORDER BY id")
    rows = await cur.fetchall()
    assert sorted(r["device_id"] for r in rows) == sorted(d.id for d in w.devices)
    assert {(r["title"], r["body"], r["collapse_key"]) for r in rows} == {
        ("New prompt in Climbing crew", PROMPT_TEXT, f"group-{w.group_id}")
    }
    assert sorted(r["target_kind"] for r in rows) == ["fid", "fid", "token"]
    assert (await notification_row(conn, rid))["status"] == "sent"
    assert "push.dev_sent" in logs()
    assert_no_secrets(logs(), secrets_of(w, PROMPT_TEXT))


async def test_services_build_fcm_from_credentials_file(settings, service_account, app, fcm):
    configured = settings.model_copy(
        update={
            "firebase_credentials_file": str(service_account.path),
            "fcm_base_url": fcm.base_url,
            "push_dry_run": True,
        }
    )
    svc = services.build(configured, services.pool_of(app))
    try:
        assert isinstance(svc.push, FcmPushSender)
    finally:
        await svc.aclose()
    assert isinstance(services.build(settings, services.pool_of(app)).push, OutboxPushSender)
    assert PROJECT_ID in service_account.path.read_text()
