"""config.py and the collector's options: targets, variants, flags, environment and config file."""

from __future__ import annotations

import pytest

from tokentail.collector.command import OPTIONS
from tokentail.collector.config import CollectorConfig, default_variant, parse_target, strip_url
from tokentail.settings import SettingsError, resolve


@pytest.mark.parametrize(
    "text, variant, url",
    [
        ("http://127.0.0.1:8787", "production", "http://127.0.0.1:8787/metrics"),
        ("http://127.0.0.1:8787/", "production", "http://127.0.0.1:8787/metrics"),
        ("http://127.0.0.1:8787/v1", "production", "http://127.0.0.1:8787/metrics"),
        ("http://127.0.0.1:8787/metrics", "production", "http://127.0.0.1:8787/metrics"),
        ("http://canary-proxy:8787", "canary", "http://canary-proxy:8787/metrics"),
        ("http://proxy.test.internal:8787", "canary", "http://proxy.test.internal:8787/metrics"),
        ("blue=http://canary:8787/prefix", "blue", "http://canary:8787/prefix/metrics"),
        ("http://h:1/metrics?a=b", "production", "http://h:1/metrics?a=b"),
    ],
)
def test_parse_target(text, variant, url):
    t = parse_target(text)
    assert (t.variant, t.url) == (variant, url)
    assert "?" not in t.display


@pytest.mark.parametrize("text", ["ftp://x", "localhost:8787", "v=", "http://h:99999"])
def test_bad_targets(text):
    with pytest.raises(SettingsError):
        parse_target(text)


def test_duplicate_targets_and_helpers():
    with pytest.raises(SettingsError, match="given twice"):
        CollectorConfig(targets=(parse_target("http://a:1"), parse_target("x=http://a:1/metrics")))
    assert default_variant("http://TEST:1") == "canary"
    assert strip_url("https://user:pw@h:8/p?q=1#f") == "https://h:8/p"


def test_defaults():
    cfg = CollectorConfig.from_settings(resolve("collector", OPTIONS, {}, env={}, file_config={}))
    assert (cfg.host, cfg.port, cfg.scrape_interval, cfg.scrape_timeout) == ("127.0.0.1", 8788, 5.0, 2.0)
    assert str(cfg.db) == "tokentail-data/tokentail.duckdb" and cfg.targets == ()
    assert (cfg.retention.metrics_5s, cfg.retention.metrics_1m, cfg.retention.spans) == (86400, 7 * 86400, 7 * 86400)
    assert cfg.read_token is None and cfg.insecure is False


def test_targets_and_durations_from_environment_and_file():
    env = {
        "TOKENTAIL_COLLECTOR_TARGET": "blue=http://a:1, http://canary:2",
        "TOKENTAIL_READ_TOKEN": "rt",
        "TOKENTAIL_COLLECTOR_SCRAPE_INTERVAL": "10s",
        "TOKENTAIL_COLLECTOR_RETENTION_5S": "12h",
    }
    cfg = CollectorConfig.from_settings(resolve("collector", OPTIONS, {}, env=env, file_config={}))
    assert [(t.variant, t.url) for t in cfg.targets] == [
        ("blue", "http://a:1/metrics"),
        ("canary", "http://canary:2/metrics"),
    ]
    assert cfg.scrape_interval == 10.0 and cfg.retention.metrics_5s == 43200 and cfg.read_token == "rt"
    file_config = {"collector": {"target": ["http://f:3"], "spans-max-rows": 10, "max_scrape_bytes": "1MiB"}}
    cfg = CollectorConfig.from_settings(
        resolve("collector", OPTIONS, {"target": ["http://flag:4"]}, env=env, file_config=file_config)
    )
    assert [t.url for t in cfg.targets] == ["http://flag:4/metrics"]  # flag > environment > file
    assert cfg.retention.spans_max_rows == 10 and cfg.max_scrape_bytes == 1 << 20


@pytest.mark.parametrize("raw, expected", [("false", False), ("0", False), ("true", True), ("1", True)])
def test_insecure_from_the_environment_means_what_it_says(raw, expected):
    s = resolve("collector", OPTIONS, {}, env={"TOKENTAIL_COLLECTOR_INSECURE": raw}, file_config={})
    assert CollectorConfig.from_settings(s).insecure is expected


def test_timeout_longer_than_interval_is_refused_unless_it_is_the_default():
    s = resolve("collector", OPTIONS, {"scrape_interval": "1s", "scrape_timeout": "2s"}, env={}, file_config={})
    with pytest.raises(SettingsError, match="scrape-timeout"):
        CollectorConfig.from_settings(s)
    s = resolve("collector", OPTIONS, {"scrape_interval": "0.5s"}, env={}, file_config={})
    assert CollectorConfig.from_settings(s).scrape_timeout == 0.5


def test_public_config_hides_tokens():
    cfg = CollectorConfig(read_token="secret-r", admin_token="secret-a", targets=(parse_target("http://h:1?k=sk"),))
    text = repr(cfg.public())
    assert "secret" not in text and "sk" not in text and cfg.public()["admin_token_set"] is True
