"""Shared fixtures: the simulator as upstream, the proxy in front of it, on loopback."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from tokentail.proxy import command as proxy_command
from tokentail.serving import SafeAccessLogger, access_log
from tokentail.settings import resolve
from tokentail.simulator.app import SimConfig
from tokentail.simulator.app import create_app as create_sim_app

# Our servers log accesses the way `tokentail` runs them (no query strings).
SERVER_KWARGS = {"access_log_class": SafeAccessLogger, "access_log": access_log}


def require(env_var: str, what: str, available: bool) -> None:
    """Skip when ``what`` is missing, unless ``env_var``=1 (CI sets it) makes that a failure."""
    if available:
        return
    if os.environ.get(env_var) == "1":
        pytest.fail(f"{what} is required here ({env_var}=1) but missing")
    pytest.skip(f"{what} not installed (set {env_var}=1 to make this a failure)")


def require_binary(name: str, env_var: str) -> str:
    path = shutil.which(name)
    require(env_var, f"the `{name}` binary", path is not None)
    return path  # type: ignore[return-value]


def proxy_settings(upstream: str, **overrides):
    """Proxy settings as the CLI would resolve them, with test overrides (flag names)."""
    s = resolve("proxy", proxy_command.OPTIONS, {"upstream": upstream}, env={}, file_config={})
    return s.replace(**overrides) if overrides else s


@dataclass
class Stack:
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


@pytest.fixture
def sim_config() -> SimConfig:
    """Fast by default; tests slow it down per request with x-sim-* headers."""
    return SimConfig(tokens_per_second=0, ttft=0.0, length=20, seed=7)


@pytest.fixture
async def sim_server(sim_config):
    server = TestServer(create_sim_app(sim_config), host="127.0.0.1")
    await server.start_server(**SERVER_KWARGS)
    yield server
    await server.close()


@pytest.fixture
def proxy_overrides() -> dict:
    """Override in a test module to change proxy settings."""
    return {}


@pytest.fixture
async def stack(sim_server, proxy_overrides):
    registry = CollectorRegistry()
    server = await start_proxy(str(sim_server.make_url("/v1")), registry, **proxy_overrides)
    yield Stack(sim=sim_server, proxy=server, app=server.app, registry=registry)
    await server.close()


async def start_proxy(upstream: str, registry: CollectorRegistry | None = None, **overrides) -> TestServer:
    """A proxy in front of ``upstream`` on a loopback port; caller closes it."""
    from tokentail.proxy.app import app_from_settings

    app = app_from_settings(proxy_settings(upstream, **overrides), registry=registry or CollectorRegistry())
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(**SERVER_KWARGS)
    return server
