"""The proxy's aiohttp application factory.

``create_app`` takes its dependencies (settings, a Prometheus registry, a tracer
provider) so tests can pass a fresh registry and an in-memory span exporter; the
process's ``main`` wires the real ones.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry
from yarl import URL

from tokentail import access
from tokentail.pricing import PriceTable, PricingError
from tokentail.settings import SettingsError

from . import api, forward, routes, telemetry
from .attribution import Fingerprinter
from .live import LiveHub
from .metrics import ProxyMetrics, metrics_handler
from .record import Observer, Observers, RequestRecord
from .redact import Redactor
from .sessions import SessionTracker

log = logging.getLogger("tokentail.proxy")


@dataclass(frozen=True)
class ProxyConfig:
    """What the forward handler needs, resolved once from settings."""

    upstream: URL
    variant: str
    connect_timeout: float
    idle_timeout: float
    max_body: int
    inject_usage: bool
    capture_bytes: int


@dataclass
class RouteState:
    """The routes in effect (swapped whole by ``reload_routes``) and where they come from."""

    table: routes.RouteTable
    env: Mapping[str, str]
    flag_value: Any = None  # --routes given on the command line: a reload keeps it
    config_file: str | None = None
    loaded_at: float = field(default_factory=time.time)


@dataclass(slots=True)
class InFlight:
    """A request being handled: its handler task (cancelled by ``POST .../cancel``) and record."""

    task: asyncio.Task
    rec: RequestRecord


CONFIG = web.AppKey("config", ProxyConfig)
SESSION = web.AppKey("session", aiohttp.ClientSession)
HUB = web.AppKey("hub", LiveHub)
METRICS = web.AppKey("metrics", ProxyMetrics)
OBSERVERS = web.AppKey("observers", Observers)
REDACTOR = web.AppKey("redactor", Redactor)
POLICY = web.AppKey("policy", access.AccessPolicy)
BOOT_ID = web.AppKey("boot_id", str)
ROUTES = web.AppKey("routes", RouteState)
PRICES = web.AppKey("prices", PriceTable)
SESSIONS = web.AppKey("sessions", SessionTracker)
FINGERPRINTER = web.AppKey("fingerprinter", Fingerprinter)
INFLIGHT = web.AppKey("inflight", dict)  # request id -> InFlight


def create_app(
    settings: Any,
    *,
    registry: CollectorRegistry | None = None,
    tracer_provider: Any = None,
    extra_observers: list[Observer] | None = None,
    env: Mapping[str, str] | None = None,
) -> web.Application:
    """Build the proxy app. ``settings`` is the proxy command's resolved Settings;
    ``env`` (default: the process environment) holds the standard ``OTEL_*`` switches, the
    variables that routes' ``api_key_env`` name, and ``TOKENTAIL_CONFIG`` for route reloads.
    Raises ``SettingsError`` for bad routes or a bad price table."""
    env = os.environ if env is None else env
    route_table = routes.parse_routes(settings.routes, env)
    try:
        prices = PriceTable.load(settings.pricing)
    except PricingError as exc:
        raise SettingsError(str(exc)) from None
    policy = _policy(settings)
    app = web.Application(
        client_max_size=settings.max_body,
        middlewares=[access.middleware(policy)],
        handler_args={"max_field_size": 65536},
    )
    config = ProxyConfig(
        upstream=URL(settings.upstream.rstrip("/")),
        variant=settings.variant,
        connect_timeout=settings.connect_timeout,
        idle_timeout=settings.idle_timeout,
        max_body=settings.max_body,
        inject_usage=settings.inject_usage,
        capture_bytes=settings.capture_bytes,
    )
    registry = registry if registry is not None else CollectorRegistry()
    redactor = Redactor(enabled=settings.redact)
    opt_in = telemetry.semconv_opt_in(env)
    metrics = ProxyMetrics(
        registry, model_cap=settings.model_cap, semconv_opt_in=opt_in, upstream_url=str(config.upstream)
    )
    boot_id = uuid.uuid4().hex[:12]
    hub = LiveHub(
        boot_id=boot_id,
        variant=settings.variant,
        max_requests=settings.ring_size,
        max_bytes=settings.ring_bytes,
        max_capture_bytes=settings.capture_bytes,
        redactor=redactor,
        on_drop=metrics.dropped,
        max_subscribers=settings.live_max_subscribers,
    )
    observers: list[object] = []  # each with any of the Observer hooks (SessionTracker: on_end only)
    if tracer_provider is not None:
        from .spans import SpanObserver

        # First, so the trace id is on the record before the live feed announces the request.
        observers.append(
            SpanObserver(
                tracer_provider,
                upstream_url=str(config.upstream),
                redactor=redactor,
                variant=settings.variant,
                capture_content=telemetry.capture_content(env),
                semconv_opt_in=opt_in,
                content_bytes=settings.span_content_bytes,
            )
        )
    sessions = SessionTracker(redactor=redactor)
    observers += [metrics, hub, sessions, *(extra_observers or [])]

    app[CONFIG] = config
    app[HUB] = hub
    app[METRICS] = metrics
    app[OBSERVERS] = Observers(observers)
    app[REDACTOR] = redactor
    app[POLICY] = policy
    app[BOOT_ID] = boot_id
    routes_from = settings.source("routes")
    app[ROUTES] = RouteState(
        route_table,
        env,
        settings.routes if routes_from == "flag" else None,
        config_file=_config_file(env) if routes_from == "config file" else None,
    )
    app[PRICES] = prices
    app[SESSIONS] = sessions
    app[FINGERPRINTER] = Fingerprinter(settings.fingerprint_key)
    app[INFLIGHT] = {}
    app.cleanup_ctx.append(_upstream_session)
    app.on_shutdown.append(_close_live_streams)

    app.router.add_get("/healthz", api.healthz)
    app.router.add_get("/metrics", metrics_handler(registry))
    app.router.add_get("/api/live", api.live)
    app.router.add_get("/api/requests", api.list_requests)
    app.router.add_get("/api/requests/{id}", api.get_request)
    app.router.add_post("/api/requests/{id}/cancel", api.cancel_request)
    app.router.add_get("/api/routes", api.list_routes)
    app.router.add_post("/api/routes/reload", api.reload_routes)
    app.router.add_route("*", "/v1/{path:.*}", forward.forward)
    return app


def reload_routes(app: web.Application) -> routes.RouteTable:
    """Re-read the routes (config file, or ``TOKENTAIL_PROXY_ROUTES``) and swap them in.

    On any error the routes in effect stay, the reason is logged and ``SettingsError``
    raised. SIGHUP and ``POST /api/routes/reload`` both land here.
    """
    state = app[ROUTES]
    try:
        table, path = routes.load_routes(state.env, state.flag_value)
    except SettingsError as exc:
        log.error("routes not reloaded (the %d route(s) in effect stay): %s", len(state.table), exc)
        raise
    state.table, state.config_file, state.loaded_at = table, path, time.time()
    log.info(
        "routes reloaded%s: %s",
        f" from {path}" if path else "",
        ", ".join(r.name for r in table.routes) or "none (everything goes to --upstream)",
    )
    return table


def _config_file(env: Mapping[str, str]) -> str:
    from tokentail.settings import CONFIG_ENV, DEFAULT_CONFIG_FILE

    return env.get(CONFIG_ENV) or DEFAULT_CONFIG_FILE


def _policy(settings: Any) -> access.AccessPolicy:
    return access.AccessPolicy(
        bind_host=settings.host,
        read_token=settings.read_token,
        admin_token=settings.admin_token,
        insecure=settings.insecure,
        allowed_origins=frozenset(settings.allowed_origin or ()),
        allowed_hosts=access.parse_hosts(getattr(settings, "allowed_host", None) or ()),
    )


async def _upstream_session(app: web.Application):
    config = app[CONFIG]
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True)
    # auto_decompress off: the client gets the upstream's bytes exactly; we ask the
    # upstream for identity encoding so the tap can read the stream.
    session = aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=None, connect=config.connect_timeout, sock_read=config.idle_timeout),
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
        trust_env=False,
    )
    app[SESSION] = session
    yield
    await session.close()


async def _close_live_streams(app: web.Application) -> None:
    # Live subscribers would otherwise hold the graceful-shutdown window open.
    app[HUB].close_all()
