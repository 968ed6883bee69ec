"""The proxy's aiohttp application factory.

``create_app`` takes its dependencies, built by ``services.build_services`` (settings,
metrics, observers, request hooks, clock), and only wires them into an app: state under the
typed keys of ``state``, the upstream ``ClientSession`` in ``cleanup_ctx``, the routes. So a
test passes a fresh registry and an in-memory span exporter, and the handlers (``api``,
``forward``) import ``state``, never this module. ``app_from_settings`` does both steps for
tests and embedders that need nothing special.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
from aiohttp import web

from tokentail import access_aiohttp

from . import api, api_upstreams, forward
from .metrics import metrics_handler
from .services import ProxyServices, build_services
from .state import (
    BOOT_ID,
    CONFIG,
    CONTENT_POOL,
    FINGERPRINTER,
    HOOKS,
    HUB,
    INFLIGHT,
    METRICS,
    OBSERVERS,
    POLICY,
    PRICES,
    REDACTOR,
    ROUTES,
    SESSION,
    SESSIONS,
)
from .upstream_probe import probe_ctx, targets
from .upstreams_state import RAW, UPSTREAMS

_SWITCH_INTERVAL = 0.001  # seconds: how long the loop may wait for the GIL after a syscall

log = logging.getLogger("tokentail.proxy")


def create_app(services: ProxyServices) -> web.Application:
    """The proxy app over ``services``."""
    app = web.Application(
        client_max_size=services.config.max_body,
        middlewares=[access_aiohttp.middleware(services.policy)],
        handler_args={"max_field_size": 65536},
    )
    app[CONFIG] = services.config
    app[HUB] = services.hub
    app[METRICS] = services.metrics
    app[OBSERVERS] = services.observers
    app[HOOKS] = services.hooks
    app[REDACTOR] = services.redactor
    app[POLICY] = services.policy
    app[BOOT_ID] = services.boot_id
    app[ROUTES] = services.routes
    app[PRICES] = services.prices
    app[SESSIONS] = services.sessions
    app[FINGERPRINTER] = services.fingerprinter
    app[INFLIGHT] = {}
    app[UPSTREAMS] = services.upstreams
    app[RAW] = services.raw
    app.cleanup_ctx.append(_upstream_session)
    app.cleanup_ctx.append(
        probe_ctx(
            services.probe_interval, services.probe_timeout, lambda a: targets(a[CONFIG].upstream, a[ROUTES].table)
        )
    )
    if services.live_redis is not None:
        app.cleanup_ctx.append(services.live_redis.ctx)
    app.on_shutdown.append(_close_live_streams)

    app.router.add_get("/healthz", api.healthz)
    app.router.add_get("/metrics", metrics_handler(services.registry))
    app.router.add_get("/api/live", api.live)
    app.router.add_get("/api/requests", api.list_requests)
    app.router.add_get("/api/requests/{id}", api.get_request)
    app.router.add_get("/api/requests/{id}/raw", api_upstreams.get_raw)
    app.router.add_get("/api/upstreams", api_upstreams.list_upstreams)
    app.router.add_get("/api/routes/match", api_upstreams.match_route)
    app.router.add_post("/api/requests/{id}/cancel", api.cancel_request)
    app.router.add_get("/api/routes", api.list_routes)
    app.router.add_post("/api/routes/reload", api.reload_routes)
    app.router.add_post("/api/erase", api.erase)
    app.router.add_route("*", "/v1/{path:.*}", forward.forward)
    return app


def app_from_settings(settings: Any, **kwargs: Any) -> web.Application:
    """``create_app(build_services(settings, **kwargs))``: ``registry``, ``tracer_provider``,
    ``env``, ``extra_observers``, ``clock`` as ``build_services`` takes them."""
    return create_app(build_services(settings, **kwargs))


async def _upstream_session(app: web.Application) -> AsyncIterator[None]:
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
    # RE2 and the JSON decoder keep the GIL during a call, so more threads would only take more
    # turns from the event loop (measured: eight threads held a 10 ms/token stream for over a
    # second); with one, the loop waits at most one call.
    app[CONTENT_POOL] = pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokentail-content")
    # While that thread works, each syscall of the loop (a send, a recv) gives up the GIL and
    # waits up to the switch interval to get it back: at the default 5 ms a step of a few
    # syscalls lost tens of ms (a stream's gaps ~100 ms beside eight 4 MiB bodies of small
    # messages; 40-50 ms at 1 ms). Uncontended, the interval costs nothing.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, _SWITCH_INTERVAL))
    yield
    sys.setswitchinterval(interval)
    await session.close()
    pool.shutdown(wait=False, cancel_futures=True)


async def _close_live_streams(app: web.Application) -> None:
    # Live subscribers would otherwise hold the graceful-shutdown window open.
    app[HUB].close_all()
