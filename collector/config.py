"""The collector's resolved configuration: targets, intervals, retention, access."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..access import parse_hosts
from ..redis_url import display_redis_url
from ..settings import SettingsError
from .store import Retention

_VARIANT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,62})=(.+)$")


def strip_url(url: str) -> str:
    """``url`` without credentials, query string or fragment: safe to log and show."""
    return display_redis_url(url)  # the same stripping, whatever the scheme


def default_variant(url: str) -> str:
    """``canary`` for a URL that mentions canary or test, else ``production``."""
    low = url.lower()
    return "canary" if ("canary" in low or "test" in low) else "production"


@dataclass(frozen=True)
class Target:
    variant: str
    url: str  # the URL scraped (a proxy's /metrics)
    display: str  # the same without credentials or query string

    def as_dict(self) -> dict[str, str]:
        return {"variant": self.variant, "url": self.display}


def parse_target(text: str) -> Target:
    """``[VARIANT=]URL`` where URL is a proxy's base URL or its /metrics URL."""
    raw = text.strip()
    m = _VARIANT.match(raw)
    variant, url = (m.group(1), m.group(2).strip()) if m else (None, raw)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise SettingsError(f"--target {raw.split('?')[0]!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"--target {raw!r}: expected [VARIANT=]http(s)://HOST:PORT[/metrics]")
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[:-3]  # the base URL OpenAI clients are given: /metrics is beside /v1
    if not path.endswith("/metrics"):
        path += "/metrics"  # a proxy's base URL: scrape its /metrics
    url = urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
    return Target(variant or default_variant(url), url, strip_url(url))


@dataclass(frozen=True)
class CollectorConfig:
    db: Path = Path("./tokentail-data/tokentail.duckdb")
    host: str = "127.0.0.1"
    port: int = 8788
    targets: tuple[Target, ...] = ()
    scrape_interval: float = 5.0
    scrape_timeout: float = 2.0
    max_scrape_bytes: int = 8 << 20
    max_series_per_target: int = 10_000
    retention: Retention = field(default_factory=Retention)
    rollup_interval: float = 30.0
    checkpoint_threshold: int | None = None
    max_otlp_bytes: int = 16 << 20
    read_token: str | None = None
    admin_token: str | None = None
    insecure: bool = False
    allowed_origins: frozenset[str] = frozenset()
    allowed_hosts: frozenset[str] = frozenset()  # --allowed-host: names besides localhost, the bind address, IPs
    pricing: str | None = None  # pricing TOML for what-if totals (None: the bundled table)
    heartbeat: float = 15.0  # seconds between SSE heartbeat comments
    live_window: float = 60.0  # seconds behind the "current" values of /api/status and SSE
    live_redis: str | None = None  # --live-redis: serve the proxies' merged live feed at /api/live
    live_max_subscribers: int = 64
    live_replay: int = 1000  # most recent events a fresh /api/live connection is given

    def __post_init__(self) -> None:
        if self.scrape_interval <= 0:
            raise SettingsError("--scrape-interval must be positive")
        if not self.scrape_timeout > 0:
            raise SettingsError("--scrape-timeout must be positive")
        seen: set[str] = set()
        for t in self.targets:
            if t.display in seen:  # stored under its display URL: no query string in the database
                raise SettingsError(f"--target {t.display} is given twice")
            seen.add(t.display)

    @property
    def settle(self) -> float:
        """How long after a minute ends its last 5s rows may still arrive."""
        return self.scrape_interval + self.scrape_timeout + 1.0

    def with_(self, **changes: Any) -> CollectorConfig:
        return replace(self, **changes)

    @classmethod
    def from_settings(cls, s: Mapping[str, Any]) -> CollectorConfig:
        """Build from the resolved ``Settings`` of ``tokentail collector``."""
        timeout = s["scrape_timeout"]
        if timeout > s["scrape_interval"]:
            source = s.source("scrape_timeout") if hasattr(s, "source") else "given"
            if source != "default":
                raise SettingsError("--scrape-timeout must not exceed --scrape-interval")
            timeout = s["scrape_interval"]  # a short interval shortens the default timeout with it
        return cls(
            db=Path(s["db"]).expanduser(),
            host=s["host"],
            port=s["port"],
            targets=tuple(parse_target(t) for t in (s["target"] or [])),
            scrape_interval=s["scrape_interval"],
            scrape_timeout=timeout,
            max_scrape_bytes=s["max_scrape_bytes"],
            retention=Retention(
                metrics_5s=s["retention_5s"],
                metrics_1m=s["retention_1m"],
                spans=s["spans_retention"],
                spans_max_rows=s["spans_max_rows"],
                spans_max_bytes=s["spans_max_bytes"],
                content=s.get("content_retention") or None,
            ),
            rollup_interval=s["rollup_interval"],
            checkpoint_threshold=s["checkpoint_threshold"],
            max_otlp_bytes=s["max_otlp_bytes"],
            read_token=s["read_token"] or None,
            admin_token=s["admin_token"] or None,
            insecure=bool(s["insecure"]),
            allowed_origins=frozenset(s["allowed_origin"] or ()),
            allowed_hosts=parse_hosts(s.get("allowed_host") or ()),
            pricing=s.get("pricing") or None,
            live_redis=s.get("live_redis") or None,
            live_max_subscribers=s.get("live_max_subscribers", 64),
            live_replay=s.get("live_replay", 1000),
        )

    def public(self) -> dict[str, Any]:
        """What GET /api/config shows: no token, no URL query string."""
        r = self.retention
        return {
            "db": str(self.db),
            "host": self.host,
            "port": self.port,
            "targets": [t.as_dict() for t in self.targets],
            "variants": sorted({t.variant for t in self.targets}),
            "scrape_interval": self.scrape_interval,
            "scrape_timeout": self.scrape_timeout,
            "max_scrape_bytes": self.max_scrape_bytes,
            "retention": {
                "metrics_5s": r.metrics_5s,
                "metrics_1m": r.metrics_1m,
                "spans": r.spans,
                "spans_max_rows": r.spans_max_rows,
                "spans_max_bytes": r.spans_max_bytes,
                "content": r.content,
            },
            "rollup_interval": self.rollup_interval,
            "max_otlp_bytes": self.max_otlp_bytes,
            "read_token_set": bool(self.read_token),
            "admin_token_set": bool(self.admin_token),
            "insecure": self.insecure,
            "allowed_origins": sorted(self.allowed_origins),
            "allowed_hosts": sorted(self.allowed_hosts),
            "pricing": self.pricing or "bundled",
            "live_redis": display_redis_url(self.live_redis) if self.live_redis else None,
        }
