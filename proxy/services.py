"""What the proxy app is made of, built once from settings: ``build_services``.

``app.create_app`` only wires what it is given (``ProxyServices``) into an aiohttp app; this
module builds it: config, access policy, routes, prices, redactor, metrics, live hub,
sessions, fingerprinter, observers and request hooks. A process's ``main`` builds the
metrics first and hands them both to the span export (which counts its drops on them) and
to ``build_services``, so no counter has to be bound after the fact. Tests pass a fresh
registry, an in-memory tracer provider, their own ``env`` and ``clock``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from yarl import URL

from tokentail import access
from tokentail.pricing import PriceTable, PricingError
from tokentail.settings import SettingsError

from . import routes, telemetry
from ._promptcap import DEFAULT_PROMPT_BYTES
from .attribution import Fingerprinter
from .hooks import RequestHooks, default_hooks
from .live import LiveHub
from .live_redis import DROP_SINK as REDIS_DROP_SINK
from .live_redis import LiveRedisSink
from .metrics import ProxyMetrics
from .raw_store import RawStore
from .record import Observer, Observers
from .redact import Redactor
from .sessions import SessionTracker
from .spans import SpanObserver
from .state import ProxyConfig, RouteState
from .upstream_health import UpstreamHealth

__all__ = ["ProxyServices", "build_metrics", "build_services"]


@dataclass(frozen=True)
class ProxyServices:
    """Everything ``create_app`` puts on the app (see ``state`` for the keys)."""

    config: ProxyConfig
    policy: access.AccessPolicy
    routes: RouteState
    prices: PriceTable
    redactor: Redactor
    registry: CollectorRegistry
    metrics: ProxyMetrics
    hub: LiveHub
    sessions: SessionTracker
    fingerprinter: Fingerprinter
    observers: Observers
    hooks: RequestHooks
    boot_id: str
    upstreams: UpstreamHealth
    raw: RawStore
    probe_interval: float = 0.0
    probe_timeout: float = 5.0
    live_redis: LiveRedisSink | None = None  # --live-redis: the hub's events also go to Redis


def build_metrics(settings: Any, registry: CollectorRegistry, env: Mapping[str, str]) -> ProxyMetrics:
    """The proxy's instruments on ``registry`` (also the sink of every drop count)."""
    return ProxyMetrics(
        registry,
        model_cap=settings.model_cap,
        semconv_opt_in=telemetry.semconv_opt_in(env),
        upstream_url=str(_upstream(settings)),
    )


def build_services(
    settings: Any,
    *,
    registry: CollectorRegistry | None = None,
    metrics: ProxyMetrics | None = None,
    tracer_provider: Any = None,
    extra_observers: Sequence[Observer] = (),
    env: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
) -> ProxyServices:
    """The proxy's services from the proxy command's resolved Settings.

    ``registry`` (default: a fresh one) is served on ``/metrics``; ``metrics``, when the
    caller built them already, must be on it. ``tracer_provider`` (None: no spans) comes from
    the caller; ``env`` (default: the process environment) holds
    the standard ``OTEL_*`` switches, the variables that routes' ``api_key_env`` name, and
    ``TOKENTAIL_CONFIG`` for route reloads; ``clock`` stamps route reloads. Raises
    ``SettingsError`` for bad routes or a bad price table.
    """
    env = os.environ if env is None else env
    route_table = routes.parse_routes(settings.routes, env)
    try:
        prices = PriceTable.load(settings.pricing)
    except PricingError as exc:
        raise SettingsError(str(exc)) from None
    config = ProxyConfig(
        upstream=_upstream(settings),
        variant=settings.variant,
        connect_timeout=settings.connect_timeout,
        idle_timeout=settings.idle_timeout,
        max_body=settings.max_body,
        inject_usage=settings.inject_usage,
        capture_bytes=settings.capture_bytes,
    )
    registry = registry if registry is not None else CollectorRegistry()
    if metrics is None:
        metrics = build_metrics(settings, registry, env)
    redactor = Redactor(enabled=settings.redact)
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
    live_redis = None
    if getattr(settings, "live_redis", None):
        live_redis = LiveRedisSink(
            settings.live_redis,
            boot_id=boot_id,
            maxlen=settings.live_redis_maxlen,
            on_drop=metrics.dropped,
        )
        metrics.telemetry_dropped.labels(REDIS_DROP_SINK)  # the series exists (at 0) from the start
        hub.add_sink(live_redis.push)
    spans = None
    if tracer_provider is not None:
        spans = SpanObserver(
            tracer_provider,
            upstream_url=str(config.upstream),
            redactor=redactor,
            variant=settings.variant,
            capture_content=telemetry.capture_content(env),
            semconv_opt_in=telemetry.semconv_opt_in(env),
            content_bytes=settings.span_content_bytes,
        )
    sessions = SessionTracker(redactor=redactor)
    upstreams = UpstreamHealth(registry, config.upstream.host or str(config.upstream), clock=clock)
    for route in route_table.routes:
        upstreams.see(route.name, route.upstream.host)
    raw = RawStore(redactor, max_requests=settings.ring_size, max_bytes=settings.ring_bytes)
    # The span observer first: it puts the trace id on the record before the live hub
    # announces the request. (Any: an observer implements any of the three hooks, and
    # ``Observers`` looks them up; the ``Observer`` protocol cannot say "some of".)
    observers: list[Any] = [
        *([spans] if spans is not None else []),
        metrics,
        hub,
        sessions,
        upstreams,
        raw,
        *extra_observers,
    ]
    routes_from = settings.source("routes")
    route_state = RouteState(
        route_table,
        env,
        settings.routes if routes_from == "flag" else None,
        config_file=_config_file(env) if routes_from == "config file" else None,
        clock=clock,
    )
    fingerprinter = Fingerprinter(settings.fingerprint_key)
    hooks = default_hooks(
        redactor=redactor,
        fingerprinter=fingerprinter,
        routes=lambda: route_state.table,  # a reload swaps the table; the hook reads it per request
        sessions=sessions,
        inject_usage=config.inject_usage,
        span_of=spans.span_of if spans is not None else None,
        prompt_bytes=getattr(settings, "capture_prompt_bytes", DEFAULT_PROMPT_BYTES),
        capture=getattr(settings, "capture", None) or "full",
        capture_keys=dict(getattr(settings, "capture_key", None) or ()),
    )
    return ProxyServices(
        config=config,
        policy=_policy(settings),
        routes=route_state,
        prices=prices,
        redactor=redactor,
        registry=registry,
        metrics=metrics,
        hub=hub,
        sessions=sessions,
        fingerprinter=fingerprinter,
        observers=Observers(observers),
        hooks=RequestHooks(hooks),
        boot_id=boot_id,
        upstreams=upstreams,
        raw=raw,
        probe_interval=getattr(settings, "probe_interval", 0.0),
        probe_timeout=getattr(settings, "probe_timeout", 5.0),
        live_redis=live_redis,
    )


def _upstream(settings: Any) -> URL:
    return URL(settings.upstream.rstrip("/"))


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
