"""Where the Overview's numbers come from: the collector (``Reader``) or a Prometheus API.

Both answer ``metrics(range, by, model)`` with ``/api/metrics``'s JSON and ``status()``
with ``/api/status``'s; ``for_config`` picks one, once, and the Overview never asks which.
``PrometheusSource`` is thin: the PromQL is in ``promql``, the shaping of the answers in
``promql_answers`` (both pure); here
are the HTTP POSTs to ``/api/v1/query_range`` and ``/api/v1/query`` (form-encoded, so a
long expression never meets a URL limit), with basic auth from the URL's user info or a
bearer token, sent by this server only (the page never sees the URL, its credentials or
the token). Any failure is a ``SourceError`` whose message names the URL without them.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import promql, promql_answers
from .config import DashboardConfig, PrometheusConfig, display_url
from .queries import Reader, SourceError

__all__ = ["MetricsSource", "PrometheusSource", "for_config", "post_form"]

INTERVAL_TTL_S = 300.0
_MAX_BODY = 32 << 20  # a 7-day range by 50 models is a few MiB
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback is common


class MetricsSource(Protocol):
    """What the Overview reads (``queries.Reader`` is the collector's)."""

    def metrics(self, rng: str, by: str = "variant", model: str | None = None) -> dict[str, Any]: ...

    def status(self) -> dict[str, Any]: ...


def for_config(config: DashboardConfig, reader: Reader) -> MetricsSource:
    """The configured source of the Overview: Prometheus when given, else the collector."""
    if config.prometheus is not None:
        return PrometheusSource(config.prometheus)
    return reader


def _auth_header(cfg: PrometheusConfig) -> str | None:
    if cfg.token:
        return f"Bearer {cfg.token}"
    parts = urllib.parse.urlsplit(cfg.url)
    if parts.username is None:
        return None
    user = urllib.parse.unquote(parts.username)
    password = urllib.parse.unquote(parts.password or "")
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _plain_url(url: str) -> str:
    """``url`` without its user info (urllib would try to resolve ``user:pass@host``)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def post_form(url: str, form: dict[str, str], *, auth: str | None, timeout: float) -> Any:
    """POST ``form`` to ``url``; the JSON answer, also of a 4xx/5xx (Prometheus explains
    errors in JSON); ``SourceError`` with a short reason when there is none."""
    shown = display_url(url)
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/x-www-form-urlencoded",
        "User-Agent": "tokentail-dashboard",
    }
    if auth:
        headers["Authorization"] = auth
    data = urllib.parse.urlencode(form).encode()
    status = None
    try:
        with _OPENER.open(urllib.request.Request(url, data=data, headers=headers), timeout=timeout) as resp:
            body = resp.read(_MAX_BODY + 1)
    except urllib.error.HTTPError as exc:
        status = exc.code
        try:
            body = exc.read(65536)
        except OSError:
            body = b""
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        text = str(getattr(reason, "strerror", None) or reason).strip() or type(reason).__name__
        raise SourceError(f"{shown} is unreachable ({text.splitlines()[0][:160]})") from None
    if len(body) > _MAX_BODY:
        raise SourceError(f"{shown} answered more than {_MAX_BODY >> 20} MiB")
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if status is not None and not (isinstance(answer, dict) and answer.get("status") == "error"):
        raise SourceError(f"{shown} answered {status}", status=status)
    if answer is None:
        raise SourceError(f"{shown} did not answer JSON", status=status)
    return answer


@dataclass
class PrometheusSource:
    """The Overview from a Prometheus-compatible HTTP API (Prometheus, Mimir, Thanos, VictoriaMetrics)."""

    config: PrometheusConfig
    post: Callable[..., Any] = field(default=post_form)  # tests may record the calls
    clock: Callable[[], float] = field(default=time.time)
    _interval: tuple[float, float] | None = field(default=None, init=False, repr=False)  # (seconds, read at)

    def scrape_interval(self) -> float:
        """The configured interval, else the one the data show (read again every 5 minutes)."""
        if self.config.scrape_interval:
            return self.config.scrape_interval
        now = self.clock()
        if self._interval is None or now - self._interval[1] > INTERVAL_TTL_S:
            answer = self._ask("/api/v1/query", {"query": promql.INTERVAL_PROBE, "time": f"{now:.3f}"})
            seen = promql_answers.scrape_interval_from(answer)
            # Nothing scraped yet (a fresh fleet): the default, and ask again in half a minute.
            self._interval = (seen, now) if seen else (promql.DEFAULT_SCRAPE_INTERVAL, now - INTERVAL_TTL_S + 30)
        return self._interval[0]

    def _ask(self, path: str, form: dict[str, str]) -> Any:
        url = _plain_url(self.config.url) + path
        return self.post(url, form, auth=_auth_header(self.config), timeout=self.config.timeout)

    def _shaped(self, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        try:
            return fn()
        except promql.PromQLError as exc:
            raise SourceError(f"Prometheus at {display_url(self.config.url)}: {exc}") from None

    def metrics(self, rng: str, by: str = "variant", model: str | None = None) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            interval = self.scrape_interval()
            w = promql.plan(rng, self.clock(), interval)
            series = _EMPTY_MATRIX  # a 5m range 3 s ago: no bucket has ended yet
            if w.complete > 0:
                series = self._ask(
                    "/api/v1/query_range",
                    {
                        "query": promql.range_query(w, by, model),
                        "start": f"{w.eval_start:.3f}",
                        "end": f"{w.eval_end:.3f}",
                        "step": promql.duration(w.step),
                    },
                )
            summary = self._ask("/api/v1/query", {"query": promql.summary_query(w, by, model), "time": f"{w.now:.3f}"})
            return promql_answers.shape(w, by, model, series, summary)

        return self._shaped(run)

    def status(self) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            answer = self._ask("/api/v1/query", {"query": promql.status_query(), "time": f"{self.clock():.3f}"})
            return promql_answers.shape_status(answer)

        return self._shaped(run)


_EMPTY_MATRIX = {"status": "success", "data": {"resultType": "matrix", "result": []}}
