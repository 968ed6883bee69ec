"""Shared fixtures: the simulator as upstream, the proxy in front of it, on loopback.

Helpers live in ``tests/helpers``; the names below stay importable from here for older tests.
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from tests.helpers import SERVER_KWARGS, require, require_binary, serve
from tests.helpers.proxies import Stack, proxy_settings
from tests.helpers.proxies import start_proxy_server as start_proxy
from tokentail.simulator.app import SimConfig
from tokentail.simulator.app import create_app as create_sim_app

__all__ = ["SERVER_KWARGS", "Stack", "proxy_settings", "require", "require_binary", "start_proxy"]


@pytest.fixture
def sim_config() -> SimConfig:
    """Fast by default; tests slow it down per request with x-sim-* headers."""
    return SimConfig(tokens_per_second=0, ttft=0.0, length=20, seed=7)


@pytest.fixture
async def sim_server(sim_config):
    server = await serve(create_sim_app(sim_config))
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
