"""
The composition root: the one place that builds real outside-service clients from settings.

Handlers reach services through `JobRun.services`. A worker builds its `Services` once, when it
starts (`start`, from its app's settings), after checking the outside-service configuration: an
unreadable FCM credentials file or a malformed OpenAI key stops it there with one line naming the
cause and the fix, instead of failing every job it would run. Nothing connects at import, and
building connects to nothing either; tests install their own services with `install()`.

The SDK adapters (`providers.ai_openai`, `providers.push_fcm`) are imported here only, and only
when a setting asks for them: the job types and `broseph.enqueue` see the ports
(`providers.ai`, `providers.push`), so a producer importing them loads neither SDK.
"""

from __future__ import annotations

import datetime
import json
import urllib.parse
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import procrastinate
from psycopg_pool import AsyncConnectionPool

from broseph.problems import FIX_CONFIG, Problem
from broseph.providers.ai import PromptGenerator
from broseph.providers.prompt_bank import OfflinePromptBank
from broseph.providers.push import DeviceResult, PushItem, PushMessage, PushSender, PushTarget
from broseph.providers.push_outbox import OutboxPushSender
from broseph.settings import Settings


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
        # The port has no aclose (the offline bank and tests' writers hold nothing); the OpenAI
        # writer has one.
        close = getattr(self.ai, "aclose", None)
        if close is not None:
            await close()
        await self.push.aclose()


class Builder(Protocol):
    """
    Builds an app's services when its worker starts: `build`, unless `provide` named another.
    """

    def __call__(
        self, settings: Settings, pool: AsyncConnectionPool[Any], *, uses: Iterable[str]
    ) -> Services: ...


_by_app: weakref.WeakKeyDictionary[procrastinate.App, Services] = weakref.WeakKeyDictionary()
_builders: weakref.WeakKeyDictionary[procrastinate.App, Builder] = weakref.WeakKeyDictionary()


def install(app: procrastinate.App, services: Services) -> None:
    """
    Use these services for every job this app runs in this process.
    """
    _by_app[app] = services


def provide(app: procrastinate.App, builder: Builder) -> None:
    """
    Build this app's services with `builder` (instead of `build`) when its worker starts: for a
    program that runs broseph's app with adapters of its own — a push sender wrapping FCM's, say.
    Unlike `install`, this needs no open pool, so it can be said where the app is defined, even
    for `procrastinate --app … worker`. A builder usually calls `build` and replaces a field.
    """
    _builders[app] = builder


def for_app(app: procrastinate.App) -> Services:
    """
    The app's services: those its worker built when it started (`start`), or installed ones.
    """
    services = _by_app.get(app)
    if services is None:
        # Only a job run outside `run_worker_async` gets here; build as a start would.
        services = _builders.get(app, build)(settings_of(app), pool_of(app), uses=("ai", "push"))
        _by_app[app] = services
    return services


def start(app: procrastinate.App, *, uses: Iterable[str] = ("ai", "push")) -> Services | None:
    """
    Build the app's services from its own settings, unless some are installed already; return
    what was built (for `stop`). Only the outside services in `uses` (those the worker's job
    types use) are checked and built. Raises a `Problem` when their configuration is unusable.
    """
    if app in _by_app:
        return None
    services = _builders.get(app, build)(settings_of(app), pool_of(app), uses=uses)
    _by_app[app] = services
    return services


async def stop(app: procrastinate.App, services: Services) -> None:
    """
    Close what `start` built and forget it.
    """
    if _by_app.get(app) is services:
        del _by_app[app]
    await services.aclose()


def settings_of(app: procrastinate.App) -> Settings:
    settings = getattr(app, "settings", None)
    if not isinstance(settings, Settings):
        raise TypeError("broseph needs its own App (broseph.worker.create_app), which has settings")
    return settings


def pool_of(app: procrastinate.App) -> AsyncConnectionPool[Any]:
    """
    The pool of the app's psycopg connector: handlers share the worker's connections.
    """
    connector = app.connector
    if not isinstance(connector, procrastinate.PsycopgConnector):
        raise TypeError("broseph needs procrastinate's PsycopgConnector")
    return connector.pool


