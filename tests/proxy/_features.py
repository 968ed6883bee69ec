"""Helpers for the routing, sessions, cost, attribution and cancel tests: a proxy with an
in-memory span exporter and its own environment, simulators, and an SSE reader."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest

from tests.conftest import SERVER_KWARGS, proxy_settings
from tokentail.simulator.app import SimConfig
from tokentail.simulator.app import create_app as create_sim_app


@dataclass
class Proxy:
    server: TestServer
    exporter: InMemorySpanExporter
    registry: CollectorRegistry
    env: dict[str, str] = field(default_factory=dict)

    @property
    def app(self) -> web.Application:
        return self.server.app

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    def spans(self) -> list[Any]:
        return list(self.exporter.get_finished_spans())

    def metrics(self) -> str:
        return generate_latest(self.registry).decode()

    async def close(self) -> None:
        await self.server.close()


async def start_proxy(
    upstream: str, *, env: dict[str, str] | None = None, remote: str | None = None, **overrides
) -> Proxy:
    """A proxy in front of ``upstream`` with spans in memory; ``remote`` pretends every
    caller comes from that address (for the access rules)."""
    from tokentail.proxy.app import app_from_settings

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = CollectorRegistry()
    env = dict(env or {})
    app = app_from_settings(proxy_settings(upstream, **overrides), registry=registry, tracer_provider=provider, env=env)
    if remote is not None:

        @web.middleware
        async def fake_peer(request: web.Request, handler):
            return await handler(request.clone(remote=remote))

        app.middlewares.insert(0, fake_peer)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(**SERVER_KWARGS)
    return Proxy(server, exporter, registry, env)


async def start_sim(**config) -> TestServer:
    cfg = {"tokens_per_second": 0, "ttft": 0.0, "length": 12, "seed": 3, **config}
    server = TestServer(create_sim_app(SimConfig(**cfg)), host="127.0.0.1")
    await server.start_server(**SERVER_KWARGS)
    return server


async def read_events(resp: aiohttp.ClientResponse, out: list, stop_on: str | None = None, count: int = 1) -> None:
    """Parse an SSE response into (event, data) pairs until ``count`` events named ``stop_on``."""
    ev: dict = {}
    seen = 0
    async for raw in resp.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if "data" in ev:
                out.append((ev.get("event"), json.loads(ev["data"])))
                if stop_on and ev.get("event") == stop_on:
                    seen += 1
                    if seen >= count:
                        return
            ev = {}
        elif not line.startswith(":"):
            k, _, v = line.partition(": ")
            ev[k] = v


async def until(predicate, timeout: float = 3.0, step: float = 0.02) -> None:
    """Wait until ``predicate()`` (sync or async) is true, or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        ok = predicate()
        if asyncio.iscoroutine(ok):
            ok = await ok
        if ok:
            return
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(step)
