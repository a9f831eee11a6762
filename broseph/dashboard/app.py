"""
The dashboard as an ASGI application: `create_app()` builds it; `broseph dashboard` serves it
with uvicorn, and any ASGI server or application can mount it (README, "Dashboard").

Pages render on the server (Starlette + Jinja2); htmx (vendored, static/) swaps the regions that
refresh live and submits the actions. Reads and actions go through `broseph.ops` — the same
functions `broseph jobs …` calls.
"""

from __future__ import annotations

import datetime
import urllib.parse
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import psycopg
import structlog
from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from broseph import db
from broseph.dashboard import actions, pages, security, views
from broseph.dashboard.database import Database
from broseph.dashboard.live import Watcher
from broseph.ops import overview
from broseph.settings import Settings, get_settings

log = structlog.get_logger("broseph.dashboard")
# Forms are a few fields; nothing larger is ever needed.
MAX_BODY = 64 * 1024


@dataclass
class Dashboard:
    """
    What every request handler reaches through `request.app.state.dashboard`.
    """

    settings: Settings
    read_only: bool
    database: Database
    watcher: Watcher
    csrf: security.Csrf
    templates: Jinja2Templates
    schedules: list[overview.Schedule] = field(default_factory=list)

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        return self.templates.TemplateResponse(request, name, context, status_code=status)


def create_app(
    settings: Settings | None = None, *, read_only: bool = False, trust_host_auth: bool = False
) -> Starlette:
    """
    The dashboard. With DASHBOARD_USER and DASHBOARD_PASSWORD it asks for them (Basic auth).
    Without them it answers requests addressed to a loopback name only — unless
    `trust_host_auth`, for an application that mounts it behind its own authentication.
    `read_only` hides every action and refuses them.
    """
    settings = settings or get_settings()
    password = settings.dashboard_password.get_secret_value() if settings.dashboard_password else ""
    database = Database(settings)
    dashboard = Dashboard(
        settings=settings,
        read_only=read_only,
        database=database,
        watcher=Watcher(database),
        csrf=security.Csrf(password or None),
        templates=_templates(),
        schedules=_schedules(settings),
    )
    dashboard.templates.env.globals["bars"] = _bars
    middleware = [Middleware(security.SecureHeaders)]
    if settings.dashboard_user and password:
        middleware.append(
            Middleware(security.BasicAuth, user=settings.dashboard_user, password=password)
        )
    elif not trust_host_auth:
        middleware.append(Middleware(security.LoopbackOnly))
    app = Starlette(
        routes=_routes(),
        middleware=middleware,
        exception_handlers={
            psycopg.OperationalError: _database_down,
            db.DatabaseNotConfigured: _database_down,
            HTTPException: _http_error,
        },
        max_body_size=MAX_BODY,
    )
    app.state.dashboard = dashboard
    return app


def _routes() -> list[Route | Mount]:
    static = StaticFiles(packages=[("broseph.dashboard", "static")])
    return [
        Route("/", pages.overview_page, name="overview"),
        Route("/jobs", pages.jobs_page, name="jobs"),
        Route("/jobs/{ident}", pages.job_page, name="job"),
        Route("/jobs/{ident}/retry", actions.retry, methods=["POST"], name="retry"),
        Route("/jobs/{ident}/cancel", actions.cancel, methods=["POST"], name="cancel"),
        Route("/bulk", pages.bulk_page, name="bulk"),
        Route("/bulk", actions.bulk, methods=["POST"]),
        Route("/workers", pages.workers_page, name="workers"),
        Route("/quarantine", pages.quarantine_page, name="quarantine"),
        Route("/quarantine/{qid:int}/replay", actions.replay, methods=["POST"], name="replay"),
        Route("/events", pages.events, name="events"),
        Mount("/static", app=static, name="static"),
    ]


def _templates() -> Jinja2Templates:
    folder = resources.files("broseph.dashboard") / "templates"
    templates = Jinja2Templates(directory=str(folder), context_processors=[_context])
    env = templates.env
    env.filters.update({name: getattr(views, name) for name in views.FILTERS})
    return templates


def _context(request: Request) -> dict[str, Any]:
    dashboard: Dashboard = request.app.state.dashboard

    def path_for(name: str, /, **params: Any) -> str:
        return str(request.url_for(name, **params).path)

    def link(name: str, /, **query: Any) -> str:
        kept = {k: str(v) for k, v in query.items() if v not in (None, "")}
        path = path_for(name)
        return f"{path}?{urllib.parse.urlencode(kept)}" if kept else path

    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return {
        "read_only": dashboard.read_only,
        "csrf_token": dashboard.csrf.token(request),
        "poll_seconds": dashboard.settings.dashboard_poll_seconds,
        "path_for": path_for,
        "link": link,
        "here": here,
        "now": datetime.datetime.now(datetime.UTC),
    }


def _schedules(settings: Settings) -> list[overview.Schedule]:
    """
    The periodic tasks a worker with these settings runs (its app is built, never connected).
    """
    from broseph import engine, worker

    return engine.schedules(worker.create_app(settings))


def _bars(values: list[int], hours: list[datetime.datetime]) -> Markup:
    """
    An hourly bar chart as inline SVG (no inline styles: the CSP forbids them).
    """
    if not values:
        return Markup("")
    top = max(values) or 1
    step, height = 5, 28
    width = step * len(values)
    rects = []
    for i, (value, hour) in enumerate(zip(values, hours, strict=False)):
        h = round(height * value / top) if value else 0
        css = ' class="peak"' if value == top and value else ""
        title = escape(f"{hour:%H}:00 UTC: {value:,}")
        rects.append(
            f'<rect x="{i * step}" y="{height - h}" width="4" height="{h}"{css}>'
            f"<title>{title}</title></rect>"
        )
    return Markup(
        f'<svg class="bars" width="{width}" height="{height}" role="img" '
        f'aria-label="jobs per hour">{"".join(rects)}</svg>'
    )


async def _database_down(request: Request, exc: Exception) -> Response:
    # The exception's text may name hosts and users: it goes to the log (which scrubs
    # passwords), never onto the page.
    log.error("dashboard_database_error", error=type(exc).__name__, detail=str(exc)[:300])
    dashboard: Dashboard = request.app.state.dashboard
    message = (
        str(exc)
        if isinstance(exc, db.DatabaseNotConfigured)
        else "The database is unreachable; the dashboard's log says why. Retry in a moment."
    )
    return dashboard.render(
        request, "error.html", 503, page="", title="Database unavailable", message=message
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    dashboard: Dashboard = request.app.state.dashboard
    return dashboard.render(
        request,
        "error.html",
        exc.status_code,
        page="",
        title={403: "Not allowed", 404: "Not found"}.get(exc.status_code, "Error"),
        message=exc.detail,
    )
