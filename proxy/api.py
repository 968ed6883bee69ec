"""The proxy's own endpoints: ``/healthz``, ``/api/live`` (SSE) and ``/api/requests``."""

from __future__ import annotations

import asyncio
import functools
import json

from aiohttp import web

from tokentail import access

from . import app as keys
from .live import encode_sse, finite

HEARTBEAT_SECONDS = 15.0
# A subscriber whose socket takes no bytes for this long is dropped (the hub has
# already stopped queueing for it once its queue filled up).
STALLED_WRITE_SECONDS = 30.0
_LIMIT_MAX = 1000
# Browsers reject NaN/Infinity in JSON; captured values are never allowed to produce them.
_dumps = functools.partial(json.dumps, ensure_ascii=False, default=str, allow_nan=False)


def _json(data, status: int = 200) -> web.Response:
    try:
        return web.json_response(data, status=status, dumps=_dumps)
    except ValueError:  # a NaN slipped into a captured value: send it as null rather than fail
        return web.json_response(finite(data), status=status, dumps=_dumps)


async def healthz(request: web.Request) -> web.Response:
    app = request.app
    return web.json_response({
        "status": "ok",
        "variant": app[keys.CONFIG].variant,
        "boot_id": app[keys.BOOT_ID],
        "upstream_host": app[keys.CONFIG].upstream.host,
    })


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error"}}, status=400)


async def list_requests(request: web.Request) -> web.Response:
    q = request.query
    try:
        limit = int(q.get("limit", "100"))
    except ValueError:
        return _bad_request(f"limit must be an integer from 1 to {_LIMIT_MAX}")
    if not 1 <= limit <= _LIMIT_MAX:
        return _bad_request(f"limit must be an integer from 1 to {_LIMIT_MAX}")
    status = q.get("status") or None
    allowed = ("in_flight", "ok", "error", "cancelled")
    if status is not None and status not in allowed:
        return _bad_request(f"status must be one of {', '.join(allowed)}")
    rows = request.app[keys.HUB].list_requests(model=q.get("model") or None, status=status, q=q.get("q") or None,
                                               limit=limit)
    return _json({"requests": rows})


async def get_request(request: web.Request) -> web.Response:
    detail = request.app[keys.HUB].get_request(request.match_info["id"])
    if detail is None:
        return _json({"error": {"message": "no such request in memory (it may have left the ring; "
                                          "the collector keeps history)", "type": "not_found"}}, status=404)
    return _json(detail)


async def live(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events of request.start / request.delta / request.end.

    ``Last-Event-ID`` (header, or ``?last_event_id=`` for the first connection)
    replays what was missed from the ring. A subscriber too slow to keep up is
    closed by the hub; its EventSource reconnects and replays from where it was.
    """
    hub = request.app[keys.HUB]
    last_id = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    resp = web.StreamResponse(headers={
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
        **access.cors_headers_for(request.app[keys.POLICY], request),
    })
    sub = hub.subscribe(last_id)
    try:
        await resp.prepare(request)
        await resp.write(b"retry: 1000\n\n")
        while True:
            try:
                item = await sub.get(timeout=HEARTBEAT_SECONDS)
            except asyncio.TimeoutError:
                item = False
            if item is None:  # closed: lagged, or the server is shutting down
                break
            payload = b": heartbeat\n\n" if item is False else encode_sse(*item)
            await asyncio.wait_for(resp.write(payload), STALLED_WRITE_SECONDS)
    except (ConnectionResetError, asyncio.TimeoutError):
        pass  # the subscriber went away or stopped reading (a cancelled handler unsubscribes in finally too)
    finally:
        hub.unsubscribe(sub)
    return resp
