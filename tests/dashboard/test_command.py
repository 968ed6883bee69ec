"""`tokentail dashboard` options and the resolved config (dashboard/command.py, config.py)."""

from __future__ import annotations

import pytest

from tokentail.dashboard import command
from tokentail.dashboard.config import DashboardConfig, display_url, parse_proxy
from tokentail.settings import SettingsError, resolve


def settings(args=None, env=None):
    return resolve("dashboard", command.OPTIONS, args or {}, env=env or {}, file_config={})


def test_proxy_argument_forms():
    p = parse_proxy("canary=http://127.0.0.1:8789")
    assert (p.name, p.url, p.variant) == ("canary", "http://127.0.0.1:8789", "canary")
    assert p.live_url == "http://127.0.0.1:8789/api/live" and p.openai_base == "http://127.0.0.1:8789/v1"
    # Pasted OpenAI base URLs and live-feed URLs mean the proxy itself.
    assert parse_proxy("http://10.0.0.5:8787/v1/").url == "http://10.0.0.5:8787"
    assert parse_proxy("http://h:1/prefix/api/live").url == "http://h:1/prefix"
    assert parse_proxy("http://10.0.0.5:8787").name == "10.0.0.5:8787"
    for bad in ("ftp://x", "not a url", "http://user:pw@h:1", "http://h:1/?token=abc"):
        with pytest.raises(SettingsError):
            parse_proxy(bad)


def test_settings_from_flags_and_environment():
    s = settings(
        {
            "proxy": ["production=http://127.0.0.1:8787", "canary=http://127.0.0.1:8789"],
            "collector": "http://127.0.0.1:8788/",
        }
    )
    cfg = DashboardConfig.from_settings(s)
    assert [p.name for p in cfg.proxies] == ["production", "canary"]
    assert cfg.collector == "http://127.0.0.1:8788"
    assert cfg.origin == "http://127.0.0.1:8050" and cfg.open_access
    env = {"TOKENTAIL_DASHBOARD_PROXY": "a=http://h:1,b=http://h:2", "TOKENTAIL_READ_TOKEN": "tok-XYZ123"}
    cfg = DashboardConfig.from_settings(settings(env=env))
    assert [p.url for p in cfg.proxies] == ["http://h:1", "http://h:2"]
    assert cfg.read_token == "tok-XYZ123"
    assert "tok-XYZ123" not in repr(settings(env=env))  # masked


def test_duplicate_names_and_off_loopback_need_a_token():
    with pytest.raises(SettingsError, match="given twice"):
        DashboardConfig.from_settings(settings({"proxy": ["http://h:1", "http://h:1/v1"]}))
    with pytest.raises(SettingsError, match="TOKENTAIL_READ_TOKEN"):
        command.main(settings({"host": "0.0.0.0"}))
    assert not DashboardConfig(host="0.0.0.0").open_access
    assert DashboardConfig(host="0.0.0.0", insecure=True).open_access


def test_display_url_hides_credentials_and_query():
    assert display_url("http://u:p@h:1/x?token=t#f") == "http://h:1/x"


def test_a_taken_port_is_one_line_and_exit_1(capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert command.main(settings({"port": str(port)})) == 1
    assert capsys.readouterr().out.strip() == (
        f"tokentail: error: dashboard: port {port} on 127.0.0.1 is already in use (choose another with --port)"
    )


def test_admin_token_and_playground_key_come_from_the_environment_masked():
    env = {"TOKENTAIL_ADMIN_TOKEN": "adm-XYZ", "TOKENTAIL_DASHBOARD_PLAYGROUND_KEY": "sk-play-XYZ"}
    s = settings(env=env)
    cfg = DashboardConfig.from_settings(s)
    assert cfg.admin_token == "adm-XYZ" and cfg.playground_key == "sk-play-XYZ"
    assert "adm-XYZ" not in repr(s) and "sk-play-XYZ" not in repr(s)
    assert DashboardConfig.from_settings(settings()).admin_token is None


def test_live_points_the_live_page_at_one_merged_feed():
    from tokentail.dashboard.app import content_security_policy, page_config

    s = settings(
        {
            "proxy": ["http://127.0.0.1:8787"],
            "collector": "http://127.0.0.1:8788",
            "live": "http://127.0.0.1:8788/api/live",
        }
    )
    cfg = DashboardConfig.from_settings(s)
    assert cfg.live is not None and cfg.live.url == "http://127.0.0.1:8788"
    page = page_config(cfg)
    assert page["live"]["live"] == "http://127.0.0.1:8788/api/live"
    assert [p["live"] for p in page["proxies"]] == ["http://127.0.0.1:8787/api/live"]  # kept for the Playground
    # One origin for the collector and the merged feed: nothing added twice to the CSP.
    assert cfg.source_origins == ("http://127.0.0.1:8787", "http://127.0.0.1:8788")
    cfg = DashboardConfig.from_settings(settings({"live": "http://10.1.2.3:8788"}))
    assert "http://10.1.2.3:8788" in content_security_policy(cfg, [])
    assert page_config(DashboardConfig.from_settings(settings()))["live"] is None
    env = {"TOKENTAIL_DASHBOARD_LIVE": "http://h:9"}
    assert DashboardConfig.from_settings(settings(env=env)).live.live_url == "http://h:9/api/live"
    for bad in ("redis://h:6379", "http://u:pw@h:1", "http://h:1/?token=x"):
        with pytest.raises(SettingsError, match="--live"):
            DashboardConfig.from_settings(settings({"live": bad}))
