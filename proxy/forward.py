"""The forward handler: ``ANY /v1/{path}`` relayed to the upstream, chunk by chunk.

Thin by design: read the request, open the upstream call, then loop (read a chunk,
write it to the client, feed the tap). What the tap finds goes to the observers
(live hub, metrics, spans), which never block. A slow client slows reading from the
upstream (``resp.write`` waits for the socket to drain, the upstream's reader stops),
so memory per stream stays bounded. A client that goes away cancels this handler
(``handler_cancellation``), which closes the upstream connection at once; so does an
operator's ``POST /api/requests/{id}/cancel``, which cancels the handler task found in the
app's in-flight registry (the client then gets a clean end with an error, not a reset).

Before the upstream call the handler asks three pure helpers: ``routes`` (which upstream,
which model name, which key), ``attribution`` (key fingerprint, user, tags) and
``sessions`` (the conversation). At the end it prices the request (``tokentail.pricing``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from . import app as keys
from . import record as R
from .attribution import TAGS_HEADER, end_user, parse_tags
from .record import Delta, Observers, RequestRecord, merge_deltas
from .redact import is_secret_header, strip_media
from .routes import Route
from .tap import StreamTap

log = logging.getLogger("tokentail.proxy")

REQUEST_ID_HEADER = "x-tokentail-request-id"

# RFC 9110 hop-by-hop headers, plus those the transport recomputes.
_HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
    )
)
_RESPONSE_DROP = _HOP_BY_HOP - {"content-length"}

# Request fields copied as parameters (the rest of the body is prompt or ignored).
_PARAMS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "n",
    "seed",
    "stop",
    "frequency_penalty",
    "presence_penalty",
    "top_k",
    "reasoning_effort",
    "response_format",
    "tool_choice",
    "parallel_tool_calls",
    "user",
    "stream_options",
    "dimensions",
    "encoding_format",
)
_PROMPT_KEYS = ("messages", "prompt", "input", "system", "instructions", "tools")


def openai_error(status: int, message: str, type_: str, code: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return web.json_response(body, status=status)


def _upstream_headers(request: web.Request, rec: RequestRecord, auth: tuple[str, str] | None) -> CIMultiDict[str]:
    """The client's headers minus hop-by-hop ones; with a route's key (``auth``), minus every
    credential the client sent, plus the route's."""
    drop = set(_HOP_BY_HOP)
    conn = request.headers.get("Connection")
    if conn:  # headers named in Connection are hop-by-hop too
        drop.update(h.strip().lower() for h in conn.split(","))
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in request.headers.items():
        low = name.lower()
        if low not in drop and low != "accept-encoding" and not (auth is not None and is_secret_header(low)):
            out.add(name, value)
    out["Accept-Encoding"] = "identity"  # so the tap can read what streams back
    for name, value in rec.upstream_trace_headers.items():
        out[name] = value
    if auth is not None:
        out[auth[0]] = auth[1]
    return out


