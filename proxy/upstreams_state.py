"""App keys of the upstream view (health, rate limits, raw stream captures).

Apart from ``state`` so this feature's wiring stays in its own modules; a leaf like it.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from .raw_store import RawStore
from .upstream_health import UpstreamHealth

__all__ = ["RAW", "UPSTREAMS"]

UPSTREAMS: Final = web.AppKey("upstreams", UpstreamHealth)
RAW: Final = web.AppKey("raw_store", RawStore)
