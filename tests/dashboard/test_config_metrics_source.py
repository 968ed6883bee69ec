"""``--metrics-source``: the collector by default, or a Prometheus URL (config.py, one aspect)."""

from __future__ import annotations

import pytest

from tokentail.dashboard.command import OPTIONS
from tokentail.dashboard.config import DashboardConfig, PrometheusConfig, parse_metrics_source
from tokentail.settings import SettingsError, resolve


def settings(**flags: str):
    return resolve("dashboard", OPTIONS, flags, env={}, file_config={})


def test_the_default_is_the_collector():
    assert parse_metrics_source(None) is None and parse_metrics_source("collector") is None
    cfg = DashboardConfig.from_settings(settings(collector="http://127.0.0.1:8788"))
    assert cfg.prometheus is None and cfg.has_overview
    assert not DashboardConfig().has_overview


@pytest.mark.parametrize(
    "raw, url",
    [
        ("prometheus=http://127.0.0.1:9090", "http://127.0.0.1:9090"),
        ("prometheus=http://127.0.0.1:9090/", "http://127.0.0.1:9090"),
        ("prometheus=https://mimir.example/prometheus/api/v1", "https://mimir.example/prometheus"),
        ("prometheus=http://u:p%40ss@[::1]:9090/", "http://u:p%40ss@[::1]:9090"),
    ],
)
def test_prometheus_urls(raw, url):
    cfg = parse_metrics_source(raw, "tok", 5.0)
    assert cfg == PrometheusConfig(url=url, token="tok", scrape_interval=5.0)
    assert parse_metrics_source(raw).scrape_interval is None  # read from the data


@pytest.mark.parametrize(
    "raw, message",
    [
        ("graphite=http://x", "expected one of collector, prometheus=URL"),
        ("prometheus", "expected one of"),
        ("prometheus=ftp://x", "expected http(s)://HOST:PORT"),
        ("prometheus=http://x:99999", "Port"),
        ("prometheus=http://x/?token=abc", "no query string"),
    ],
)
def test_bad_sources_are_one_line(raw, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        parse_metrics_source(raw)
    assert "abc" not in str(err.value)


def test_a_password_in_a_bad_source_is_not_repeated():
    with pytest.raises(SettingsError) as err:
        parse_metrics_source("prometheus=ftp://user:hunter2@x")
    assert "hunter2" not in str(err.value)


def test_options_from_the_command_line():
    s = settings(
        metrics_source="prometheus=http://127.0.0.1:9090", metrics_source_token="t0k", metrics_source_interval="5s"
    )
    cfg = DashboardConfig.from_settings(s)
    assert cfg.prometheus == PrometheusConfig("http://127.0.0.1:9090", token="t0k", scrape_interval=5.0)
    assert cfg.has_overview and cfg.collector is None
    assert cfg.source_origins == ()  # the page never connects to Prometheus (no CSP entry)
    with pytest.raises(SettingsError, match="positive"):
        DashboardConfig.from_settings(settings(metrics_source="prometheus=http://x", metrics_source_interval="0"))
