"""The forward handler: ``ANY /v1/{path}`` relayed to the upstream, chunk by chunk.

Thin by design: read the body, run the request hooks (``hooks``: parse, attribute, route,
session, usage, trace context; ``upstream.build`` turns their plan into the request), open
the upstream call, then relay: loop (read a chunk, write it to the client, feed the tap).
What the tap finds goes to the observers (live hub, metrics, spans), which never block.
A slow client slows reading from the upstream (``resp.write`` waits for the socket to drain,
the upstream's reader stops), so memory per stream stays bounded. A client that goes away
cancels this handler (``handler_cancellation``), which closes the upstream connection at
once; so does an operator's ``POST /api/requests/{id}/cancel``, which cancels the handler
task found in the app's in-flight registry (the client then gets a clean end with an error,
not a reset). At the end it prices the request (``tokentail.pricing``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from concurrent.futures import Executor
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from . import capture, upstream
from . import record as R
from .hooks import RequestContext, UpstreamPlan, prepare_off_loop
from .live_entry import approx_size
from .record import Delta, Observers, RequestRecord, merge_deltas
from .redact import Redactor
from .routes import Route
from .state import CONFIG, CONTENT_POOL, HOOKS, INFLIGHT, OBSERVERS, PRICES, REDACTOR, SESSION, InFlight, ProxyConfig
from .tap import StreamTap
from .upstream_url import PREFIX, PathRefused
from .upstreams_state import UPSTREAMS

log = logging.getLogger("tokentail.proxy")

REQUEST_ID_HEADER = "x-tokentail-request-id"

_RESPONSE_DROP = upstream.HOP_BY_HOP - {"content-length"}


def openai_error(status: int, message: str, type_: str, code: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return web.json_response(body, status=status)


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


def request_id() -> str:
    """A random (version 4) UUID as text, as ``str(uuid.uuid4())`` writes it, without the
    ``UUID`` object (its checks and int conversions: ~2.5x the cost, on every request)."""
    b = bytearray(os.urandom(16))
    b[6] = b[6] & 0x0F | 0x40  # version 4
    b[8] = b[8] & 0x3F | 0x80  # the RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


async def forward(request: web.Request) -> web.StreamResponse:
    app = request.app
    config = app[CONFIG]
    rid = request_id()
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return _with_id(_websocket_unsupported(), rid)
    body = await _read_body(request, config.max_body)
    if body is None:
        return _with_id(_too_large(config.max_body), rid)
    path = request.match_info["path"]
    rec = RequestRecord(id=rid, variant=config.variant, method=request.method, endpoint="/" + path)
    ctx = RequestContext(
        method=request.method,
        path=request.rel_url.raw_path[len(PREFIX) :],
        query_string=request.rel_url.raw_query_string,
        query=request.query if request.query_string else None,
        headers=request.headers,
        body=body,
        rec=rec,
        plan=UpstreamPlan(config.upstream),
    )
    inflight = app[INFLIGHT]
    inflight[rid] = InFlight(asyncio.current_task(), rec)  # type: ignore[arg-type]  # a handler runs in a task
    relay = _Relay()
    prompt: _PromptRedaction | None = None
    try:
        hooks, observers = app[HOOKS], app[OBSERVERS]
        off_loop = prepare_off_loop(body)
        if off_loop:  # parse, cap, hash in the worker: the loop serves others
            await asyncio.get_running_loop().run_in_executor(app[CONTENT_POOL], hooks.prepare, ctx)
        hooks.request(ctx)
        observers = capture.observers_for(observers, rec)  # capture none: the counting ones only
        if rec.prompt_pending is not None:
            prompt = _PromptRedaction(rec, app[REDACTOR], observers, app[CONTENT_POOL])
        observers.start(rec)
        hooks.upstream(ctx)  # after on_start: our span exists now
        if off_loop:
            await asyncio.sleep(0)  # let other streams run between the hooks and building the upstream request
        try:
            out = upstream.build(ctx)
        except PathRefused as exc:
            rec.status, rec.http_status, rec.error_message = R.ERROR, 400, str(exc)
            return _with_id(openai_error(400, str(exc), "invalid_request_error", "invalid_path"), rid)
        async with app[SESSION].request(
            request.method, out.url, data=out.body, headers=out.headers, allow_redirects=False
        ) as up:
            resp = await relay.run(request, up, rec, out.obj, ctx.plan.usage_injected, config, observers)
    except asyncio.CancelledError:
        rec.status = R.CANCELLED  # the client went away (or an operator); leaving `async with` closed the upstream
        if rec.error == R.ERR_OPERATOR and _only_our_cancel(relay.resp):
            return await _operator_cancelled(request, rec, relay.resp)
        relay.client_left(rec)
        raise
    except _UPSTREAM_ERRORS as exc:
        if isinstance(exc, (ConnectionResetError, aiohttp.ClientConnectionResetError)) and _client_gone(request):
            rec.status = R.CANCELLED
            relay.client_left(rec)
            raise asyncio.CancelledError from None
        reason, message = _upstream_error(exc, ctx.plan.base, config)
        return await _upstream_failed(request, rec, relay.resp, reason, message)
    finally:
        relay.close()
        inflight.pop(rid, None)
        _finish(rec, app, ctx.plan.route, prompt)
    return resp


_SECRET_ROOM = 1024  # longer than any secret a rule knows: text is cut this far past a cap before redaction


class _PromptRedaction:
    """A large prompt redacted in a worker thread while the request goes on: the request path
    never waits on telemetry. The live hub holds ``request.start`` (and the deltas after it)
    until ``on_prompt``; ``on_end`` waits for it too, so each request's events stay in order
    and the span gets the redacted prompt. The redaction is capped work (``_promptcap``);
    RE2 holds the GIL per call, but each call on a capped prompt takes milliseconds."""

    __slots__ = ("_observers", "_rec", "done", "end")

    def __init__(self, rec: RequestRecord, redactor: Redactor, observers: Observers, pool: Executor) -> None:
        self._rec, self._observers = rec, observers
        self.done = False
        self.end = False  # the request ended first: on_end runs once the prompt is ready
        raw, rec.prompt_pending = rec.prompt_pending, None
        fut = asyncio.get_running_loop().run_in_executor(pool, _redact_and_size, redactor, raw)
        fut.add_done_callback(self._ready)

    def _ready(self, fut: asyncio.Future[Any]) -> None:
        rec = self._rec
        try:
            prompt, size = fut.result()
            if rec.capture == capture.FULL:
                rec.prompt, rec.prompt_size = prompt, size
            else:  # erased meanwhile: none
                rec.prompt = {}
        except asyncio.CancelledError:  # the pool shut down (the proxy is stopping): no prompt
            rec.prompt = {}
        except Exception:  # a redaction bug: no prompt rather than a raw one
            log.exception("prompt redaction failed for %s", rec.id)
            rec.prompt = {}
        rec.prompt_ready = self.done = True
        self._observers.prompt(rec)
        if self.end:
            capture.at_end(rec)
            self._observers.end(rec)


def _redact_and_size(redactor: Redactor, raw: Any) -> tuple[Any, int]:
    """In the worker thread: the redacted prompt and its size for the live hub's budget."""
    prompt = redactor.redact_json(raw)
    return prompt, approx_size(prompt)


