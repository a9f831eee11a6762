"""
The dashboard's pages (GET): overview, jobs, one job, the bulk confirmation, workers, the ingress
quarantine, and the event stream that keeps them live. Every read goes through `broseph.ops`.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from broseph import sql
from broseph.ops import bulk, inspect, overview

if TYPE_CHECKING:
    from broseph.dashboard.app import Dashboard

PAGE_SIZE = 50
# The jobs page counts matches up to this many (a count of millions would cost a scan).
COUNT_CAP = 10_000
FILTER_FIELDS = ("status", "type", "since", "until", "group", "user", "key")


def dashboard_of(request: Request) -> Dashboard:
    dashboard: Dashboard = request.app.state.dashboard
    return dashboard


def filter_query(values: Any) -> dict[str, str]:
    """
    The filter fields present in a query string or form, as typed (blank ones dropped).
    """
    return {
        name: str(values.get(name)).strip()
        for name in FILTER_FIELDS
        if values.get(name) and str(values.get(name)).strip()
    }


def parse(query: dict[str, str]) -> inspect.Filter:
    return inspect.parse_filter(
        status=query.get("status"),
        job_type=query.get("type"),
        since=query.get("since"),
        until=query.get("until"),
        group=query.get("group"),
        user=query.get("user"),
        key=query.get("key"),
    )


async def overview_page(request: Request) -> Response:
    dashboard = dashboard_of(request)
    async with dashboard.database.connection() as conn:
        data = await overview.load(conn, dashboard.schedules)
    lost_after = dashboard.settings.rescue_after_seconds
    live = sum(1 for w in data.workers if w["heartbeat_age"] < lost_after)
    return dashboard.render(
        request,
        "overview.html",
        page="overview",
        overview=data,
        queues=_queues(data),
        workers={"live": live, "lost": len(data.workers) - live},
        statuses=inspect.RECORD_STATUSES,
    )


def _queues(data: overview.Overview) -> list[dict[str, Any]]:
    by_queue: dict[str, dict[str, Any]] = {}
    for row in data.queues:
        entry = by_queue.setdefault(
            row["queue"], {"queue": row["queue"], "todo": 0, "doing": 0, "scheduled": 0}
        )
        entry[row["status"]] = int(row["jobs"])
        if row["status"] == "todo":
            entry["scheduled"] = int(row["scheduled"])
    for row in data.pending:
        entry = by_queue.setdefault(
            row["queue"], {"queue": row["queue"], "todo": 0, "doing": 0, "scheduled": 0}
        )
        entry["runnable"] = int(row["jobs"])
        entry["oldest"] = row["seconds"]
    for entry in by_queue.values():
        entry.setdefault("runnable", 0)
        entry.setdefault("oldest", None)
    return sorted(by_queue.values(), key=lambda e: str(e["queue"]))


async def jobs_page(request: Request) -> Response:
    dashboard = dashboard_of(request)
    query = filter_query(request.query_params)
    after_token = request.query_params.get("after")
    context: dict[str, Any] = {
        "page": "jobs",
        "form": {name: query.get(name, "") for name in FILTER_FIELDS},
        "query": query,
        "statuses": inspect.RECORD_STATUSES,
        "after": after_token,
        "filtered": bool(query),
        "count_cap": COUNT_CAP,
        "count": None,
        "results": None,
        "error": None,
    }
    async with dashboard.database.connection() as conn:
        context["job_types"] = await _job_types(conn)
        try:
            flt = parse(query)
            after = inspect.Cursor.parse(after_token) if after_token else None
        except ValueError as exc:
            context["error"] = str(exc)
            return dashboard.render(request, "jobs.html", 400, **context)
        context["results"] = await inspect.find(conn, flt, after=after, limit=PAGE_SIZE)
        if query:
            context["count"] = await inspect.count(conn, flt, cap=COUNT_CAP)
    return dashboard.render(request, "jobs.html", **context)


async def _job_types(conn: inspect.Conn) -> list[str]:
    cur = await conn.execute(sql.query("job_type_names"))
    return [row["name"] for row in await cur.fetchall()]


async def job_page(request: Request, **notes: Any) -> Response:
    dashboard = dashboard_of(request)
    ident = str(request.path_params["ident"])
    done = request.query_params.get("done")
    async with dashboard.database.connection() as conn:
        try:
            view = await inspect.show(conn, ident)
        except inspect.JobNotFound as exc:
            raise HTTPException(404, str(exc)) from None
    notes["notice"] = notes.get("notice") or DONE.get(done or "")
    return _after_action(request, "job.html", notes, page="jobs", view=view, ident=ident)


DONE = {
    "retried": "Retried: the job is back in the queue.",
    "cancelled": "Cancelled.",
    "abort_requested": "Abort requested: its worker stops it at its next step.",
}


async def bulk_page(request: Request) -> Response:
    dashboard = dashboard_of(request)
    if dashboard.read_only:
        raise HTTPException(403, "this dashboard is read-only")
    action = request.query_params.get("action")
    if action not in bulk.ACTIONS:
        raise HTTPException(404, "no such bulk action (retry or cancel)")
    query = filter_query(request.query_params)
    try:
        flt = parse(query)
    except ValueError as exc:
        return dashboard.render(
            request, "bulk.html", 400, page="jobs", action=action, query=query, error=str(exc)
        )
    async with dashboard.database.connection() as conn:
        preview = await bulk.preview(conn, action, flt)  # type: ignore[arg-type]
    return dashboard.render(
        request, "bulk.html", page="jobs", action=action, query=query, preview=preview
    )


async def workers_page(request: Request) -> Response:
    dashboard = dashboard_of(request)
    async with dashboard.database.connection() as conn:
        workers = await _rows(conn, "workers")
        running = await _rows(conn, "running_jobs")
    return dashboard.render(
        request,
        "workers.html",
        page="workers",
        workers=workers,
        running=running,
        lost_after=dashboard.settings.rescue_after_seconds,
    )


async def quarantine_page(request: Request, **notes: Any) -> Response:
    dashboard = dashboard_of(request)
    show_all = request.query_params.get("all") == "1"
    notes = notes or _replay_notice(request)
    async with dashboard.database.connection() as conn:
        entries = await _rows(
            conn, "quarantine_entries", include_replayed=show_all or "replayed" in notes, limit=200
        )
    return _after_action(
        request,
        "quarantine.html",
        notes,
        page="quarantine",
        entries=entries,
        show_all=show_all,
        notice_record=notes.get("record"),
    )


def _after_action(
    request: Request, template: str, notes: dict[str, Any], **context: Any
) -> Response:
    """
    A page that may show what an action on it just did: the action's HTTP status, its notice or
    its error (none of them when the page is simply visited).
    """
    status = notes.get("status", 200)
    notice, error = notes.get("notice"), notes.get("error")
    return dashboard_of(request).render(
        request, template, status, notice=notice, error=error, **context
    )


def _replay_notice(request: Request) -> dict[str, Any]:
    """
    The notice of a replay just done (from the redirect's query string, validated).
    """
    try:
        qid = int(request.query_params.get("replayed", ""))
        record = uuid.UUID(request.query_params.get("record", ""))
    except ValueError:
        return {}
    return {"notice": f"Replayed #{qid} as job record", "record": record, "replayed": qid}


async def events(request: Request) -> Response:
    dashboard = dashboard_of(request)
    return StreamingResponse(
        dashboard.watcher.events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _rows(conn: inspect.Conn, name: str, **params: Any) -> list[dict[str, Any]]:
    cur = await conn.execute(sql.query(name), params or None)
    return list(await cur.fetchall())
