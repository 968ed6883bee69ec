"""The collector's HTTP app: query API, SSE, OTLP receiver, and the loops it runs.

Routes: ``GET /healthz``; ``GET /api/status``, ``/api/config``, ``/api/metrics``,
``/api/spans``, ``/api/spans/{request_id}``, ``/api/sessions``, ``/api/facets``,
``/api/runs``, ``/api/runs/{id}``, ``/api/runs/{id}/requests``, ``/api/runs/compare``,
``/api/requests/search``, ``/api/requests/export``, ``/api/pricing``, ``/api/events``
(SSE), ``/api/live`` (SSE, with ``--live-redis``: ``live_redis.py``); ``POST /v1/traces``, ``POST /api/runs``,
``POST /api/runs/{id}/pause|resume|end``, ``POST /api/erase`` (``erase_api``).
Who may do what is ``tokentail.access`` (one pure decision, applied by its aiohttp
middleware): only allowed host names are answered on ``/api/*`` and ``/v1/traces``; bound
off loopback, reads of ``/api/*`` need the read token and ``POST /v1/traces`` the admin
token: an OTLP exporter then sends ``Authorization: Bearer <admin token>``
(``OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<token>``); on a loopback bind span
ingest stays open (it is telemetry, not an admin action). Run actions, POSTs under
``/api/``, are state changes whatever the bind: the admin token once one is configured,
else loopback peers only; from a browser, only from an allowed origin, with a JSON body.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import duckdb
from aiohttp import web

from .. import access, access_aiohttp
from ..pricing import PriceTable
from . import compare_api, erase_api, replay_links, run_api, search_api, span_quantiles
from ._http import (
    _TASKS,
    COLLECTOR,
    CONFIG,
    EVENTS,
    OTLP_STATS,
    POLICY,
    PRICES,
    RECEIPTS,
    STARTED_AT,
    STORE,
    error,
    unavailable,
)
from .config import CollectorConfig
from .events import Broadcaster, stream
from .live_redis import LIVE, LiveReader
from .live_redis import live as live_feed
from .otlp import JSON_TYPE, OTLPError, decode, encode_response, spans_to_rows
from .pipeline import Collector
from .query import (
    QueryError,
    assemble,
    count_sessions,
    fetch_facets,
    fetch_sessions,
    fetch_spans,
    newest_receipt,
    next_receipt,
    plan_facets,
    plan_metrics,
    plan_sessions,
    plan_spans,
    run_metrics,
)
from .receipts import Receipts
from .receiver import REFUSALS, RefusalLog, too_large
from .store import SCHEMA_VERSION, Store

__all__ = ["COLLECTOR", "CONFIG", "EVENTS", "OTLP_STATS", "POLICY", "PRICES", "STARTED_AT", "STORE", "create_app"]

log = logging.getLogger("tokentail.collector")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("tokentail")
    except Exception:
        return "0+unknown"


def create_app(
    settings_or_config: CollectorConfig | Mapping[str, Any],
    *,
    store: Store | None = None,
    session: aiohttp.ClientSession | None = None,
    clock: Callable[[], float] = time.time,
    scrape: bool = True,
    maintain: bool = True,
    prices: PriceTable | None = None,
) -> web.Application:
    """Build the collector app. The app owns ``store`` (opened from the config when not
    given; ``StoreError`` on failure) and closes it on cleanup. ``scrape``/``maintain``
    False leave the loops to the caller (tests drive ``app[COLLECTOR]`` directly).
    ``prices`` defaults to the config's pricing file (``SettingsError`` if unusable)."""
    config = (
        settings_or_config
        if isinstance(settings_or_config, CollectorConfig)
        else CollectorConfig.from_settings(settings_or_config)
    )
    policy = access.AccessPolicy(
        bind_host=config.host,
        read_token=config.read_token,
        admin_token=config.admin_token,
        insecure=config.insecure,
        allowed_origins=config.allowed_origins,
        allowed_hosts=config.allowed_hosts,
        protected_prefixes=("/api/",),
        ingest_paths=frozenset({"/v1/traces"}),  # span ingest: telemetry, a case of the one policy
    )
    prices = prices if prices is not None else run_api.load_prices(config.pricing)  # before the file is opened
    store = store or Store.open(config.db, checkpoint_threshold=config.checkpoint_threshold)
    app = web.Application(middlewares=[access_aiohttp.middleware(policy)], client_max_size=config.max_otlp_bytes)
    events = Broadcaster()
    app[CONFIG], app[STORE], app[EVENTS], app[POLICY] = config, store, events, policy
    app[COLLECTOR] = Collector(config, store, events, session=session, clock=clock)
    app[OTLP_STATS] = {
        "requests": 0,
        "spans_received": 0,
        "spans_stored": 0,
        "spans_duplicate": 0,
        "spans_skipped": 0,
        "errors": 0,
        "max_body_bytes": config.max_otlp_bytes,
    }
    app[REFUSALS] = RefusalLog(app[OTLP_STATS])
    app[STARTED_AT] = clock()
    app[PRICES] = prices
    app[RECEIPTS] = Receipts()
    app[_TASKS] = []
    app.cleanup_ctx.append(_lifecycle(scrape, maintain))
    app.on_shutdown.append(_end_streams)
    if config.live_redis:
        reader = LiveReader(
            config.live_redis,
            max_subscribers=config.live_max_subscribers,
            replay=config.live_replay,
            heartbeat=config.heartbeat,
        )
        app[LIVE] = reader
        app.cleanup_ctx.append(reader.ctx)
        app.on_shutdown.append(reader.end_streams)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/config", config_view)
    app.router.add_get("/api/metrics", metrics)
    app.router.add_get("/api/spans", spans)
    app.router.add_get("/api/spans/{request_id}", span_detail)
    app.router.add_get("/api/sessions", sessions)
    app.router.add_get("/api/facets", facets)
    run_api.add_routes(app)
    compare_api.add_routes(app)
    search_api.add_routes(app)  # /api/requests/search and /export (history search)
    erase_api.add_routes(app)  # POST /api/erase (content erasure)
    app.router.add_get("/api/events", sse)
    app.router.add_get("/api/live", live_feed)  # 404 unless --live-redis (see live_redis.py)
    app.router.add_post("/v1/traces", traces)
    return app