class _Relay:
    """The response half: the upstream's bytes to the client, through the tap. Its response
    and tap stay reachable for the error paths (was anything sent yet? what arrived?)."""

    __slots__ = ("delivered", "resp", "status", "tap")

    def __init__(self) -> None:
        self.resp: web.StreamResponse | None = None
        self.tap: StreamTap | None = None
        self.status = 0  # the upstream's
        self.delivered = False  # the stream's terminator was written to the client

    async def run(
        self,
        request: web.Request,
        up: aiohttp.ClientResponse,
        rec: RequestRecord,
        obj: dict[str, Any] | None,
        usage_injected: bool,
        config: ProxyConfig,
        observers: Observers,
    ) -> web.StreamResponse:
        rec.http_status = up.status
        request.app[UPSTREAMS].on_response(rec, up.headers)  # rate-limit headroom, once per request
        streaming = up.content_type == "text/event-stream"
        resp = self.resp = web.StreamResponse(
            status=up.status, reason=up.reason, headers=_response_headers(up, streaming)
        )
        resp.headers[REQUEST_ID_HEADER] = rec.id
        tap = self.tap = StreamTap(
            rec,
            obj,
            streaming=streaming,
            strip_usage_chunk=usage_injected and streaming,
            max_capture_bytes=capture.tap_bytes(rec, config.capture_bytes),
            max_body_bytes=config.max_body,
        )
        capture.after_tap(rec)
        await resp.prepare(request)
        self.status = up.status
        async for chunk in up.content.iter_any():
            out, deltas = tap.feed(chunk)
            if out:
                await resp.write(out)
                self.delivered = tap.complete
            if deltas:
                _on_deltas(rec, deltas, observers)
        tail = tap.finish()
        self.tap = None
        if tail:
            await resp.write(tail)
        await resp.write_eof()
        rec.status = R.OK if up.status < 400 and rec.error is None else R.ERROR  # the tap may have set one
        if up.status >= 400:
            rec.error = R.ERR_STATUS
        return resp

    def client_left(self, rec: RequestRecord) -> None:
        """The client went away: a success if it had the whole answer, terminator included
        (the openai SDK stops reading at ``[DONE]`` and may hang up before the upstream closes)."""
        if self.delivered and rec.error is None and self.status < 400:
            rec.status = R.OK

    def close(self) -> None:
        if self.tap is not None:
            self.tap.finish()  # keep what arrived (partial completion, usage so far)
            self.tap = None


