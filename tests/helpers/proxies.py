"""A proxy (and the simulator) on loopback for tests: settings as the CLI resolves them,
spans in memory, a fresh ``CollectorRegistry`` each."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest

from tests.helpers import serve
from tokentail.proxy import command as proxy_command
from tokentail.settings import Settings, resolve
from tokentail.simulator.app import SimConfig
from tokentail.simulator.app import create_app as create_sim_app

__all__ = ["Proxy", "Stack", "proxy_settings", "serve", "start_proxy", "start_proxy_server", "start_sim"]


def proxy_settings(upstream: str, **overrides: Any) -> Settings:
    """Proxy settings as the CLI would resolve them, with test overrides (flag names)."""
    s = resolve("proxy", proxy_command.OPTIONS, {"upstream": upstream}, env={}, file_config={})
    return s.replace(**overrides) if overrides else s


@dataclass
class Stack:
    """The ``stack`` fixture: the simulator and a proxy in front of it."""

    sim: TestServer
    proxy: TestServer
    app: web.Application
    registry: CollectorRegistry

    @property
    def sim_url(self) -> str:
        return str(self.sim.make_url("/v1"))

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as base_url to go through the proxy."""
        return str(self.proxy.make_url("/v1"))

    def url(self, path: str) -> str:
        return str(self.proxy.make_url(path))


async def start_proxy_server(upstream: str, registry: CollectorRegistry | None = None, **overrides: Any) -> TestServer:
    """A proxy in front of ``upstream`` on a loopback port; caller closes it."""
    from tokentail.proxy.app import app_from_settings

    app = app_from_settings(proxy_settings(upstream, **overrides), registry=registry or CollectorRegistry())
    return await serve(app)


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
    upstream: str, *, env: dict[str, str] | None = None, remote: str | None = None, **overrides: Any
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
        async def fake_peer(request: web.Request, handler: Any) -> web.StreamResponse:
            return await handler(request.clone(remote=remote))

        app.middlewares.insert(0, fake_peer)
    return Proxy(await serve(app), exporter, registry, env)


async def start_sim(**config: Any) -> TestServer:
    """The simulator, fast and deterministic unless ``config`` says otherwise."""
    cfg = {"tokens_per_second": 0, "ttft": 0.0, "length": 12, "seed": 3, **config}
    return await serve(create_sim_app(SimConfig(**cfg)))