def _dump(obj: dict[str, Any]) -> bytes:
    """The (changed) request body; a lone surrogate the client sent escaped stays escaped."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(obj, separators=(",", ":")).encode()


def _without_key_param(query_string: str) -> str:
    """The query string without ``key=`` (a Google-style client key) when a route injects its own."""
    return "&".join(p for p in query_string.split("&") if p and p.split("=", 1)[0] != "key")


def _parse_request(rec: RequestRecord, body: bytes, redactor) -> dict[str, Any] | None:
    """Fill the record from a JSON body; a non-JSON body is forwarded as-is, flagged unparsed."""
    if not body:
        rec.parsed = False
        return None
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        rec.parsed = False
        return None
    if not isinstance(obj, dict):
        rec.parsed = False
        return None
    model = obj.get("model")
    rec.model = model if isinstance(model, str) else None
    rec.stream = obj.get("stream") is True
    rec.params = {k: obj[k] for k in _PARAMS if k in obj and k != "user"}
    prompt = {k: obj[k] for k in _PROMPT_KEYS if k in obj}
    rec.prompt = redactor.redact_json(strip_media(prompt)) if prompt else {}
    return obj


def _attribute(rec: RequestRecord, request: web.Request, obj: dict[str, Any] | None, app: web.Application) -> None:
    redact = app[keys.REDACTOR].redact_text
    rec.user = end_user(obj, redact)
    tags = request.headers.get(TAGS_HEADER)
    if tags:
        rec.tags = parse_tags(tags, redact)
    rec.key_fingerprint = app[keys.FINGERPRINTER].fingerprint(
        request.headers, request.query if request.query_string else None
    )


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """The request body, or None when it exceeds ``limit`` (stops reading at the limit)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def forward(request: web.Request) -> web.StreamResponse:
    app = request.app
    config = app[keys.CONFIG]
    observers = app[keys.OBSERVERS]
    rid = str(uuid.uuid4())
    path = request.match_info["path"]

    if request.headers.get("Upgrade", "").lower() == "websocket":
        return _with_id(
            openai_error(
                501,
                "WebSocket upgrades (e.g. /v1/realtime) are not supported by the "
                "tokentail proxy yet; connect to the upstream directly",
                "not_implemented",
                "websocket_unsupported",
            ),
            rid,
        )
    body = await _read_body(request, config.max_body)
    if body is None:
        return _with_id(
            openai_error(
                413,
                f"request body exceeds the proxy's limit of {config.max_body} bytes (--max-body)",
                "invalid_request_error",
                "request_too_large",
            ),
            rid,
        )

    rec = RequestRecord(id=rid, variant=config.variant, method=request.method, endpoint="/" + path)
    obj = _parse_request(rec, body, app[keys.REDACTOR])
    _attribute(rec, request, obj, app)
    for h in ("traceparent", "tracestate"):
        if h in request.headers:
            rec.trace_headers[h] = request.headers[h]

    route: Route | None = app[keys.ROUTES].table.match(rec.model)
    base = config.upstream
    rewrite = False
    if route is not None:
        base = route.upstream
        rec.route, rec.upstream_url = route.name, str(base)
        if route.model is not None and obj is not None and route.model != rec.model:
            obj["model"] = rec.upstream_model = route.model
            rewrite = True
    inflight = app[keys.INFLIGHT]
    inflight[rid] = keys.InFlight(asyncio.current_task(), rec)  # type: ignore[arg-type]
    injected = False
    resp: web.StreamResponse | None = None
    tap: StreamTap | None = None
    try:
        app[keys.SESSIONS].assign(rec, obj, request.headers)
        if obj is not None and rec.stream and config.inject_usage and rec.endpoint == "/chat/completions":
            opts = obj.get("stream_options")
            if opts is None or (isinstance(opts, dict) and not opts.get("include_usage")):
                obj["stream_options"] = {**(opts or {}), "include_usage": True}
                injected = True
        if (injected or rewrite) and obj is not None:  # both imply a parsed body
            body = _dump(obj)
        auth = route.auth() if route is not None else None
        url = base.with_path(base.path.rstrip("/") + "/" + path, encoded=False)
        if request.query_string:
            url = url.with_query(_without_key_param(request.query_string) if auth else request.query_string)
        observers.start(rec)
        async with app[keys.SESSION].request(
            request.method,
            url,
            data=body if body else None,
            headers=_upstream_headers(request, rec, auth),
            allow_redirects=False,
        ) as up:
            rec.http_status = up.status
            streaming = up.content_type == "text/event-stream"
            resp = web.StreamResponse(status=up.status, reason=up.reason, headers=_response_headers(up, streaming))
            resp.headers[REQUEST_ID_HEADER] = rid
            tap = StreamTap(
                rec,
                obj,
                streaming=streaming,
                strip_usage_chunk=injected and streaming,
                max_capture_bytes=config.capture_bytes,
                max_body_bytes=config.max_body,
            )
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                out, deltas = tap.feed(chunk)
                if out:
                    await resp.write(out)
                if deltas:
                    _on_deltas(rec, deltas, observers)
            tail = tap.finish()
            tap = None
            if tail:
                await resp.write(tail)
            await resp.write_eof()
            rec.status = R.OK if up.status < 400 and rec.error is None else R.ERROR  # the tap may have set one
            if up.status >= 400:
                rec.error = R.ERR_STATUS
    except asyncio.CancelledError:
        rec.status = R.CANCELLED  # the client went away (or an operator); leaving `async with` closed the upstream
        if rec.error == R.ERR_OPERATOR and _only_our_cancel(resp):
            return await _operator_cancelled(request, rec, resp)
        raise
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        if _client_gone(request):
            rec.status = R.CANCELLED
            raise asyncio.CancelledError from None
        return await _upstream_failed(request, rec, resp, R.ERR_DISCONNECT, "upstream closed the connection")
    except aiohttp.ClientConnectorError as exc:
        return await _upstream_failed(
            request,
            rec,
            resp,
            R.ERR_CONNECT,
            f"cannot connect to the upstream {base.host}:{base.port}"
            f" ({exc.os_error.strerror or type(exc.os_error).__name__})",
        )
    except aiohttp.ConnectionTimeoutError:
        return await _upstream_failed(
            request, rec, resp, R.ERR_TIMEOUT, f"cannot connect to the upstream within {config.connect_timeout:g}s"
        )
    except (TimeoutError, aiohttp.ServerTimeoutError):
        return await _upstream_failed(
            request,
            rec,
            resp,
            R.ERR_TIMEOUT,
            f"the upstream sent nothing for {config.idle_timeout:g}s (--idle-timeout)",
        )
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
        return await _upstream_failed(
            request,
            rec,
            resp,
            R.ERR_DISCONNECT,
            f"the upstream closed the connection mid-response ({type(exc).__name__})",
        )
    finally:
        if tap is not None:
            tap.finish()  # keep what arrived (partial completion, usage so far)
        inflight.pop(rid, None)
        _finish(rec, request.app, route)
    return resp


