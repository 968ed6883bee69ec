"""The proxy's endpoints about its upstreams: ``GET /api/upstreams`` (health and rate-limit
headroom per route), ``GET /api/routes/match?model=`` (where a model would go, and why:
nothing is sent) and ``GET /api/requests/{id}/raw`` (the raw stream view, redacted).

Reads of captured content: the access policy covers every ``/api/*`` route.
"""

from __future__ import annotations

from aiohttp import web

from . import state as keys
from .api import _json
from .raw_capture import RawCapture
from .raw_store import view_async
from .upstreams_state import RAW, UPSTREAMS


async def list_upstreams(request: web.Request) -> web.Response:
    """``GET /api/upstreams``: ``{"upstreams": [{route, upstream_host, up, last_error,
    last_error_at, last_ok_at, ratelimit}]}``; hosts only (no credentials, no query)."""
    app = request.app
    health = app[UPSTREAMS]
    for route in app[keys.ROUTES].table.routes:  # routes added by a reload show before their traffic
        health.see(route.name, route.upstream.host)
    return _json({"upstreams": health.snapshot(), "default_route": health.default_host})


async def match_route(request: web.Request) -> web.Response:
    """``GET /api/routes/match?model=NAME``: the route, upstream and upstream model a request
    for NAME would take, and why (exact, prefix, default)."""
    if "model" not in request.query:
        return _json({"error": {"message": "give ?model=NAME", "type": "invalid_request_error"}}, status=400)
    app = request.app
    answer = app[keys.ROUTES].table.explain(request.query["model"] or None, app[keys.CONFIG].upstream)
    return _json({"model": request.query["model"], **answer.describe()})


async def get_raw(request: web.Request) -> web.Response:
    """``GET /api/requests/{id}/raw``: ``{"events": [{seq, t_ms, raw, injected}], "truncated",
    "request_body"}``; an in-flight request's events so far, redacted as they are served."""
    rid = request.match_info["id"]
    app = request.app
    entry = app[keys.INFLIGHT].get(rid)
    if entry is not None and isinstance(entry.rec.raw, RawCapture):
        return _json({"id": rid, "in_flight": True, **await view_async(entry.rec.raw, app[keys.REDACTOR])})
    view = app[RAW].get(rid)
    if view is None:
        queued = app[RAW].pending(rid)  # ended a moment ago: its redaction is under way
        view = await view_async(queued, app[keys.REDACTOR]) if queued is not None else None
    if view is None:
        return _json(
            {"error": {"message": "no raw capture of this request in memory", "type": "not_found"}}, status=404
        )
    return _json({"id": rid, "in_flight": False, **view})
