"""What the collector's route modules share: the app's typed keys and JSON error answers."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import access
from ..pricing import PriceTable
from .config import CollectorConfig
from .events import Broadcaster
from .pipeline import Collector
from .receipts import Receipts
from .store import Store

CONFIG = web.AppKey("config", CollectorConfig)
STORE = web.AppKey("store", Store)
EVENTS = web.AppKey("events", Broadcaster)
COLLECTOR = web.AppKey("collector", Collector)
POLICY = web.AppKey("policy", access.AccessPolicy)
OTLP_STATS = web.AppKey("otlp_stats", dict)
STARTED_AT = web.AppKey("started_at", float)
PRICES = web.AppKey("prices", PriceTable)
RECEIPTS = web.AppKey("receipts", Receipts)  # span batches received, not stored yet
_TASKS = web.AppKey("tasks", list)


def error(status: int, message: str, code: str, **extra: Any) -> web.Response:
    return web.json_response({"error": {"message": message, "type": code, "code": code, **extra}}, status=status)


def unavailable(exc: Exception) -> web.Response:
    return error(503, f"database unavailable: {str(exc).splitlines()[0]}", "unavailable")
