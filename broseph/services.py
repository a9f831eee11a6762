"""
The composition root: the one place that builds real outside-service clients from settings.

Handlers reach services through `JobRun.services`. A worker builds its `Services` lazily on its
first job (nothing connects at import); tests install their own with `install()`.
"""

from __future__ import annotations

import datetime
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import procrastinate
from psycopg_pool import AsyncConnectionPool

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
    return Services(settings=settings, pool=pool)