# What the upstream call can raise, and what each means (order matters: aiohttp's classes
# nest, e.g. a connect timeout is a ServerTimeoutError, a connector error a ClientOSError).
_UPSTREAM_ERRORS = (
    ConnectionResetError,
    aiohttp.ClientConnectionResetError,
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    TimeoutError,
    aiohttp.ServerTimeoutError,
    aiohttp.ClientPayloadError,
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientOSError,
)


def _upstream_error(exc: BaseException, base: URL, config: ProxyConfig) -> tuple[str, str]:
    """The reason code and the client's message for an upstream failure."""
    if isinstance(exc, (ConnectionResetError, aiohttp.ClientConnectionResetError)):
        return R.ERR_DISCONNECT, "upstream closed the connection"
    if isinstance(exc, aiohttp.ClientConnectorError):
        why = exc.os_error.strerror or type(exc.os_error).__name__
        return R.ERR_CONNECT, f"cannot connect to the upstream {base.host}:{base.port} ({why})"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return R.ERR_TIMEOUT, f"cannot connect to the upstream within {config.connect_timeout:g}s"
    if isinstance(exc, (TimeoutError, aiohttp.ServerTimeoutError)):
        return R.ERR_TIMEOUT, f"the upstream sent nothing for {config.idle_timeout:g}s (--idle-timeout)"
    return R.ERR_DISCONNECT, f"the upstream closed the connection mid-response ({type(exc).__name__})"


def _websocket_unsupported() -> web.Response:
    return openai_error(
        501,
        "WebSocket upgrades (e.g. /v1/realtime) are not supported by the "
        "tokentail proxy yet; connect to the upstream directly",
        "not_implemented",
        "websocket_unsupported",
    )


def _too_large(limit: int) -> web.Response:
    return openai_error(
        413,
        f"request body exceeds the proxy's limit of {limit} bytes (--max-body)",
        "invalid_request_error",
        "request_too_large",
    )


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
    observers.delta(rec, capture.delta_for_observers(rec, merge_deltas(deltas)))


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


def _finish(
    rec: RequestRecord, app: web.Application, route: Route | None = None, prompt: _PromptRedaction | None = None
) -> None:
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
    if rec.error_message:  # cut before redacting (bounded work), with room for a secret across the cut
        rec.error_message = app[REDACTOR].redact_text(rec.error_message[: 500 + _SECRET_ROOM])[:500]
    rec.cost_usd = _cost(app[PRICES], rec)
    if prompt is not None and not prompt.done:
        prompt.end = True  # told once the prompt is redacted (see _PromptRedaction)
        return
    capture.at_end(rec)
    capture.observers_for(app[OBSERVERS], rec).end(rec)


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
    drop = upstream.HOP_BY_HOP if streaming else _RESPONSE_DROP
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
