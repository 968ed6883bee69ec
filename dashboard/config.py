"""The dashboard's resolved configuration: where the proxies and the collector are, and access."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tokentail.access import AccessPolicy, is_loopback_host, parse_hosts
from tokentail.settings import SettingsError

_NAMED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,62})=(.+)$")
# Paths people paste that are not a proxy's base: its OpenAI base URL, its live feed.
_SUFFIXES = ("/api/live", "/metrics", "/v1")


def display_url(url: str) -> str:
    """``url`` without credentials, query string or fragment: safe to show and log."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<invalid url>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _base_url(raw: str, flag: str) -> str:
    try:
        parts = urlsplit(raw.strip())
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise SettingsError(f"{flag} {display_url(raw)!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{flag} {raw!r}: expected http(s)://HOST:PORT")
    if parts.username or parts.password or parts.query or parts.fragment:
        # The browser gets these URLs: credentials or a token in them would be shown to it.
        raise SettingsError(
            f"{flag} {display_url(raw)!r}: no credentials or query string in the URL "
            "(the read token goes in --read-token / TOKENTAIL_READ_TOKEN)"
        )
    path = parts.path.rstrip("/")
    for suffix in _SUFFIXES:
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


@dataclass(frozen=True)
class ProxySource:
    """One proxy whose live feed the page follows. ``name`` labels it in banners."""

    name: str
    url: str  # base URL as the browser reaches it (no trailing slash, no /v1)
    variant: str | None = None  # as given with VARIANT=; events carry their own variant too

    @property
    def live_url(self) -> str:
        return self.url + "/api/live"

    @property
    def openai_base(self) -> str:
        return self.url + "/v1"


def parse_proxy(text: str) -> ProxySource:
    """``[VARIANT=]URL``: a proxy's base URL (its ``/v1`` or ``/api/live`` URL works too)."""
    raw = text.strip()
    m = _NAMED.match(raw)
    variant, url = (m.group(1), m.group(2)) if m else (None, raw)
    base = _base_url(url, "--proxy")
    if variant is None:
        parts = urlsplit(base)
        name = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    else:
        name = variant
    return ProxySource(name=name, url=base, variant=variant)


@dataclass(frozen=True)
class PrometheusConfig:
    """``--metrics-source prometheus=URL``: the Overview reads this server's HTTP API instead of
    the collector. Only this server calls it, so ``url`` may carry ``user:password@`` (basic
    auth); it is shown through ``display_url`` only."""

    url: str  # base URL: {url}/api/v1/query_range
    token: str | None = None  # bearer token (--metrics-source-token)
    scrape_interval: float | None = None  # seconds between the proxies' scrapes (None: read from the data)
    timeout: float = 10.0  # a 7-day range over many models takes a Prometheus a while


METRICS_SOURCES = ("collector", "prometheus=URL")


def parse_metrics_source(
    text: str | None, token: str | None = None, interval: float | None = None
) -> PrometheusConfig | None:
    """``collector`` (None: the collector's /api/metrics) or ``prometheus=URL``."""
    raw = (text or "collector").strip()
    if raw == "collector":
        return None
    kind, sep, url = raw.partition("=")
    if kind != "prometheus" or not sep:
        raise SettingsError(f"--metrics-source {display_url(raw)!r}: expected one of {', '.join(METRICS_SOURCES)}")
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise SettingsError(f"--metrics-source {display_url(url)!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"--metrics-source prometheus={display_url(url)!r}: expected http(s)://HOST:PORT[/PATH]")
    if parts.query or parts.fragment:
        raise SettingsError(f"--metrics-source prometheus={display_url(url)!r}: no query string in the URL")
    path = parts.path.rstrip("/")
    if path.endswith("/api/v1"):
        path = path[: -len("/api/v1")]
    if interval is not None and not interval > 0:
        raise SettingsError(f"--metrics-source-interval {interval!r}: expected a positive duration (e.g. 15s)")
    return PrometheusConfig(
        url=urlunsplit((parts.scheme, parts.netloc, path, "", "")),
        token=token or None,
        scrape_interval=float(interval) if interval else None,
    )


@dataclass(frozen=True)
class DashboardConfig:
    host: str = "127.0.0.1"
    port: int = 8050
    collector: str | None = None  # base URL
    proxies: tuple[ProxySource, ...] = ()
    read_token: str | None = None
    # Sent by this server (never the page) with state changes: runs, cancel. Also what a
    # browser must present for them once set (see actions.py).
    admin_token: str | None = None
    playground_key: str | None = None  # the API key the playground sends through the proxy
    insecure: bool = False
    timeout: float = 3.0  # seconds for each read of the collector or a proxy
    allowed_hosts: frozenset[str] = frozenset()  # --allowed-host: names besides localhost, the bind address, IPs
    # --live: one merged live feed (a collector with --live-redis) the Live page follows
    # instead of each --proxy's; the proxies stay for the Playground, cancel and detail.
    live: ProxySource | None = None
    prometheus: PrometheusConfig | None = None  # --metrics-source prometheus=URL (None: the collector)

    def __post_init__(self) -> None:
        names = [p.name for p in self.proxies]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SettingsError(
                f"--proxy: name(s) given twice: {', '.join(dupes)} (use VARIANT=URL to tell them apart)"
            )

    @property
    def open_access(self) -> bool:
        """No token needed to open the dashboard: loopback bind, or --insecure."""
        return self.insecure or is_loopback_host(self.host)

    @property
    def has_overview(self) -> bool:
        """The Overview has a source: the collector or a Prometheus."""
        return self.collector is not None or self.prometheus is not None

    @property
    def origin(self) -> str:
        """The origin the proxies and the collector must allow (``--allowed-origin``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def policy(self) -> AccessPolicy:
        """The dashboard's case of the one access policy (``tokentail.access``): every path is
        checked; Dash's callback POSTs are reads, ``/_tt/admin`` presents the admin token in its
        body, every other POST (runs, cancel, playground) is a state change."""
        return AccessPolicy(
            bind_host=self.host,
            read_token=self.read_token,
            admin_token=self.admin_token,
            insecure=self.insecure,
            allowed_hosts=self.allowed_hosts,
            protected_prefixes=("/",),
            read_post_prefixes=("/_dash-",),
            unlock_paths=frozenset({"/_tt/admin"}),
        )

    @property
    def source_origins(self) -> tuple[str, ...]:
        """The origins the page connects to (live feeds, collector events): its CSP's connect-src."""
        urls = [p.url for p in self.proxies] + [u for u in (self.collector, self.live and self.live.url) if u]
        out: list[str] = []
        for url in urls:
            parts = urlsplit(url)
            origin = f"{parts.scheme}://{parts.netloc}"
            if origin not in out:
                out.append(origin)
        return tuple(out)

    @classmethod
    def from_settings(cls, s: Mapping[str, Any]) -> DashboardConfig:
        collector = _base_url(s["collector"], "--collector") if s.get("collector") else None
        live = ProxySource(name="live", url=_base_url(s["live"], "--live")) if s.get("live") else None
        return cls(
            host=s["host"],
            port=s["port"],
            collector=collector,
            proxies=tuple(parse_proxy(p) for p in (s.get("proxy") or [])),
            read_token=s.get("read_token") or None,
            admin_token=s.get("admin_token") or None,
            playground_key=s.get("playground_key") or None,
            insecure=bool(s.get("insecure")),
            allowed_hosts=parse_hosts(s.get("allowed_host") or ()),
            live=live,
            prometheus=parse_metrics_source(
                s.get("metrics_source"), s.get("metrics_source_token"), s.get("metrics_source_interval")
            ),
        )
