"""`tokentail proxy`: the streaming proxy as a process."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from tokentail import serving
from tokentail.access import allowed_host
from tokentail.erasure import parse_capture, parse_capture_key
from tokentail.redis_url import redis_url
from tokentail.settings import Option, SettingsError, parse_bool, parse_duration, parse_size, port

from .routes import parse_routes_json

log = logging.getLogger("tokentail.proxy")

SUMMARY = "run the streaming proxy in front of an OpenAI-compatible API"
DESCRIPTION = """\
Forward /v1/* to the upstream, relaying streamed responses chunk by chunk, and
watch every request as it streams: live feed at /api/live, recent requests at
/api/requests, Prometheus metrics at /metrics, OpenTelemetry spans when an
OTEL_EXPORTER_OTLP_*ENDPOINT (or OTEL_TRACES_EXPORTER) is set.

Requests can be routed by model to other upstreams ([[proxy.routes]] in the config
file, reloaded on SIGHUP), are priced from a price table, grouped into sessions and
attributed to API-key fingerprints, users and tags; see docs/proxy-features.md.

example:
  tokentail proxy --upstream https://api.openai.com/v1
  OPENAI_BASE_URL=http://127.0.0.1:8787/v1 python my_app.py
"""

OPTIONS = [
    Option(
        "upstream",
        "base URL of the upstream API as OpenAI clients take it, e.g. "
        "https://api.openai.com/v1 or http://127.0.0.1:8000/v1 (required)",
        metavar="URL",
    ),
    Option("port", "port to listen on", 8787, port),
    Option(
        "host",
        "address to bind; anything but loopback requires the read/admin tokens "
        "(or --insecure) to read captured content",
        "127.0.0.1",
    ),
    Option("variant", "deployment variant stamped on live events and spans (e.g. production, canary)", "production"),
    Option("connect_timeout", "upstream connect timeout", 10.0, parse_duration, metavar="DURATION"),
    Option(
        "idle_timeout",
        "longest silence from the upstream, time to first byte included; there is no total timeout",
        300.0,
        parse_duration,
        metavar="DURATION",
    ),
    Option(
        "grace", "on SIGTERM, how long in-flight requests may take to finish", 30.0, parse_duration, metavar="DURATION"
    ),
    Option("max_body", "largest request body accepted (413 beyond)", 32 << 20, parse_size, metavar="SIZE"),
    Option(
        "inject_usage",
        "ask the upstream for usage on streamed chat completions "
        "(stream_options.include_usage) and hide that extra chunk from clients that did not ask; "
        "turn off for upstreams that reject stream_options",
        True,
        parse_bool,
    ),
    Option(
        "redact",
        "redact e-mails, phone and card numbers, API keys and tokens in captured prompts and completions",
        True,
        parse_bool,
    ),
    Option("ring_size", "recent requests kept in memory for /api/requests and replay", 1000, int, metavar="N"),
    Option("ring_bytes", "memory bound of the recent-requests ring", 64 << 20, parse_size, metavar="SIZE"),
    Option(
        "capture_bytes",
        "captured completion text per request (beyond: truncated, marked)",
        1 << 20,
        parse_size,
        metavar="SIZE",
    ),
    Option(
        "capture_prompt_bytes",
        "captured prompt text per request, cut before it is redacted, stored or exported "
        "(beyond: truncated, marked; the upstream still gets the whole body)",
        256 << 10,
        parse_size,
        metavar="SIZE",
    ),
    Option(
        "capture",
        "what is captured of each request: full (prompts and completions, redacted), metadata "
        "(sizes, usage, timings, cost; no text anywhere) or none (forwarded and counted in metrics only); "
        "routes, --capture-key and the X-Tokentail-Capture request header can only lower it",
        "full",
        lambda v: parse_capture(v, "--capture"),
        metavar="MODE",
    ),
    Option(
        "capture_key",
        "capture mode for one client key, by its fingerprint (repeatable; only lowers --capture)",
        [],
        parse_capture_key,
        multiple=True,
        metavar="FINGERPRINT=MODE",
    ),
    Option("live_max_subscribers", "listeners of /api/live at once (beyond: 503, counted)", 64, int, metavar="N"),
    Option(
        "live_redis",
        "also append the live events to a Redis stream (redis://HOST:PORT[/DB]) that a collector with the "
        "same --live-redis serves as one /api/live for many proxies; Redis down or slow never delays a "
        'request (events dropped, counted in tokentail_telemetry_dropped_total{sink="live_redis"})',
        None,
        redis_url,
        secret=True,  # the URL may hold a password
        metavar="URL",
    ),
    Option(
        "live_redis_maxlen",
        "about how many events the Redis stream keeps (XADD MAXLEN ~); shared by all proxies",
        100_000,
        int,
        metavar="N",
    ),
    Option(
        "span_content_bytes",
        "prompt and completion JSON kept on each span, each (beyond: cut, marked tokentail.content.truncated); "
        "keep 4 x this x OTEL_BSP_MAX_EXPORT_BATCH_SIZE (32) under the OTLP receiver's body limit (16 MiB)",
        64 << 10,
        parse_size,
        metavar="SIZE",
    ),
    Option(
        "model_cap",
        "distinct model label values on /metrics, given to names the upstream answered with a 2xx; the rest: 'other'",
        50,
        int,
        metavar="N",
    ),
    Option(
        "read_token",
        "token needed to read /api/* when bound off loopback",
        None,
        secret=True,
        env_aliases=("TOKENTAIL_READ_TOKEN",),
    ),
    Option(
        "admin_token",
        "token needed for every state change (cancel, route reload); when unset, state "
        "changes are allowed from loopback peers only",
        None,
        secret=True,
        env_aliases=("TOKENTAIL_ADMIN_TOKEN",),
    ),
    Option(
        "insecure",
        "serve captured content off loopback without the read token (state changes still need "
        "the admin token or a loopback peer)",
        False,
        parse_bool,
    ),
    Option(
        "routes",
        "model routes to other upstreams, usually [[proxy.routes]] tables in the config file "
        "(here: a JSON list); reloaded on SIGHUP; see docs/proxy-features.md",
        [],
        parse_routes_json,
        metavar="JSON",
    ),
    Option(
        "probe_interval",
        "probe GET {upstream}/models this often for upstream health (--upstream and routes with "
        "probe = true); 0: off (paid APIs count the calls); health also comes from traffic",
        0.0,
        parse_duration,
        metavar="DURATION",
    ),
    Option("probe_timeout", "longest wait for one health probe", 5.0, parse_duration, metavar="DURATION"),
    Option("pricing", "price table (TOML) replacing the packaged tokentail/data/pricing.toml", None, metavar="PATH"),
    Option(
        "fingerprint_key",
        "secret of the HMAC that fingerprints client API keys; unset: a random one per "
        "process, so fingerprints change on restart",
        None,
        secret=True,
        env_aliases=("TOKENTAIL_FINGERPRINT_KEY",),
    ),
    Option(
        "allowed_origin",
        "browser origin allowed to read /api/live cross-origin (repeatable; never a wildcard)",
        [],
        multiple=True,
        metavar="ORIGIN",
    ),
    Option(
        "allowed_host",
        "host name /api/* answers to besides localhost, the bind address and IP literals "
        "(repeatable; NAME or NAME:PORT, e.g. a compose service name or a load balancer's name)",
        [],
        allowed_host,
        multiple=True,
        metavar="HOST",
    ),
]


def validate_upstream(url: str | None) -> str:
    from .routes import parse_upstream

    if not url:
        raise SettingsError(
            "--upstream is required (e.g. --upstream https://api.openai.com/v1, "
            "or run `tokentail simulate` and use http://127.0.0.1:8799/v1)"
        )
    return str(parse_upstream(url, "--upstream"))


def main(settings) -> int:
    from prometheus_client import CollectorRegistry

    from .app import create_app
    from .routes import reload_routes
    from .services import build_metrics, build_services
    from .telemetry import build_tracer_provider, shutdown_bounded

    upstream = validate_upstream(settings.upstream)
    settings = settings.replace(upstream=upstream)
    registry = CollectorRegistry()
    # The metrics first: the span export counts its drops on them from the start.
    metrics = build_metrics(settings, registry, os.environ)
    provider = build_tracer_provider(os.environ, metrics.dropped)
    services = build_services(settings, registry=registry, metrics=metrics, tracer_provider=provider)
    app = create_app(services)

    def on_sighup() -> None:
        try:
            reload_routes(services.routes)
        except SettingsError:
            pass  # logged by reload_routes; the routes in effect stay

    def started(p: int) -> None:
        log.info("proxying http://%s:%d/v1 -> %s (variant %s)", settings.host, p, upstream, settings.variant)
        for route in services.routes.table.routes:
            log.info(
                "route %s: %s -> %s%s",
                route.name,
                route.match or f"{route.prefix}*",
                route.upstream,
                f" (model {route.model})" if route.model else "",
            )
        log.info("live feed: http://%s:%d/api/live   metrics: http://%s:%d/metrics", settings.host, p, settings.host, p)
        if services.fingerprinter.ephemeral:
            log.info(
                "API-key fingerprints use a random secret: stable until restart "
                "(set TOKENTAIL_FINGERPRINT_KEY to keep them)"
            )
        if hasattr(signal, "SIGHUP"):
            try:
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_sighup)
            except (NotImplementedError, RuntimeError):  # no signal support on this loop/platform
                pass

    try:
        return serving.run(
            serving.serve_until_signal(
                app, settings.host, settings.port, "proxy", grace=settings.grace, on_started=started
            )
        )
    finally:
        if provider is not None:
            shutdown_bounded(provider, 5.0)
