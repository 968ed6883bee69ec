"""The proxy's own endpoints: ``/healthz``, ``/api/live`` (SSE), ``/api/requests`` (and cancel),
``/api/routes`` (and reload), ``POST /api/erase``."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Iterator
from typing import Any, Literal

from aiohttp import web

from tokentail import access
from tokentail.erasure import Selector, SelectorError, matches_start
from tokentail.settings import SettingsError

from . import capture
from . import record as R
from . import state as keys
from .live_sse import SLICE_CHARS, finite, item_slices
from .live_subscription import Subscription, TooManySubscribers
from .routes import reload_routes as reload_route_state
from .upstreams_state import RAW

log = logging.getLogger("tokentail.proxy.erase")

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
    return web.json_response(
        {
            "status": "ok",
            "variant": app[keys.CONFIG].variant,
            "boot_id": app[keys.BOOT_ID],
            "upstream_host": app[keys.CONFIG].upstream.host,
        }
    )


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
    rows = request.app[keys.HUB].list_requests(
        model=q.get("model") or None,
        status=status,
        q=q.get("q") or None,
        limit=limit,
        session=q.get("session") or None,
        user=q.get("user") or None,
        tag=q.get("tag") or None,
        key=q.get("key") or None,
    )
    return _json({"requests": rows})


async def get_request(request: web.Request) -> web.Response:
    detail = request.app[keys.HUB].get_request(request.match_info["id"])
    if detail is None:
        return _json(
            {
                "error": {
                    "message": "no such request in memory (it may have left the ring; the collector keeps history)",
                    "type": "not_found",
                }
            },
            status=404,
        )
    return _json(detail)


async def cancel_request(request: web.Request) -> web.Response:
    """``POST /api/requests/{id}/cancel``: stop an in-flight request (a state change).

    Its handler task is cancelled, which closes the upstream connection; the client gets
    an error event (streams) or a 503 with ``x-should-retry: false``; the record ends
    ``cancelled`` with ``error`` = ``cancelled_by_operator``. 404 for an unknown id, 409
    for a request that already finished.
    """
    rid = request.match_info["id"]
    app = request.app
    entry = app[keys.INFLIGHT].get(rid)
    if entry is None or entry.task.done() or entry.rec.status != R.IN_FLIGHT:
        detail = app[keys.HUB].get_request(rid)
        if entry is None and detail is None:
            return _json(
                {"error": {"message": "no such request in flight or in memory", "type": "not_found"}}, status=404
            )
        status = entry.rec.status if entry is not None else detail["status"]  # type: ignore[index]
        return _json(
            {
                "error": {"message": f"the request already finished ({status})", "type": "conflict"},
                "id": rid,
                "status": status,
            },
            status=409,
        )
    rec = entry.rec
    if rec.error == R.ERR_OPERATOR:  # asked twice before the handler ran: one cancel is enough
        return _json({"id": rid, "cancelled": True})
    rec.error = R.ERR_OPERATOR
    rec.error_message = "cancelled by an operator"
    entry.task.cancel(R.ERR_OPERATOR)
    return _json({"id": rid, "cancelled": True})


_MAX_SELECTOR = 4096


async def erase(request: web.Request) -> web.Response:
    """``POST /api/erase`` with a selector (``tokentail.erasure.Selector``: session, request,
    user, key, before; all must match): the captured content of matching requests leaves the
    live ring and its replay log, the raw views, and the records still in flight (which capture
    nothing more). Ids, usage, timings and cost stay; metrics are untouched. A state change
    (``tokentail.access``). Logged with the selector and counts, never the content."""
    size = request.content_length
    raw = b"" if size is not None and size > _MAX_SELECTOR else await request.read()  # the app caps an unsized one
    if (size is not None and size > _MAX_SELECTOR) or len(raw) > _MAX_SELECTOR:
        return _json({"error": {"message": "the selector is too large", "type": "invalid_request_error"}}, status=413)
    try:
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise SelectorError("body", "the body must be a JSON object") from None
        sel = Selector.from_json(body)
    except SelectorError as exc:
        err = {"message": str(exc), "type": "invalid_request_error", "param": exc.field}
        return _json({"error": err}, status=400)
    app = request.app
    in_flight = capture.erase_in_flight(
        (e.rec for e in app[keys.INFLIGHT].values()),
        lambda r: sel.matches(
            request_id=r.id,
            session_id=r.session_id,
            user_id=r.user,
            key_fingerprint=r.key_fingerprint,
            start_time=r.started_at,
        ),
    )
    live = app[keys.HUB].erase(lambda st: matches_start(sel, st))
    raws = app[RAW].erase(sel.matches_row)
    log.warning(
        "erased captured content (%s): %d in the live ring, %d in flight, %d raw views; by %s",
        sel.describe(),
        len(live),
        len(in_flight),
        len(raws),
        request.remote,
    )
    counts = {"live": len(live), "in_flight": len(in_flight), "raw": len(raws)}
    return _json(
        {
            "erased": counts,
            "request_ids": sorted(set(live) | set(in_flight) | set(raws))[:1000],
            "selector": sel.as_json(),
        }
    )


async def list_routes(request: web.Request) -> web.Response:
    """``GET /api/routes``: the routes in effect (key variable names only, never values)."""
    state = request.app[keys.ROUTES]
    config = request.app[keys.CONFIG]
    return _json(
        {
            "routes": state.table.describe(),
            "default_upstream_host": config.upstream.host,
            "config_file": state.config_file,
            "loaded_at": state.loaded_at,
        }
    )


async def reload_routes(request: web.Request) -> web.Response:
    """``POST /api/routes/reload``: as SIGHUP. 422 with the reason when the new routes are
    invalid (the routes in effect stay)."""
    try:
        table = reload_route_state(request.app[keys.ROUTES])
    except SettingsError as exc:
        state = request.app[keys.ROUTES]
        return _json(
            {
                "error": {
                    "message": f"routes not reloaded: {exc}; the routes in effect stay",
                    "type": "invalid_config",
                },
                "routes": state.table.describe(),
            },
            status=422,
        )
    return _json({"reloaded": True, "routes": table.describe()})


def _ready_slices(sub: Subscription, item: tuple[str, str, dict[str, Any]]) -> Iterator[bytes]:
    """``item``'s slices, lazily (a big event is encoded slice by slice, between writes); a
    small one is joined with the small events already queued behind it, up to a slice: one
    write per burst of tokens instead of one per event, and never a wait for more."""
    it = item_slices(item)
    first = next(it)
    second = next(it, None)
    if second is not None:  # a big event: its slices as they come
        yield first
        yield second
        yield from it
        return
    joined, size = [first], len(first)
    while size < SLICE_CHARS:
        nxt = sub.get_nowait()
        if nxt is None:
            break
        it = item_slices(nxt)
        a, b = next(it), next(it, None)
        if b is not None:
            yield b"".join(joined)
            yield a
            yield b
            yield from it
            return
        joined.append(a)
        size += len(a)
    yield b"".join(joined) if len(joined) > 1 else first


def _fits(protocol: object, transport: asyncio.BaseTransport | None, size: int) -> bool:
    """Whether writing ``size`` more bytes cannot wait for the peer, so needs no stall timeout:
    writing is not paused (aiohttp waits only then; a transport paused above its high-water
    mark stays paused until it drains below the low one) and the bytes keep the buffer under
    the high-water mark, so this write does not pause it."""
    if transport is None or transport.is_closing() or getattr(protocol, "writing_paused", True):
        return False
    try:  # uvloop's transports are not asyncio.WriteTransport subclasses: duck-typed
        tr: Any = transport
        return bool(tr.get_write_buffer_size() + size < tr.get_write_buffer_limits()[1])
    except (AttributeError, NotImplementedError, TypeError):
        return False


async def live(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events of request.start / request.delta / request.end.

    ``Last-Event-ID`` (header, or ``?last_event_id=`` for the first connection)
    replays what was missed from the ring. A subscriber too slow to keep up is
    closed by the hub; its EventSource reconnects and replays from where it was.
    Beyond the hub's subscriber cap: 503 with an OpenAI-style error (counted by the hub).
    A large event (a snapshot of the ring holds every captured text) is encoded and
    written in slices, the loop yielded between them, so joining never stalls other streams.
    """
    hub = request.app[keys.HUB]
    last_id = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    cors = access.cors_headers_for(request.app[keys.POLICY], request)
    try:
        sub = hub.subscribe(last_id)
    except TooManySubscribers as exc:
        body = {"error": {"message": str(exc), "type": "server_busy", "code": "too_many_subscribers"}}
        return web.json_response(body, status=503, headers={"Retry-After": "5", **cors})
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            **cors,
        }
    )
    try:
        await resp.prepare(request)
        await resp.write(b"retry: 1000\n\n")
        unyielded = 0  # bytes written since the loop was last yielded
        while True:
            item: tuple[str, str, dict[str, Any]] | Literal[False] | None  # False: time for a heartbeat
            try:
                item = await sub.get(timeout=HEARTBEAT_SECONDS)
            except TimeoutError:
                await asyncio.wait_for(resp.write(b": heartbeat\n\n"), STALLED_WRITE_SECONDS)
                continue
            if item is None:  # closed: lagged, or the server is shutting down
                break
            for piece in _ready_slices(sub, item):
                if _fits(request.protocol, request.transport, len(piece)):
                    await resp.write(piece)  # cannot wait: the socket's buffer takes it (no timer to arm)
                else:
                    async with asyncio.timeout(STALLED_WRITE_SECONDS):  # no task per write, as wait_for makes
                        await resp.write(piece)
                unyielded += len(piece)
                if unyielded >= SLICE_CHARS:  # a backlog never waits in get(): yield here
                    unyielded = 0
                    await asyncio.sleep(0)
    except (TimeoutError, ConnectionResetError):
        pass  # the subscriber went away or stopped reading (a cancelled handler unsubscribes in finally too)
    finally:
        hub.unsubscribe(sub)
    return resp
