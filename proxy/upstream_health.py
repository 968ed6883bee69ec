"""The upstreams in view: rate-limit headroom and health, per route.

``UpstreamHealth`` is an observer (``on_end``: passive health from traffic) with one more
entry point, ``on_response`` (the relay calls it once per request, at response start, with
the upstream's status and headers: rate-limit headroom, ``ratelimit``). An optional probe
(``upstream_probe``) reports through ``record``. Its gauges live on the proxy's registry:

- ``tokentail_upstream_ratelimit_limit{route,kind}``, ``..._remaining``, ``..._headroom_ratio``
  (remaining / limit), ``..._reset_seconds``; ``tokentail_upstream_retry_after_seconds{route}``
- ``tokentail_upstream_up{route}``: 1 up, 0 down

``route`` is the route's name, or the upstream's host for ``--upstream`` (no route): both come
from configuration, and ``kind`` from the fixed ``ratelimit.KINDS``, so label sets stay bounded.

Health is a sliding window of outcomes per route (``HealthWindow``, pure): a connect error, a
timeout or a 5xx is a failure, anything else that reached the upstream a success.
``failures`` failures in a row within ``window`` seconds mark the upstream down; one success
marks it up again. ``GET /api/upstreams`` shows ``snapshot()``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from . import record as R
from .ratelimit import KINDS, RateLimits, parse_headers
from .record import RequestRecord

__all__ = ["HealthWindow", "UpstreamHealth", "failure_of"]

# Outcomes that say the upstream itself is unwell (a 4xx is the caller's problem, a client
# that leaves or an operator's cancel says nothing about the upstream).
_FAILURE_ERRORS = frozenset({R.ERR_CONNECT, R.ERR_TIMEOUT, R.ERR_DISCONNECT})


def failure_of(rec: RequestRecord) -> str | None:
    """The failure a finished request shows about its upstream, or None (a success, or no verdict)."""
    if rec.error in _FAILURE_ERRORS:
        return rec.error_message or rec.error
    if rec.http_status is not None and rec.http_status >= 500:
        return rec.error_message or f"HTTP {rec.http_status}"
    return None


@dataclass(slots=True)
class _Outcome:
    at: float  # epoch seconds
    error: str | None  # None: a success


class HealthWindow:
    """Recent outcomes of one upstream (pure: times are given)."""

    __slots__ = ("_outcomes", "failures", "last_error", "last_error_at", "last_ok_at", "window")

    def __init__(self, window: float = 60.0, failures: int = 3) -> None:
        self.window = window
        self.failures = failures
        self._outcomes: deque[_Outcome] = deque(maxlen=max(failures, 1))
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_ok_at: float | None = None

    def add(self, at: float, error: str | None) -> None:
        self._outcomes.append(_Outcome(at, error))
        if error is None:
            self.last_ok_at = at
        else:
            self.last_error, self.last_error_at = error, at

    def up(self, now: float) -> bool:
        """Down only while the last ``failures`` outcomes are all failures inside the window."""
        recent = [o for o in self._outcomes if now - o.at <= self.window]
        return not (len(recent) >= self.failures and all(o.error is not None for o in recent))


class UpstreamHealth:
    """Gauges and state per route; see the module docstring. Never raises into the request path."""

    def __init__(
        self,
        registry: CollectorRegistry,
        default_host: str,
        *,
        window: float = 60.0,
        failures: int = 3,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.default_host = default_host
        self._window, self._failures, self._clock = window, failures, clock
        self._health: dict[str, HealthWindow] = {}
        self._hosts: dict[str, str] = {}  # route label -> upstream host (no credentials, no query)
        self._limits: dict[str, RateLimits] = {}
        # ``tokentail_upstream_up`` per label, the gauge child kept: ``record`` runs at the end
        # of every request, and ``labels()`` (validation, a lock) cost more than the rest of it.
        # Labels are the configured routes and the default host: bounded, never removed.
        self._up: dict[str, Any] = {}
        labels = ("route", "kind")
        self.limit = Gauge(
            "tokentail_upstream_ratelimit_limit", "rate limit the upstream reported", labels, registry=registry
        )
        self.remaining = Gauge(
            "tokentail_upstream_ratelimit_remaining", "rate limit left, as last reported", labels, registry=registry
        )
        self.headroom = Gauge(
            "tokentail_upstream_ratelimit_headroom_ratio",
            "remaining / limit, as last reported (0: at the limit)",
            labels,
            registry=registry,
        )
        self.reset = Gauge(
            "tokentail_upstream_ratelimit_reset_seconds",
            "seconds until the limit's window resets, as last reported",
            labels,
            registry=registry,
        )
        self.retry_after = Gauge(
            "tokentail_upstream_retry_after_seconds",
            "the last Retry-After the upstream sent (429/503)",
            ("route",),
            registry=registry,
        )
        self.up_gauge = Gauge(
            "tokentail_upstream_up",
            "1 when the upstream answers (traffic and probes), 0 after repeated connect errors, timeouts or 5xx",
            ("route",),
            registry=registry,
        )
        self.see(default_host, default_host)

    # -- keys -------------------------------------------------------------------------------

    def label_of(self, rec: RequestRecord) -> str:
        return rec.route or self.default_host

    def see(self, label: str, host: str | None) -> None:
        """Make a route known (up, until traffic or a probe says otherwise)."""
        if label not in self._health:
            self._health[label] = HealthWindow(self._window, self._failures)
            self._up[label] = child = self.up_gauge.labels(label)
            child.set(1)
        if host:
            self._hosts[label] = host

    # -- inputs -----------------------------------------------------------------------------

    def on_response(self, rec: RequestRecord, headers: Mapping[str, str]) -> None:
        """Rate limits from the upstream's response headers (once per request, at response start)."""
        try:
            limits = parse_headers(headers, self._clock())
            if limits:
                self._set_limits(self.label_of(rec), limits)
        except Exception:  # never fail a request over a header  # pragma: no cover - parse_headers never raises
            pass

    def on_end(self, rec: RequestRecord) -> None:
        if rec.status == R.CANCELLED or (rec.http_status is None and rec.error not in _FAILURE_ERRORS):
            return  # refused before the upstream was asked (bad path, 413), or the client left: no verdict
        label = self.label_of(rec)
        self.see(label, _host(rec.upstream_url) if rec.route else self.default_host)
        self.record(label, failure_of(rec))

    def record(self, label: str, error: str | None) -> None:
        """One outcome for ``label`` (traffic or a probe); updates ``tokentail_upstream_up``."""
        now = self._clock()
        self.see(label, None)
        h = self._health[label]
        h.add(now, error[:300] if error else None)
        self._up[label].set(1 if h.up(now) else 0)  # made by ``see``

    def _set_limits(self, label: str, limits: RateLimits) -> None:
        known = self._limits.setdefault(label, RateLimits())
        for kind, lim in limits.kinds.items():
            if kind not in KINDS:  # pragma: no cover - the parser only yields KINDS
                continue
            known.kinds[kind] = lim
            if lim.limit is not None:
                self.limit.labels(label, kind).set(lim.limit)
            if lim.remaining is not None:
                self.remaining.labels(label, kind).set(lim.remaining)
            ratio = lim.headroom()
            if ratio is not None:
                self.headroom.labels(label, kind).set(ratio)
            if lim.reset_seconds is not None:
                self.reset.labels(label, kind).set(lim.reset_seconds)
        if limits.retry_after is not None:
            known.retry_after = limits.retry_after
            self.retry_after.labels(label).set(limits.retry_after)

    # -- output -----------------------------------------------------------------------------

    def snapshot(self) -> list[dict[str, Any]]:
        """``GET /api/upstreams``: one row per route seen or configured."""
        now = self._clock()
        rows = []
        for label, h in self._health.items():
            limits = self._limits.get(label)
            rows.append(
                {
                    "route": label,
                    "upstream_host": self._hosts.get(label),
                    "up": h.up(now),
                    "last_error": h.last_error,
                    "last_error_at": h.last_error_at,
                    "last_ok_at": h.last_ok_at,
                    "ratelimit": limits.as_dict() if limits else None,
                }
            )
        return rows


def _host(url: str | None) -> str | None:
    if not url:
        return None
    from yarl import URL

    try:
        return URL(url).host
    except ValueError:
        return None
