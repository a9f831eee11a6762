"""
A worker killed (-9) between the FCM call and recording FCM's answers, then another worker: each
device receives the notification at most twice (counted at the FCM stand-in), however many times
that happens — the bound of broseph/notify/delivery.py — through the group delivery a message's
trigger enqueues (DeliverGroupEvent). Without a crash, exactly once
(tests/test_send_notification.py, tests/test_deliver_group_event.py).

Workers run as `procrastinate --app tests.notify_crash_app.app worker` subprocesses — the
production app, configured only through the environment: service-account credentials
(FIREBASE_CREDENTIALS_FILE, token endpoint stood in), FCM_BASE_URL pointing at the stand-in —
whose push sender holds the victim right after the FCM call (PUSH_PAUSE_SECONDS, read by the test
app only). The killed
worker's job comes back through the operations rescue (broseph/ops/rescue.py: the survivor's
`ops_rescue` tick retries jobs whose worker's heartbeat is older than RESCUE_AFTER_SECONDS).
"""

# ruff: noqa: F811  (pytest fixtures imported from tests.notify_support are test arguments)
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import factories, notify_crash_app
from tests.notify_support import (  # noqa: F401  (fixtures)
    ServiceAccount,
    deliveries,
    fcm,
    notification_row,
    service_account,
    wait_status,
    without_notify_triggers,
    world,
)
from tests.standins.fcm_server import FcmStandIn

ROOT = Path(__file__).resolve().parent.parent
APP = "tests.notify_crash_app.app"
MESSAGE_BODY = f"meet at the usual place, code {uuid.uuid4().hex[:10]}"


class Worker:
    """
    The crash test app's worker in a subprocess, as an operator starts one; JSON logs to a file.
    """

    def __init__(self, env: dict[str, str], name: str) -> None:
        self.log_path = Path(tempfile.mkstemp(prefix=f"notify-{name}-", suffix=".log")[1])
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "procrastinate", "--app", APP, "worker"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_for_log(self, text: str, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while text not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"worker never logged {text!r}:\n{self.log()[-3000:]}")
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no cleanup, no unregister, no heartbeat — a lost host
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log_path.unlink(missing_ok=True)


@pytest.fixture
def workers(db_url: str, fcm: FcmStandIn, service_account: ServiceAccount) -> Iterator[Any]:
    started: list[Worker] = []

    def start(name: str, *, pause: float = 0.0) -> Worker:
        env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "FIREBASE_CREDENTIALS_FILE": str(service_account.path),
            "FCM_BASE_URL": fcm.base_url,
            notify_crash_app.PAUSE_ENV: str(pause),
            "PYTHONPATH": str(ROOT),
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            # Notifications and the rescue tick only: no prompt or engagement work in between.
            "WORKER_QUEUES": "notifications,ops",
            "WORKER_CONCURRENCY": "2",
            "POLL_INTERVAL": "0.5",
            "HEARTBEAT_INTERVAL": "0.5",
            "RESCUE_AFTER_SECONDS": "2",
            "RESCUE_CRON": "* * * * * *",
            "SHUTDOWN_TIMEOUT": "2",
        }
        worker = Worker(env, name)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


async def _crash_scenario(conn, fcm, workers, service_account, *, crashes: int):
    await without_notify_triggers(conn)
    w = await world(conn)
    # The real path: a message's trigger enqueues the notification (no debounce for the test).
    await conn.execute("ALTER TABLE public.messages ENABLE TRIGGER broseph_messages_notify")
    await conn.execute(
        "UPDATE broseph.job_types SET coalesce_delay = interval '0'"
        " WHERE name = 'DeliverGroupEvent'"
    )
    victims = []
    for n in range(crashes):
        victim = workers(f"victim{n}", pause=60.0)
        victims.append(victim)
        if n == 0:
            await factories.message(conn, w.group_id, w.friend_id, body=MESSAGE_BODY)
        await victim.wait_for_log('"push_test_pause"')
        assert [len(fcm.requests_for(d.identifier)) for d in w.devices] == [n + 1] * 3
        victim.kill()
    cur = await conn.execute(
        "SELECT id FROM broseph.job_records WHERE job_type = 'DeliverGroupEvent'"
    )
    [rid] = [row["id"] for row in await cur.fetchall()]
    row = await notification_row(conn, rid)
    # What the crash left: every device's request sent, its answer never recorded.
    left = await deliveries(conn, row["id"])
    assert {(d["status"], d["unanswered"]) for d in left.values()} == {("sending", crashes)}

    survivor = workers("survivor")
    rec = await wait_status(conn, rid, "completed", within=45)
    assert rec["attempts"] == crashes + 1
    logs = "".join(v.log() for v in [*victims, survivor])
    secrets = [
        *(d.identifier for d in w.devices),
        service_account.access_token,
        service_account.private_key.splitlines()[1],
        MESSAGE_BODY,
    ]
    for secret in secrets:
        assert secret not in logs
    assert '"job_complete"' in survivor.log()
    return w, rid, await deliveries(conn, row["id"]), await notification_row(conn, rid)


async def test_killed_after_the_fcm_call_each_device_gets_it_at_most_twice(
    conn, fcm, workers, service_account
):
    w, _, found, row = await _crash_scenario(conn, fcm, workers, service_account, crashes=1)

    counts = [fcm.delivered_to(d.identifier) for d in w.devices]
    assert counts == [2, 2, 2]  # the crash cost one duplicate per device, no more
    # Delivered by the survivor; the killed worker's request stays unanswered for good.
    assert {(d["status"], d["sends"], d["unanswered"]) for d in found.values()} == {
        ("delivered", 2, 1)
    }
    assert row["status"] == "sent"
    # The push the user saw: built from the database, never carrying the message text.
    request = fcm.requests_for(w.devices[0].identifier)[-1]
    assert request.message["notification"] == {
        "title": "Climbing crew",
        "body": "Ana sent a message",
    }
    assert request.authorization == f"Bearer {service_account.access_token}"


@pytest.mark.slow
async def test_the_bound_holds_when_the_restarted_worker_dies_there_too(
    conn, fcm, workers, service_account
):
    w, _, found, row = await _crash_scenario(conn, fcm, workers, service_account, crashes=2)

    # Two unanswered sends already: the third worker sends nothing more.
    assert [fcm.delivered_to(d.identifier) for d in w.devices] == [2, 2, 2]
    assert [len(fcm.requests_for(d.identifier)) for d in w.devices] == [2, 2, 2]
    assert {(d["status"], d["sends"]) for d in found.values()} == {("unconfirmed", 2)}
    assert row["status"] == "sent"
