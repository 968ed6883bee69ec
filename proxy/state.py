"""The proxy app's state: what the handlers find on ``request.app``, under typed keys.

A leaf of the package's import graph: ``app`` (the factory), ``api`` and ``forward`` (the
handlers) and ``services`` (which builds what is stored here) all import it, and it imports
none of them, so the factory and its handlers no longer import each other. The values are
built by ``services.build_services`` and put on the app by ``app.create_app``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
from aiohttp import web
from yarl import URL

from tokentail.access import AccessPolicy
from tokentail.pricing import PriceTable

from .attribution import Fingerprinter
from .hooks import RequestHooks
from .live import LiveHub
from .metrics import ProxyMetrics
from .record import Observers, RequestRecord
from .redact import Redactor
from .routes import RouteTable
from .sessions import SessionTracker

__all__ = [
    "BOOT_ID",
    "CONFIG",
    "FINGERPRINTER",
    "HOOKS",
    "HUB",
    "INFLIGHT",
    "METRICS",
    "OBSERVERS",
    "POLICY",
    "PRICES",
    "REDACTOR",
    "ROUTES",
    "SESSION",
    "SESSIONS",
    "InFlight",
    "ProxyConfig",
    "RouteState",
]


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
    """The routes in effect (swapped whole by ``routes.reload_routes``) and where they come from.

    ``clock`` stamps ``loaded_at`` (wall-clock seconds) at every reload, so a test can set it.
    """

    table: RouteTable
    env: Mapping[str, str]
    flag_value: Any = None  # --routes given on the command line: a reload keeps it
    config_file: str | None = None
    clock: Callable[[], float] = time.time
    loaded_at: float = field(default=0.0)

    def __post_init__(self) -> None:
        if not self.loaded_at:
            self.loaded_at = self.clock()


@dataclass(slots=True)
class InFlight:
    """A request being handled: its handler task (cancelled by ``POST .../cancel``) and record."""

    task: asyncio.Task[Any]
    rec: RequestRecord


CONFIG: Final = web.AppKey("config", ProxyConfig)
SESSION: Final = web.AppKey("session", aiohttp.ClientSession)  # the upstream client, set in cleanup_ctx
HUB: Final = web.AppKey("hub", LiveHub)
METRICS: Final = web.AppKey("metrics", ProxyMetrics)
OBSERVERS: Final = web.AppKey("observers", Observers)
HOOKS: Final = web.AppKey("hooks", RequestHooks)
# One worker thread for large bodies' parsing and prompts' redaction, set in cleanup_ctx.
CONTENT_POOL: Final = web.AppKey("content_pool", ThreadPoolExecutor)
REDACTOR: Final = web.AppKey("redactor", Redactor)
POLICY: Final = web.AppKey("policy", AccessPolicy)
BOOT_ID: Final = web.AppKey("boot_id", str)
ROUTES: Final = web.AppKey("routes", RouteState)
PRICES: Final = web.AppKey("prices", PriceTable)
SESSIONS: Final = web.AppKey("sessions", SessionTracker)
FINGERPRINTER: Final = web.AppKey("fingerprinter", Fingerprinter)
# request id -> InFlight; the generic form, since ``dict`` alone would type its values as Any.
INFLIGHT: Final = web.AppKey[dict[str, InFlight]]("inflight")
