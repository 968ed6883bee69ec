"""Fake proxies for collector tests: real ``prometheus_client`` exposition, values the test sets.

A ``FakeProxy`` declares the ``tokentail_*`` series of DESIGN.md on its own
``CollectorRegistry`` (so the collector's parser meets real output), serves them on
``/metrics``, and can misbehave on demand: answer 500, hang, send garbage or a huge
body. ``restart()`` replaces the registry, as a proxy restart resets its counters.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tests.helpers import closed_port_url, free_port

__all__ = [
    "DURATION_BUCKETS",
    "TPS_BUCKETS",
    "Clock",
    "FakeProxy",
    "ProxyMetrics",
    "closed_port_url",
    "free_port",
    "make_config",
]

DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TPS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


class ProxyMetrics:
    """The proxy's tokentail_* series on a fresh registry."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("tokentail_requests", "r", ["model", "endpoint", "status_class", "stream"], registry=r)
        self.tokens = Counter("tokentail_tokens", "t", ["model", "type"], registry=r)
        self.cached = Counter("tokentail_cached_input_tokens", "c", ["model"], registry=r)
        self.duration = Histogram(
            "tokentail_request_duration_seconds", "d", ["model", "endpoint"], buckets=DURATION_BUCKETS, registry=r
        )
        self.ttft = Histogram(
            "tokentail_time_to_first_token_seconds", "f", ["model"], buckets=DURATION_BUCKETS, registry=r
        )
        self.tps = Histogram("tokentail_output_tokens_per_second", "s", ["model"], buckets=TPS_BUCKETS, registry=r)
        self.in_flight = Gauge("tokentail_in_flight_requests", "i", registry=r)
        self.upstream_errors = Counter("tokentail_upstream_errors", "u", ["reason"], registry=r)
        self.dropped = Counter("tokentail_telemetry_dropped", "x", ["sink"], registry=r)
        # Something the collector must ignore.
        Counter("gen_ai_client_whatever", "g", ["gen_ai_request_model"], registry=r).labels("m").inc()

    def request(
        self,
        model: str = "gpt-4o",
        *,
        status: str = "2xx",
        duration: float = 0.5,
        ttft: float | None = 0.1,
        tps: float | None = 40.0,
        tokens_in: int = 10,
        tokens_out: int = 20,
        cached: int = 0,
        endpoint: str = "/chat/completions",
        stream: bool = True,
    ) -> None:
        """Record one finished request the way the proxy would."""
        self.requests.labels(model, endpoint, status, str(stream).lower()).inc()
        self.tokens.labels(model, "input").inc(tokens_in)
        self.tokens.labels(model, "output").inc(tokens_out)
        if cached:
            self.cached.labels(model).inc(cached)
        self.duration.labels(model, endpoint).observe(duration)
        if ttft is not None:
            self.ttft.labels(model).observe(ttft)
        if tps is not None:
            self.tps.labels(model).observe(tps)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class FakeProxy:
    """A fake proxy's /metrics on a loopback port. ``mode``: ok | 500 | hang | garbage | huge | empty."""

    def __init__(self) -> None:
        self.metrics = ProxyMetrics()
        self.mode = "ok"
        self.scrapes = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    def restart(self) -> None:
        """Counters back to zero, as after a proxy restart."""
        self.metrics = ProxyMetrics()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.scrapes += 1
        if self.mode == "500":
            return web.Response(status=500, text="internal error")
        if self.mode == "hang":
            await asyncio.sleep(30)  # the scenario: a target that never answers
        if self.mode == "garbage":
            return web.Response(text="<html><body>Welcome to nginx!</body></html>", content_type="text/html")
        if self.mode == "empty":
            return web.Response(text="", content_type="text/plain")
        if self.mode == "huge":
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})  # no Content-Length: streamed
            await resp.prepare(request)
            line = b"tokentail_in_flight_requests 1\n" * 1000
            for _ in range(2000):  # ~30 MB unless the reader stops first
                try:
                    await resp.write(line)
                except ConnectionError:
                    break
            return resp
        return web.Response(body=self.metrics.exposition(), content_type="text/plain", charset="utf-8")

    async def start(self) -> FakeProxy:
        app = web.Application()
        app.router.add_get("/metrics", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def make_config(tmp_path, targets: list[str] = (), **overrides: Any):
    from tokentail.collector.config import CollectorConfig, parse_target

    cfg = CollectorConfig(
        db=tmp_path / "t.duckdb",
        targets=tuple(parse_target(t) for t in targets),
        scrape_interval=5.0,
        scrape_timeout=1.0,
    )
    return cfg.with_(**overrides) if overrides else cfg


class Clock:
    """A settable clock for the collector's ``clock=`` parameter."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t