def build(
    settings: Settings, pool: AsyncConnectionPool[Any], *, uses: Iterable[str] = ("ai", "push")
) -> Services:
    """
    Real services from settings; a `Problem` when a setting makes one unusable. Services not in
    `uses` are neither checked nor built: using them raises.
    """
    wanted = set(uses)
    return Services(
        settings=settings,
        pool=pool,
        ai=prompt_generator(settings) if "ai" in wanted else None,
        push=push_sender(settings, pool) if "push" in wanted else NotServed(),
    )


def _not_served() -> RuntimeError:
    return RuntimeError("this worker serves no push job type; its push sender was not built")


class NotServed:
    """
    The push sender of a worker whose queues hold no job type that pushes.
    """

    async def send(self, message: PushMessage, targets: Sequence[PushTarget]) -> list[DeviceResult]:
        raise _not_served()

    async def send_each(self, items: Sequence[PushItem]) -> list[DeviceResult]:
        raise _not_served()

    async def aclose(self) -> None:
        return None


def prompt_generator(settings: Settings) -> PromptGenerator | None:
    """
    The OpenAI prompt writer when OPENAI_API_KEY is set; None means the offline bank only.
    """
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
    if not key:
        return None
    if not (key.isascii() and key.isprintable()) or any(char.isspace() for char in key):
        # httpx would refuse the header on every request, and every prompt would fall back.
        raise Problem(
            "OPENAI_API_KEY contains spaces, line breaks or non-ASCII characters",
            "set it to the key alone, as the OpenAI dashboard shows it",
            exit_code=FIX_CONFIG,
        )
    if settings.openai_base_url:
        _require_http_url(
            "OPENAI_BASE_URL", settings.openai_base_url, "e.g. https://api.openai.com/v1"
        )
    from broseph.providers.ai_openai import OpenAIPromptGenerator  # the SDK, only when keyed

    # Building the client opens no connection; the first request does.
    return OpenAIPromptGenerator(
        api_key=key,
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
    path = settings.firebase_credentials_file
    if not path:
        return OutboxPushSender(pool)
    account = _service_account(path)
    project_id = settings.firebase_project_id or account.get("project_id")
    if not isinstance(project_id, str) or not project_id:
        raise Problem(
            f"FIREBASE_CREDENTIALS_FILE {path} names no project_id",
            "set FIREBASE_PROJECT_ID",
            exit_code=FIX_CONFIG,
        )
    if settings.fcm_base_url:
        _require_http_url("FCM_BASE_URL", settings.fcm_base_url, "or leave it empty for FCM")
    from broseph.providers.push_fcm import FcmPushSender  # the SDK, only when configured

    failure: Problem | None = None
    try:
        # One firebase_admin app per process (the sender owns it); no connection until the
        # first send. The credentials (the private key) are parsed and checked here.
        return FcmPushSender(
            credentials_file=path,
            project_id=project_id,
            dry_run=settings.push_dry_run,
            fcm_url=settings.fcm_base_url,
        )
    except ValueError as exc:
        failure = Problem(
            f"FIREBASE_CREDENTIALS_FILE {path} is not a usable service-account key ({exc})",
            _GET_A_KEY,
            exit_code=FIX_CONFIG,
        )
    raise failure


_GET_A_KEY = (
    "download a service-account key (Firebase console → Project settings → Service accounts),"
    " or unset FIREBASE_CREDENTIALS_FILE to record pushes in broseph.push_outbox"
)


def _service_account(path: str) -> dict[str, Any]:
    """
    The service-account JSON at `path`, or a Problem saying what is wrong with the file.
    """
    cause: str | None = None
    try:
        with open(path, encoding="utf-8") as handle:
            account = json.load(handle)
    except FileNotFoundError:
        cause = "does not exist"
    except OSError as exc:
        cause = f"cannot be read ({exc.strerror or type(exc).__name__})"
    except UnicodeDecodeError:
        cause = "is not text (a service-account key is a JSON file)"
    except json.JSONDecodeError as exc:
        cause = f"is not valid JSON ({exc.msg} at line {exc.lineno})"
    else:
        if isinstance(account, dict) and account.get("type") == "service_account":
            return account
        kind = account.get("type") if isinstance(account, dict) else None
        cause = f"is not a service-account key (its type is {kind!r}, not 'service_account')"
    raise Problem(f"FIREBASE_CREDENTIALS_FILE {path} {cause}", _GET_A_KEY, exit_code=FIX_CONFIG)


def _require_http_url(name: str, value: str, example: str) -> None:
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Problem(
            f"{name} is not an http(s) URL", f"set a full URL ({example})", exit_code=FIX_CONFIG
        )