def _only_our_cancel(resp: web.StreamResponse | None) -> bool:
    """True when the operator's cancel is the only one pending and the client can still be
    told cleanly (nothing sent yet, or an SSE stream); it is then withdrawn from the task."""
    if resp is not None and resp.prepared and resp.content_type != "text/event-stream":
        return False  # half a JSON body: dropping the connection is the honest end
    task = asyncio.current_task()
    if task is None or task.cancelling() != 1:
        return False  # the client went away too (or the server is stopping): stay cancelled
    task.uncancel()
    return True


async def _operator_cancelled(
    request: web.Request, rec: RequestRecord, resp: web.StreamResponse | None
) -> web.StreamResponse:
    """End a request an operator cancelled: one SSE error event mid-stream, else a 503 that
    SDKs do not retry (``x-should-retry: false``)."""
    message = "the request was cancelled by an operator of the tokentail proxy"
    if resp is None or not resp.prepared:
        rec.http_status = 503
        out = _with_id(openai_error(503, message, "cancelled", R.ERR_OPERATOR), rec.id)
        out.headers["x-should-retry"] = "false"
        return out
    err = {"error": {"message": message, "type": "cancelled", "code": R.ERR_OPERATOR}}
    try:
        async with asyncio.timeout(5.0):  # a client that stopped reading must not hold us
            await resp.write(b"data: " + json.dumps(err).encode() + b"\n\n")
            await resp.write_eof()
    except TimeoutError:
        if request.transport is not None:
            request.transport.close()
    except (ConnectionResetError, aiohttp.ClientConnectionResetError, RuntimeError):
        pass  # the client left meanwhile, or the cancel came as the stream was being ended
    return resp


def _on_deltas(rec: RequestRecord, deltas: list[Delta], observers: Observers) -> None:
    now = time.perf_counter()
    if rec.first_delta_at is None:
        rec.first_delta_at = now
        rec.ttft_ms = (now - rec.t0) * 1000.0
    rec.last_delta_at = now
    observers.delta(rec, merge_deltas(deltas))


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _upstream_failed(
    request: web.Request, rec: RequestRecord, resp: web.StreamResponse | None, reason: str, message: str
) -> web.StreamResponse:
    """Record an upstream failure and tell the client: a JSON error, or one SSE error event mid-stream."""
    rec.status = R.ERROR
    rec.error = reason
    rec.error_message = message
    status = 504 if reason == R.ERR_TIMEOUT else 502
    if resp is None or not resp.prepared:
        rec.http_status = status
        return _with_id(openai_error(status, message, "upstream_error", reason), rec.id)
    # Mid-response: append one error event (never a synthetic [DONE]) and end cleanly.
    try:
        if resp.content_type == "text/event-stream":
            err = {"error": {"message": message, "type": "upstream_error", "code": reason}}
            await resp.write(b"data: " + json.dumps(err).encode() + b"\n\n")
        await resp.write_eof()
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        pass
    return resp


def _finish(rec: RequestRecord, app: web.Application, route: Route | None = None) -> None:
    end = time.perf_counter()
    rec.latency_ms = (end - rec.t0) * 1000.0
    out = rec.usage.output_tokens
    if out:
        gen_s = (end - rec.first_delta_at) if rec.first_delta_at is not None else (end - rec.t0)
        rec.output_tps = out / gen_s if gen_s > 0.001 else None
    if rec.status == R.IN_FLIGHT:
        rec.status = R.ERROR
    if route is not None and route.key:  # an upstream that echoes the key we injected (its error body)
        _scrub(rec, route.key)
    if rec.error_message:
        rec.error_message = app[keys.REDACTOR].redact_text(rec.error_message)[:500]
    rec.cost_usd = _cost(app[keys.PRICES], rec)
    app[keys.OBSERVERS].end(rec)


def _scrub(rec: RequestRecord, key: str) -> None:
    label = "[REDACTED:route_key]"
    if rec.error_message and key in rec.error_message:
        rec.error_message = rec.error_message.replace(key, label)
    if key in rec.text:
        rec.text = rec.text.replace(key, label)
    if key in rec.reasoning:
        rec.reasoning = rec.reasoning.replace(key, label)


def _cost(prices: Any, rec: RequestRecord) -> float | None:
    """The request's cost at the price of the model that answered (``response_model``), else
    of the one asked upstream, else of the client's; None when none of them has a price."""
    u = rec.usage
    if u.input_tokens is None and u.output_tokens is None:
        return None
    for model in (rec.response_model, rec.upstream_model, rec.model):
        if model and prices.price_for(model) is not None:
            return prices.cost(model, u.input_tokens, u.output_tokens, u.cached_input_tokens)
    return None


def _response_headers(up: aiohttp.ClientResponse, streaming: bool) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    drop = _HOP_BY_HOP if streaming else _RESPONSE_DROP
    for name, value in up.headers.items():
        if name.lower() not in drop:
            out.add(name, value)
    if streaming:
        out["X-Accel-Buffering"] = "no"  # tell an nginx in front of us not to buffer the stream
        out.setdefault("Cache-Control", "no-cache")
    return out


def _with_id(resp: web.Response, rid: str) -> web.Response:
    resp.headers[REQUEST_ID_HEADER] = rid
    return resp