def _lifecycle(scrape: bool, maintain: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        collector = app[COLLECTOR]
        await collector.start()
        # Stamps go on above what is stored, whatever the clock says now (receipts.py).
        app[RECEIPTS].raise_floor(await app[STORE].read(newest_receipt))
        if scrape:
            app[_TASKS].append(asyncio.create_task(collector.run(), name="collector-scrape"))
        if maintain:
            app[_TASKS].append(asyncio.create_task(collector.maintain_forever(), name="collector-upkeep"))
        yield
        for task in app[_TASKS]:
            task.cancel()
        await asyncio.gather(*app[_TASKS], return_exceptions=True)
        await collector.close()
        await asyncio.get_running_loop().run_in_executor(None, app[STORE].close)

    return lifecycle


async def _end_streams(app: web.Application) -> None:
    """On shutdown, before in-flight requests are waited for: SSE streams end now."""
    app[EVENTS].close()


async def healthz(request: web.Request) -> web.Response:
    c = request.app[COLLECTOR]
    return web.json_response({"status": "ok", "rounds": c.rounds, "store_ok": c.store_error is None})


async def status(request: web.Request) -> web.Response:
    """Per-variant health and current values, targets, store and receiver counters."""
    app = request.app
    store, collector = app[STORE], app[COLLECTOR]
    body = collector.snapshot()
    try:
        stats = await store.read(Store.stats)
    except duckdb.Error as exc:
        stats = {"rows": None, "rows_error": str(exc).splitlines()[0]}
    now = collector.clock()
    body["store"].update(
        path=str(store.path),
        size_bytes=store.size_bytes(),
        schema_version=SCHEMA_VERSION,
        rollup_watermark=store.watermark,
        maintenance=collector.maintenance,
        **stats,
    )
    body.update(
        now=now,
        started_at=app[STARTED_AT],
        uptime=now - app[STARTED_AT],
        version=_version(),
        scrape_interval=app[CONFIG].scrape_interval,
        otlp=app[OTLP_STATS],
        sse_subscribers=app[EVENTS].subscribers,
    )
    reader = app.get(LIVE)
    if reader is not None:
        body["live_redis"] = {"url": reader.display, "up": reader.up, "subscribers": reader.subscribers}
    return web.json_response(body)


async def config_view(request: web.Request) -> web.Response:
    return web.json_response(request.app[CONFIG].public())


async def metrics(request: web.Request) -> web.Response:
    """Time series per variant or model (see query.py and formulas.UNITS); percentiles exact
    from spans where there are spans (``quantile_source``, see span_quantiles.py)."""
    app = request.app
    store, config = app[STORE], app[CONFIG]
    try:
        plan = plan_metrics(
            request.query,
            store.catalog(),
            now=app[COLLECTOR].clock(),
            configured_variants=[t.variant for t in config.targets],
            scrape_interval=config.scrape_interval,
        )
    except QueryError as exc:
        return web.json_response(exc.as_json(), status=400)
    watermark = store.watermark
    try:
        body = await store.read(
            lambda cur: span_quantiles.apply(
                assemble(plan, run_metrics(cur, plan, watermark)), plan, span_quantiles.run(cur, plan)
            )
        )
    except duckdb.Error as exc:
        return error(503, f"database unavailable: {str(exc).splitlines()[0]}", "unavailable")
    return web.json_response(body)


async def spans(request: web.Request) -> web.Response:
    """Stored request spans, newest first: ``{"spans": [...], "limit", "received_before"}``.

    ``received_before``: every span received before that time is stored (taken before the
    query). With ``received_since`` it is the next call's ``received_since``: every span
    received from one to the other is in this answer (see ``next_receipt``)."""
    try:
        plan = plan_spans(request.query)
    except QueryError as exc:
        return web.json_response(exc.as_json(), status=400)
    app = request.app
    received_before = app[RECEIPTS].watermark(app[COLLECTOR].clock())
    try:
        rows = await app[STORE].read(fetch_spans, plan)
    except duckdb.Error as exc:
        return unavailable(exc)
    if plan.by_receipt:
        received_before = next_receipt(rows, plan.limit, received_before)
    return web.json_response({"spans": rows, "limit": plan.limit, "received_before": received_before})


async def sessions(request: web.Request) -> web.Response:
    """Sessions with a request matching the filters, newest activity first:
    ``{"sessions": [...], "total", "limit", "offset"}`` (``total``: all matching, for paging)."""
    try:
        plan = plan_sessions(request.query)
    except QueryError as exc:
        return web.json_response(exc.as_json(), status=400)
    try:
        rows, total = await request.app[STORE].read(lambda cur: (fetch_sessions(cur, plan), count_sessions(cur, plan)))
    except duckdb.Error as exc:
        return unavailable(exc)
    return web.json_response({"sessions": rows, "total": total, "limit": plan.limit, "offset": plan.offset})


async def facets(request: web.Request) -> web.Response:
    """The users, tags, keys, models, routes and variants seen, most used first."""
    try:
        since, limit = plan_facets(request.query)
    except QueryError as exc:
        return web.json_response(exc.as_json(), status=400)
    try:
        body = await request.app[STORE].read(fetch_facets, since, limit)
    except duckdb.Error as exc:
        return unavailable(exc)
    return web.json_response(body)


async def span_detail(request: web.Request) -> web.Response:
    row = await request.app[STORE].read(replay_links.fetch_span_linked, request.match_info["request_id"])
    if row is None:
        return error(404, "no stored span with this request id", "not_found")
    return web.json_response(row)


async def sse(request: web.Request) -> web.StreamResponse:
    app = request.app
    return await stream(
        request, app[EVENTS], heartbeat=app[CONFIG].heartbeat, headers=access.cors_headers_for(app[POLICY], request)
    )


async def traces(request: web.Request) -> web.Response:
    """OTLP/HTTP trace receiver: GenAI spans land in ``spans`` (duplicates by request id skipped).

    Who may send spans: the access middleware (an ingest case of the policy). Never a 500 for
    what a client sent: a body over the limit is a 413 naming the limit (before it is read, when
    its length is declared), anything undecodable (JSON nested too deep included) a 400; each
    refusal is counted (see ``receiver``)."""
    app = request.app
    stats, refusals = app[OTLP_STATS], app[REFUSALS]
    stats["requests"] += 1
    limit = app[CONFIG].max_otlp_bytes
    size = request.content_length
    if size is not None and size > limit and not request.headers.get("Content-Encoding"):
        refusals.refused("too_large", f"{size} bytes from {request.remote} (limit {limit})")
        return too_large(limit, size)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:  # chunked or compressed, found over the limit while reading
        refusals.refused("too_large", f"over {limit} bytes from {request.remote}")
        return too_large(limit, None)
    ctype = request.headers.get("Content-Type", "")
    received = app[RECEIPTS].begin(app[COLLECTOR].clock())  # until stored or refused: readers by receipt wait
    try:
        refused = await _store_batch(app, body, ctype, received)
    finally:
        app[RECEIPTS].end(received)
    if refused is not None:
        return refused
    payload, content_type = encode_response(ctype.split(";")[0].strip().lower() == JSON_TYPE)
    return web.Response(body=payload, content_type=content_type)


async def _store_batch(app: web.Application, body: bytes, ctype: str, received: float) -> web.Response | None:
    """Decode and store one OTLP batch; the refusal to answer with, or None once stored."""
    stats, refusals = app[OTLP_STATS], app[REFUSALS]
    loop = asyncio.get_running_loop()
    try:
        rows, skipped = await loop.run_in_executor(
            None, lambda: spans_to_rows(decode(body, ctype), received_at=received)
        )
    except OTLPError as exc:
        refusals.refused(exc.reason, str(exc))
        return error(
            415 if exc.unsupported else 400,
            str(exc),
            "unsupported_media_type" if exc.unsupported else "invalid_request",
        )
    stats["spans_received"] += len(rows)
    stats["spans_skipped"] += skipped
    if rows:
        store = app[STORE]
        try:
            inserted = await store.write(store.insert_spans, rows)
        except (duckdb.Error, OSError) as exc:
            refusals.refused("unavailable", f"could not store {len(rows)} spans: {str(exc).splitlines()[0]}")
            # 503 makes OTLP exporters retry later; request ids make the retry safe.
            resp = error(503, "database unavailable; retry later", "unavailable")
            resp.headers["Retry-After"] = "5"
            return resp
        stats["spans_stored"] += inserted
        stats["spans_duplicate"] += len({r["request_id"] for r in rows}) - inserted
    return None
