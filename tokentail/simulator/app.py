"""The simulator's aiohttp app: pacing, fault injection, disconnects and test hooks.

Each API endpoint is a pure *builder* in ``endpoints`` (request JSON -> body dict or
event stream, from ``shapes`` and ``text``), listed in ``endpoints.API``. ``_handler``
wraps each into what every endpoint shares: count and record the request, parse it,
apply the per-request plan (``x-sim-*`` headers over the ``SimConfig``), inject errors
or hangs, then pace the reply and notice a client that leaves.

Disconnects: aiohttp sees a vanished client only on the next write unless the
server cancels handlers on connection loss (``handler_cancellation``, off in
``web.AppRunner`` by default). So every wait here is sliced into ``POLL`` steps
that check the transport, and a ``CancelledError`` with the transport gone is
counted too: the simulator notices within ``POLL`` seconds either way, including
while it waits for the first token or for a hung request. On shutdown the same waits
end at once (paced streams finish unpaced, hung requests are closed), so stopping
never waits out the server's grace period.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from . import shapes
from .endpoints import API, MODELS, BadRequest, Endpoint, Out, Plan

__all__ = ["MODELS", "STATE", "SimConfig", "SimState", "SimStats", "create_app"]

POLL = 0.05  # seconds between transport checks while waiting
MAX_BODY = 64 * 1024 * 1024


@dataclass(frozen=True)
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 8799
    tokens_per_second: float = 50.0  # 0: no delay between tokens
    ttft: float = 0.2  # seconds from request to first token
    length: int = 60  # completion tokens; the request's max tokens caps it
    # An uncapped answer runs on to the end of its sentence (as a model stops), so it is
    # about ``length`` tokens; off, exactly ``length`` (tests count on it).
    whole_sentences: bool = False
    error_rate: float = 0.0  # fraction of API requests answered 429 / 500 (alternately)
    disconnect_rate: float = 0.0  # fraction of streams dropped mid-stream without [DONE]
    seed: int = 0  # same seed + same request -> same text
    embedding_dimensions: int = 8
    models: tuple[str, ...] = MODELS

    def __post_init__(self) -> None:
        for name in ("error_rate", "disconnect_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.tokens_per_second < 0 or self.ttft < 0:
            raise ValueError("tokens_per_second and ttft must be >= 0")
        if self.length < 1 or self.embedding_dimensions < 1:
            raise ValueError("length and embedding_dimensions must be >= 1")


@dataclass
class SimStats:
    requests: int = 0
    streams_started: int = 0
    streams_completed: int = 0
    client_disconnects: int = 0
    server_disconnects: int = 0  # streams the simulator dropped on purpose
    errors_injected: int = 0
    in_flight: int = 0
    last_disconnect_at: float | None = None  # time.monotonic() when a client was seen gone


class SimState:
    def __init__(self, config: SimConfig):
        self.config = config
        self.created = int(time.time())
        self.stopping = False  # set on shutdown: waits end at once so the server stops quickly
        self.reset()

    def reset(self) -> None:
        in_flight = getattr(self, "stats", SimStats()).in_flight
        self.stats = SimStats(in_flight=in_flight)
        self.rng = random.Random(self.config.seed)  # error/disconnect draws, in request order
        self.error_count = 0
        self.last: tuple | None = None


STATE = web.AppKey("tokentail_simulator_state", SimState)


class _ClientGone(ConnectionResetError):
    pass


_TRUE = ("1", "true", "yes", "on")


def _header_num(request: web.Request, name: str, kind: type, low: float, high: float = float("inf")) -> Any:
    raw = request.headers.get(name)
    if raw is None:
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise BadRequest(f"header {name}: not a number: {raw!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"header {name}: {raw} is out of range")
    return value


def _plan(request: web.Request, state: SimState, body: dict, cap_keys: tuple[str, ...]) -> Plan:
    cfg = state.config
    n = _header_num(request, "x-sim-tokens", int, 1) or cfg.length
    exact = _header_num(request, "x-sim-tokens", int, 1) is not None
    finish = "stop"
    limit = None
    for key in cap_keys:
        cap = body.get(key)
        if isinstance(cap, int) and not isinstance(cap, bool) and cap >= 1:
            limit = cap
            if cap < n:
                n, finish = cap, "length"
            break
    tps = _header_num(request, "x-sim-tps", float, 0)
    ttft_ms = _header_num(request, "x-sim-ttft-ms", float, 0)
    plan = Plan(
        n=n,
        finish=finish,
        cap=limit,
        whole_sentences=cfg.whole_sentences and not exact,
        ttft=cfg.ttft if ttft_ms is None else ttft_ms / 1000,
        tps=cfg.tokens_per_second if tps is None else tps,
        error=_header_num(request, "x-sim-error", int, 400, 599),
        drop_after=_header_num(request, "x-sim-disconnect-after", int, 0),
        no_usage=request.headers.get("x-sim-no-usage", "").lower() in _TRUE,
        hang=request.headers.get("x-sim-hang", "").lower() in _TRUE,
        cached=_header_num(request, "x-sim-cached-tokens", int, 0),
    )
    if plan.error is None and cfg.error_rate > 0 and state.rng.random() < cfg.error_rate:
        plan.error = 429 if state.error_count % 2 == 0 else 500
        state.error_count += 1
    return plan


# --- waiting and noticing a client that left ------------------------------------------------


def _client_left(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _note_gone(state: SimState) -> None:
    state.stats.client_disconnects += 1
    state.stats.last_disconnect_at = time.monotonic()


async def _sleep_until(request: web.Request, state: SimState, deadline: float) -> None:
    loop = asyncio.get_running_loop()
    while not state.stopping:
        if _client_left(request):
            raise _ClientGone()
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        await asyncio.sleep(min(remaining, POLL))


def _drop(request: web.Request, state: SimState) -> None:
    """Close the connection as a failing upstream would: what was written is flushed, then EOF."""
    state.stats.server_disconnects += 1
    if request.transport is not None:
        request.transport.close()


_STREAM_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def _request_id() -> str:
    return "req_" + secrets.token_hex(16)


def _json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    h = {"x-request-id": _request_id(), **(headers or {})}
    return web.Response(status=status, body=shapes.dumps(body).encode(), content_type="application/json", headers=h)


async def _run_stream(request: web.Request, state: SimState, plan: Plan, out: Out, t0: float) -> web.StreamResponse:
    stats, cfg = state.stats, state.config
    drop = plan.drop_after
    if drop is None and cfg.disconnect_rate > 0 and state.rng.random() < cfg.disconnect_rate:
        drop = state.rng.randint(1, max(1, out.n - 1))
    loop = asyncio.get_running_loop()
    interval = 1.0 / plan.tps if plan.tps > 0 else 0.0
    resp = web.StreamResponse(headers={**_STREAM_HEADERS, "x-request-id": _request_id()})
    stats.streams_started += 1
    try:
        await resp.prepare(request)
        write = resp.write
        first_at = -1.0
        sent = 0
        for phase, event in out.events or ():
            if phase != shapes.HEAD:
                if first_at < 0:
                    first_at = t0 + plan.ttft
                    if first_at > loop.time():
                        await _sleep_until(request, state, first_at)
                    first_at = max(first_at, loop.time())
                if phase == shapes.TOKEN:
                    if drop is not None and sent >= drop:
                        _drop(request, state)
                        return resp
                    if interval and sent:
                        await _sleep_until(request, state, first_at + sent * interval)
                    sent += 1
                elif phase == shapes.TAIL and drop is not None:
                    _drop(request, state)
                    return resp
            await write(event)
        await resp.write_eof()
        stats.streams_completed += 1
    except ConnectionError:
        _note_gone(state)
    return resp


async def _run_reply(request: web.Request, state: SimState, plan: Plan, out: Out, t0: float) -> web.StreamResponse:
    gen_time = out.n / plan.tps if plan.tps > 0 else 0.0
    try:
        if plan.drop_after is not None:  # no body at all: the upstream died while generating
            await _sleep_until(request, state, t0 + plan.ttft + gen_time * min(1.0, plan.drop_after / max(out.n, 1)))
            _drop(request, state)
            return web.Response()
        await _sleep_until(request, state, t0 + plan.ttft + gen_time)
    except ConnectionError:
        _note_gone(state)
        return web.Response()
    return _json_response(200, out.body, {"openai-processing-ms": str(int((plan.ttft + gen_time) * 1000))})


async def _hang(request: web.Request, state: SimState) -> web.StreamResponse:
    try:
        await _sleep_until(request, state, float("inf"))
        _drop(request, state)  # shutting down
    except ConnectionError:
        _note_gone(state)
    return web.Response()


async def _receive(request: web.Request, state: SimState) -> bytes:
    state.stats.requests += 1
    raw = await request.read()
    state.last = (request.method, request.path, request.query_string, request.headers, raw, time.monotonic())
    return raw


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _handler(endpoint: Endpoint) -> Handler:
    """Wrap a builder into a handler: record, parse, plan, inject faults, then pace the reply."""
    build, cap_keys, anthropic = endpoint.build, endpoint.cap_keys, endpoint.anthropic

    async def handler(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        t0 = asyncio.get_running_loop().time()
        raw = await _receive(request, state)
        state.stats.in_flight += 1
        try:
            try:
                body = json.loads(raw)
                if not isinstance(body, dict):
                    raise BadRequest("The request body must be a JSON object.")
                plan = _plan(request, state, body, cap_keys)
            except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, BadRequest
                message = (
                    str(exc)
                    if isinstance(exc, BadRequest)
                    else ("We could not parse the JSON body of your request. The API expects a JSON payload.")
                )
                err = shapes.anthropic_error(message) if anthropic else shapes.openai_error(message)
                return _json_response(400, err)
            if plan.hang:
                return await _hang(request, state)
            if plan.error is not None:
                state.stats.errors_injected += 1
                return _json_response(plan.error, shapes.injected_error(plan.error, anthropic), {"Retry-After": "1"})
            try:
                out = build(state, body, plan)
            except BadRequest as exc:
                err = shapes.anthropic_error(str(exc)) if anthropic else shapes.openai_error(str(exc), param=exc.param)
                return _json_response(400, err)
            if out.events is not None:
                return await _run_stream(request, state, plan, out, t0)
            return await _run_reply(request, state, plan, out, t0)
        except asyncio.CancelledError:  # handler_cancellation=True: the client left
            if _client_left(request):
                _note_gone(state)
            raise
        finally:
            state.stats.in_flight -= 1

    handler.__name__ = build.__name__
    return handler


_API_PATHS = {endpoint.path for endpoint in API}


async def list_models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    await _receive(request, state)
    return _json_response(200, shapes.models_list(state.config.models, state.created))


async def get_model(request: web.Request) -> web.Response:
    state = request.app[STATE]
    await _receive(request, state)
    return _json_response(200, shapes.model_object(request.match_info["model"], state.created))


async def not_found(request: web.Request) -> web.Response:
    state = request.app[STATE]
    await _receive(request, state)
    what = f"{request.method} {request.path}"
    if request.path in _API_PATHS:
        return _json_response(405, shapes.openai_error(f"Invalid method for URL ({what})"))
    return _json_response(404, shapes.openai_error(f"Invalid URL ({what})"))


# --- test hooks (not under /v1) -------------------------------------------------------------


async def sim_stats(request: web.Request) -> web.Response:
    return web.json_response(asdict(request.app[STATE].stats))


async def sim_last(request: web.Request) -> web.Response:
    """The last request as received, all headers included: served to loopback peers only."""
    if request.remote not in ("127.0.0.1", "::1") and not (request.remote or "").startswith("127."):
        return web.json_response(shapes.openai_error("/_sim/last is served to loopback clients only"), status=403)
    last = request.app[STATE].last
    if last is None:
        return web.json_response(None)
    method, path, query, headers, raw, at = last
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return web.json_response(
        {
            "method": method,
            "path": path,
            "query": query,
            "headers": {k.lower(): ", ".join(headers.getall(k)) for k in headers},
            "raw_headers": [[k, v] for k, v in headers.items()],
            "json": parsed,
            "body": raw.decode("utf-8", "replace"),
            "received_at": at,
        }
    )


async def sim_reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return web.json_response({"ok": True})


def create_app(config: SimConfig | None = None) -> web.Application:
    """The simulator as an aiohttp app (serve it with ``tokentail.serving`` or a test server)."""
    app = web.Application(client_max_size=MAX_BODY)
    app[STATE] = SimState(config or SimConfig())
    r = app.router
    for endpoint in API:
        r.add_post(endpoint.path, _handler(endpoint))
    r.add_get("/v1/models", list_models)
    r.add_get("/v1/models/{model}", get_model)
    r.add_get("/_sim/stats", sim_stats)
    r.add_get("/_sim/last", sim_last)
    r.add_post("/_sim/reset", sim_reset)
    r.add_route("*", "/{tail:.*}", not_found)
    app.on_shutdown.append(_on_shutdown)
    return app


async def _on_shutdown(app: web.Application) -> None:
    app[STATE].stopping = True  # paced streams finish at once, hung requests are closed
