"""A collector app with a fixed clock and price table, for the runs and search tests."""

from __future__ import annotations

import pytest

from tests.helpers.fakes import Clock, make_config
from tokentail.collector.app import create_app
from tokentail.pricing import PriceTable

__all__ = ["PRICES", "RUNS_T0", "_client", "client", "clock"]

RUNS_T0 = 1_800_000_000.0

PRICES = PriceTable.from_dict(
    {
        "models": {
            "m-cheap": {"input": 1.0, "output": 2.0, "source": "test", "date": "2025-01-01"},
            "m-big": {"input": 10.0, "output": 40.0, "cached_input": 1.0, "source": "test", "date": "2025-01-01"},
        }
    }
)


@pytest.fixture
def clock() -> Clock:
    return Clock(RUNS_T0)


async def _client(aiohttp_client, tmp_path, clock, **cfg):
    app = create_app(make_config(tmp_path, **cfg), scrape=False, maintain=False, clock=clock, prices=PRICES)
    return await aiohttp_client(app)


@pytest.fixture
async def client(aiohttp_client, tmp_path, clock):
    return await _client(aiohttp_client, tmp_path, clock)
