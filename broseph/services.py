"""
The composition root: the one place that builds real outside-service clients from settings.

Handlers reach services through `JobRun.services`. A worker builds its `Services` lazily on its
first job (nothing connects at import); tests install their own with `install()`.
"""

from __future__ import annotations

import datetime
import json
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import procrastinate
from psycopg_pool import AsyncConnectionPool

from broseph.providers.ai import OpenAIPromptGenerator, PromptGenerator
from broseph.providers.prompt_bank import OfflinePromptBank
from broseph.providers.push import FcmPushSender, PushSender
from broseph.providers.push_outbox import OutboxPushSender
from broseph.settings import Settings, get_settings


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class Services:
    """
    Everything a handler may use beyond its payload.
    """

    settings: Settings
    pool: AsyncConnectionPool[Any]
    # Injectable clock: periodic tasks and quiet-hour logic ask it, tests control it.
    clock: Callable[[], datetime.datetime] = field(default=utc_now)
    # Daily prompts: the AI writer (None without OPENAI_API_KEY) and the offline bank, which is
    # the default without a key and the fallback when the AI gives up.
    ai: PromptGenerator | None = None
    prompt_bank: OfflinePromptBank = field(default_factory=OfflinePromptBank)
    # Push: FCM when FIREBASE_CREDENTIALS_FILE is set (see push_sender), else — and by default —
    # the development sender writing broseph.push_outbox through this pool.
    push: PushSender = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.push is None:
            self.push = OutboxPushSender(self.pool)

    async def aclose(self) -> None:
        """
        Close the outside clients these services built (the pool belongs to the app).
        """
        if isinstance(self.ai, OpenAIPromptGenerator):
            await self.ai.aclose()
        await self.push.aclose()


_by_app: weakref.WeakKeyDictionary[procrastinate.App, Services] = weakref.WeakKeyDictionary()


def install(app: procrastinate.App, services: Services) -> None:
    """
    Use these services for every job this app runs in this process.
    """
    _by_app[app] = services


def for_app(app: procrastinate.App) -> Services:
    """
    The app's services, built from settings on first use.
    """
    services = _by_app.get(app)
    if services is None:
        services = build(get_settings(), pool_of(app))
        _by_app[app] = services
    return services


def pool_of(app: procrastinate.App) -> AsyncConnectionPool[Any]:
    """
    The pool of the app's psycopg connector: handlers share the worker's connections.
    """
    connector = app.connector
    if not isinstance(connector, procrastinate.PsycopgConnector):
        raise TypeError("broseph needs procrastinate's PsycopgConnector")
    return connector.pool


def build(settings: Settings, pool: AsyncConnectionPool[Any]) -> Services:
    """
    Real services from settings.
    """
    return Services(
        settings=settings,
        pool=pool,
        ai=prompt_generator(settings),
        push=push_sender(settings, pool),
    )


def prompt_generator(settings: Settings) -> PromptGenerator | None:
    """
    The OpenAI prompt writer when OPENAI_API_KEY is set; None means the offline bank only.
    """
    if settings.openai_api_key is None or not settings.openai_api_key.get_secret_value():
        return None
    # Building the client opens no connection; the first request does.
    return OpenAIPromptGenerator(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
        model=settings.openai_model,
        timeout=settings.openai_timeout,
        max_retries=settings.openai_max_retries,
    )


def push_sender(settings: Settings, pool: AsyncConnectionPool[Any]) -> PushSender:
    """
    FCM through firebase-admin when FIREBASE_CREDENTIALS_FILE is set, else the development
    sender that records deliveries in broseph.push_outbox (and logs them).
    """
    if not settings.firebase_credentials_file:
        return OutboxPushSender(pool)
    project_id = settings.firebase_project_id or _project_of(settings.firebase_credentials_file)
    # One firebase_admin app per process (the sender owns it); no connection until the first send.
    return FcmPushSender(
        credentials_file=settings.firebase_credentials_file,
        project_id=project_id,
        dry_run=settings.push_dry_run,
        fcm_url=settings.fcm_base_url,
    )


def _project_of(credentials_file: str) -> str:
    with open(credentials_file, encoding="utf-8") as handle:
        project_id = json.load(handle).get("project_id")
    if not isinstance(project_id, str) or not project_id:
        raise ValueError(f"{credentials_file} names no project_id: set FIREBASE_PROJECT_ID")
    return project_id
