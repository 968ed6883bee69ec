"""Moved to ``tests/helpers/fakes.py``; this shim keeps older imports working."""

from tests.helpers.fakes import (
    DURATION_BUCKETS,
    TPS_BUCKETS,
    Clock,
    FakeProxy,
    ProxyMetrics,
    closed_port_url,
    free_port,
    make_config,
)

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
