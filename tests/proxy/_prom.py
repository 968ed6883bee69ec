"""Moved to ``tests/helpers/prom.py``; this shim keeps older imports working."""

from tests.helpers.prom import (
    REQUIRE_ENV,
    PrometheusServer,
    free_port,
    prometheus_bin,
    promtool,
    promtool_check,
)

__all__ = ["REQUIRE_ENV", "PrometheusServer", "free_port", "prometheus_bin", "promtool", "promtool_check"]
