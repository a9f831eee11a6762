"""
Shared pieces of the push-notification tests: the FCM stand-in, a firebase-admin sender pointed
at it, a small Broseph world with devices, running SendNotification jobs through the worker, an
OAuth token stand-in for service-account credentials (worker subprocesses), and the secret check
for logs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import procrastinate
import psycopg
import pytest
import pytest_asyncio
import structlog.testing
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.oauth2.credentials import Credentials
from psycopg.rows import DictRow

from broseph import enqueue, services
from broseph.jobs.send_notification import NotificationData, SendNotification
from broseph.providers.push_fcm import FcmPushSender
from tests import factories, pg

# The notification tests read records through this module (notify_support.record).
from tests.records import record, wait_status  # noqa: F401
from tests.standins import serving
from tests.standins.fcm_server import FcmStandIn

PROJECT_ID = "broseph-notify-test"
# The bearer token the in-process sender presents: an "API key" that must never be logged.
ACCESS_TOKEN = f"ya29.test-{uuid.uuid4().hex}"
Conn = psycopg.AsyncConnection[DictRow]
NOTIFY_TRIGGERS = (
    ("public.messages", "broseph_messages_notify"),
    ("public.group_members", "broseph_group_members_notify"),
    ("public.prompts", "broseph_prompts_notify"),
)


@pytest.fixture(scope="session")
def fcm() -> Iterator[FcmStandIn]:
    """
    One FCM stand-in for the session: tests tell their pushes apart by device identifier.
    """
    with FcmStandIn() as server:
        yield server


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def fcm_sender(fcm: FcmStandIn) -> AsyncIterator[FcmPushSender]:
    """
    One long-lived firebase-admin app for the session, as in production, aimed at the stand-in.
    """
    sender = FcmPushSender(
        credentials=Credentials(token=ACCESS_TOKEN),  # type: ignore[no-untyped-call]
        project_id=PROJECT_ID,
        fcm_url=fcm.base_url,
        app_name=f"broseph-notify-{uuid.uuid4().hex[:8]}",
    )
    yield sender
    await sender.aclose()


@pytest.fixture
def push_app(app: procrastinate.App, fcm_sender: FcmPushSender) -> procrastinate.App:
    """
    The test app, its services pushing through firebase-admin to the stand-in.
    """
    services.install(app, dataclasses.replace(services.for_app(app), push=fcm_sender))
    return app


def use_clock(app: procrastinate.App, clock: Any) -> None:
    services.install(app, dataclasses.replace(services.for_app(app), clock=clock))


async def without_notify_triggers(conn: Conn) -> None:
    """
    Job tests enqueue their own notifications: keep the triggers from adding others.
    """
    for table, trigger in NOTIFY_TRIGGERS:
        await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")


# --- a small world ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Device:
    id: uuid.UUID
    kind: str
    identifier: str


@dataclasses.dataclass
class World:
    group_id: uuid.UUID
    user_id: uuid.UUID
    friend_id: uuid.UUID
    devices: list[Device]


async def add_device(conn: Conn, user_id: uuid.UUID, kind: str = "fid") -> Device:
    # Identifiers look like the real thing and are unique per test: the stand-in counts by them.
    identifier = (
        f"fid-{uuid.uuid4().hex}"
        if kind == "fid"
        else f"tok-{uuid.uuid4().hex}:APA91b{uuid.uuid4().hex}"
    )
    row = await pg.one(
        conn,
        "INSERT INTO public.device_tokens (user_id, kind, identifier) VALUES (%s, %s, %s)"
        " RETURNING id",
        (user_id, kind, identifier),
    )
    return Device(row["id"], kind, identifier)


async def world(
    conn: Conn,
    *,
    kinds: Sequence[str] = ("fid", "token", "fid"),
    time_zone: str = "UTC",
    group_name: str = "Climbing crew",
) -> World:
    """
    A group with the user (who has `kinds` devices) and a friend called Ana.
    """
    gid = await factories.group(conn, name=group_name)
    uid = await factories.user(conn, name="Sam", time_zone=time_zone)
    friend = await factories.user(conn, name="Ana")
    for member in (uid, friend):
        await factories.member(conn, gid, member)
    devices = [await add_device(conn, uid, kind) for kind in kinds]
    return World(gid, uid, friend, devices)


async def set_preferences(conn: Conn, user_id: uuid.UUID, **values: Any) -> None:
    columns = ", ".join(values)
    placeholders = ", ".join(["%s"] * len(values))
    await conn.execute(
        f"INSERT INTO public.notification_preferences (user_id, {columns})"
        f" VALUES (%s, {placeholders})",
        (user_id, *values.values()),
    )


# --- running jobs -------------------------------------------------------------------------------


def notification(user_id: uuid.UUID, type_: str, **ids: uuid.UUID | None) -> SendNotification:
    return SendNotification(user_id=user_id, type=type_, data=NotificationData(**ids))  # type: ignore[arg-type]


async def send(conn: Conn, payload: SendNotification, **options: Any) -> uuid.UUID:
    """
    Enqueue one SendNotification (committed: `conn` is in autocommit).
    """
    return await enqueue.enqueue(conn, payload, **options)


async def notification_row(conn: Conn, record_id: uuid.UUID) -> dict[str, Any] | None:
    cur = await conn.execute(
        "SELECT * FROM public.notifications WHERE record_id = %s", (record_id,)
    )
    row = await cur.fetchone()
    return dict(row) if row else None


async def deliveries(conn: Conn, notification_id: uuid.UUID) -> dict[uuid.UUID, dict[str, Any]]:
    cur = await conn.execute(
        "SELECT * FROM broseph.notification_deliveries WHERE notification_id = %s",
        (notification_id,),
    )
    return {row["device_id"]: dict(row) for row in await cur.fetchall()}


async def sql_enqueue(conn: Conn, params: dict[str, Any]) -> uuid.UUID:
    return await factories.enqueued(conn, "SendNotification", params)


# --- secrets in logs ----------------------------------------------------------------------------


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[Any]:
    """
    Everything the test logged: structlog events (raw, before any redaction: the code must not
    log secrets in the first place) and stdlib records (procrastinate, httpx), as one text.
    """
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as captured:
        yield lambda: repr(captured) + caplog.text


@pytest.fixture
async def no_secrets_in_logs(logs: Any, conn: Conn) -> AsyncIterator[None]:
    """
    Autouse it in a module: after each test, no device identifier or message body of the test's
    database, nor the sender's access token, appears in what was logged.
    """
    yield
    cur = await conn.execute(
        "SELECT identifier AS secret FROM public.device_tokens"
        " UNION ALL SELECT body FROM public.messages WHERE length(body) >= 10"
    )
    secrets = [row["secret"] for row in await cur.fetchall()]
    text = logs()
    for secret in [*secrets, ACCESS_TOKEN]:
        assert secret not in text, f"a secret reached the logs: {secret[:6]}…"


def assert_no_secrets(logged: Any, secrets: Sequence[str]) -> None:
    """
    Nothing secret anywhere in what was logged (event dicts or text), and something was logged.
    """
    text = logged if isinstance(logged, str) else repr(logged)
    assert text and text not in ("[]", "''")
    for secret in secrets:
        assert secret and secret not in text, f"a secret reached the logs: {secret[:6]}…"


# --- service-account credentials for worker subprocesses ----------------------------------------


class TokenServer:
    """
    Google's OAuth token endpoint, stood in on 127.0.0.1: firebase-admin's service-account
    credentials exchange their signed JWT here for a bearer token (a secret the logs must not show).
    """

    def __init__(self) -> None:
        self.access_token = f"ya29.sa-{uuid.uuid4().hex}"
        self.requests = 0
        token = self.access_token
        owner = self

        class Handler(serving.QuietHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.requests += 1
                body = {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}
                self.reply_json(200, json.dumps(body).encode())

        self._server, _thread = serving.serve(Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/token"

    def close(self) -> None:
        serving.stop(self._server)


@dataclasses.dataclass(frozen=True)
class ServiceAccount:
    path: Path
    private_key: str
    access_token: str


@pytest.fixture(scope="session")
def service_account(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceAccount]:
    """
    A service-account JSON file whose token_uri is the token stand-in (FIREBASE_CREDENTIALS_FILE).
    """
    server = TokenServer()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": PROJECT_ID,
        "private_key_id": uuid.uuid4().hex,
        "private_key": pem,
        "client_email": f"push@{PROJECT_ID}.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": server.url,
    }
    path = tmp_path_factory.mktemp("firebase") / "service-account.json"
    path.write_text(json.dumps(info))
    yield ServiceAccount(path, pem, server.access_token)
    server.close()
