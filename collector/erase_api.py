"""``POST /api/erase``: erase captured content, keep the numbers (an admin action).

The body is a selector (``tokentail.erasure.Selector``): ``{"session": ID}``, ``{"request":
ID}``, ``{"user": U}``, ``{"key": FINGERPRINT}``, ``{"before": TIME}`` or any combination (all
must match). The answer: ``{"erased": N, "selector": {...}, "content_erased_at": T}``. A POST
under ``/api/``: the app's access middleware holds it to the rule for state changes (allowed
Host and Origin, JSON body, admin token once one is set, else a loopback peer). The log line
names the selector and the count, never the content.
"""

from __future__ import annotations

import json
import logging

import duckdb
from aiohttp import web
from redis.exceptions import RedisError

from ..erasure import Selector, SelectorError
from ._http import COLLECTOR, STORE, error
from .live_redis import LIVE

log = logging.getLogger("tokentail.collector.erase")

MAX_BODY = 4096


async def erase(request: web.Request) -> web.Response:
    size = request.content_length
    raw = b"" if size is not None and size > MAX_BODY else await request.read()  # the app caps an unsized one
    if (size is not None and size > MAX_BODY) or len(raw) > MAX_BODY:
        return error(413, f"the selector must be at most {MAX_BODY} bytes", "too_large")
    now = request.app[COLLECTOR].clock()
    try:
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise SelectorError("body", "the body must be a JSON object") from None
        sel = Selector.from_json(body, now)
    except SelectorError as exc:
        return error(400, str(exc), "invalid_request", field=exc.field)
    store = request.app[STORE]
    try:
        n = await store.write(store.erase, sel, now)
    except (duckdb.Error, OSError) as exc:
        log.error("erase %s failed: %s", sel.describe(), str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return error(503, "database unavailable; the erase did not complete, retry it", "unavailable")
    log.warning("erased the captured content of %d spans (%s) at the request of %s", n, sel.describe(), request.remote)
    answer = {"erased": n, "selector": sel.as_json(), "content_erased_at": now}
    reader = request.app.get(LIVE)
    if reader is not None:  # --live-redis: the merged live stream holds the same text
        try:
            answer["live_redis_erased"] = deleted = await reader.erase(sel)
        except (RedisError, OSError) as exc:
            log.error("erase %s: the live stream in Redis was not erased: %s", sel.describe(), type(exc).__name__)
            return error(503, "the spans were erased but the live stream in Redis was not; retry", "unavailable")
        log.warning("erased %d live events from the Redis stream (%s)", deleted, sel.describe())
    return web.json_response(answer)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/erase", erase)
