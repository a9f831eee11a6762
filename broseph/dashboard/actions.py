"""
The dashboard's actions (POST): retry, cancel, bulk retry / cancel, replay a quarantined job.

Each one is refused on a read-only dashboard and without the page's CSRF token, runs the same
`broseph.ops` / `broseph.ingress` function as the CLI, and is logged with who asked. A done
action redirects to the page that shows its result (303, so a reload never repeats it); one
that is not possible shows that page with the reason (409).
"""

from __future__ import annotations

import datetime
from typing import Any

import structlog
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from broseph.dashboard import pages, security
from broseph.ingress import mapping, quarantine, sink
from broseph.ops import bulk as bulk_ops
from broseph.ops import inspect

log = structlog.get_logger("broseph.dashboard")


async def checked_form(request: Request) -> FormData:
    """
    The submitted form, once the request may change anything at all.
    """
    dashboard = pages.dashboard_of(request)
    if dashboard.read_only:
        raise HTTPException(403, "this dashboard is read-only")
    form = await request.form()
    problem = dashboard.csrf.check(request, form.get(security.Csrf.FIELD))
    if problem:
        raise HTTPException(403, problem)
    return form


def _audit(request: Request, action: str, **fields: Any) -> None:
    user = security.basic_user(request.headers.get("authorization")).decode(errors="replace")
    log.info("dashboard_action", action=action, user=user or None, **fields)


def _to(request: Request, name: str, query: str, **params: Any) -> Response:
    path = str(request.url_for(name, **params).path)
    return RedirectResponse(f"{path}?{query}", status_code=303)


async def retry(request: Request) -> Response:
    await checked_form(request)
    ident = str(request.path_params["ident"])
    async with pages.dashboard_of(request).database.connection() as conn:
        try:
            await inspect.retry(conn, ident)
        except inspect.JobNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except inspect.NotPossible as exc:
            return await pages.job_page(request, error=str(exc), status=409)
    _audit(request, "retry", job=ident)
    return _to(request, "job", "done=retried", ident=ident)


async def cancel(request: Request) -> Response:
    await checked_form(request)
    ident = str(request.path_params["ident"])
    async with pages.dashboard_of(request).database.connection() as conn:
        try:
            outcome, _ = await inspect.cancel(conn, ident)
        except inspect.JobNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except inspect.NotPossible as exc:
            return await pages.job_page(request, error=str(exc), status=409)
    _audit(request, "cancel", job=ident, outcome=outcome)
    return _to(request, "job", f"done={outcome}", ident=ident)


async def bulk(request: Request) -> Response:
    form = await checked_form(request)
    dashboard = pages.dashboard_of(request)
    action = form.get("action")
    if action not in bulk_ops.ACTIONS:
        raise HTTPException(404, "no such bulk action (retry or cancel)")
    query = pages.filter_query(form)
    context: dict[str, Any] = {"page": "jobs", "action": action, "query": query}
    try:
        flt = pages.parse(query)
        as_of = datetime.datetime.fromisoformat(str(form.get("as_of")))
        if as_of.tzinfo is None:
            raise ValueError("as_of needs a time zone")
    except ValueError as exc:
        return dashboard.render(request, "bulk.html", 400, error=str(exc)[:300], **context)
    async with dashboard.database.connection() as conn:
        outcome = await bulk_ops.apply(conn, action, flt, as_of=as_of)  # type: ignore[arg-type]
    _audit(request, f"bulk_{action}", done=outcome.done, skipped=outcome.skipped, **query)
    return dashboard.render(request, "bulk.html", outcome=outcome, **context)


async def replay(request: Request) -> Response:
    await checked_form(request)
    dashboard = pages.dashboard_of(request)
    qid = int(request.path_params["qid"])
    settings = dashboard.settings
    try:
        routes = mapping.routes_from(settings)
    except mapping.InvalidMapping as exc:
        return await pages.quarantine_page(request, error=str(exc), status=409)
    async with dashboard.database.connection() as conn:
        try:
            replayed = await quarantine.replay(
                conn, qid, routes, max_payload_bytes=settings.ingress_max_payload_bytes
            )
        except quarantine.NotQuarantined as exc:
            raise HTTPException(404, str(exc)) from None
        except (mapping.Rejected, sink.Refused) as exc:
            return await pages.quarantine_page(
                request, error=f"#{qid} is still rejected: {exc.reason}", status=409
            )
    _audit(request, "replay", quarantined=qid, record=str(replayed.record_id))
    return _to(request, "quarantine", f"replayed={qid}&record={replayed.record_id}")
