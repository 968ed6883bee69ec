"""`tokentail routes check MODEL`: offline, the proxy's way of loading routes, exit codes."""

from __future__ import annotations

import json

import pytest

from tokentail import cli

CONFIG = """
[proxy]
upstream = "https://api.openai.com/v1"

[[proxy.routes]]
name = "claude"
prefix = "claude-"
upstream = "https://api.anthropic.com/v1"
model = "claude-sonnet-4-5"
"""


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.delenv("TOKENTAIL_PROXY_ROUTES", raising=False)
    monkeypatch.delenv("TOKENTAIL_PROXY_UPSTREAM", raising=False)
    monkeypatch.delenv("TOKENTAIL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "t.toml"
    path.write_text(CONFIG)
    return path


def test_check_prefix_route(config, capsys):
    assert cli.main(["routes", "--config", str(config), "check", "claude-3-haiku"]) == 0
    out = capsys.readouterr().out
    assert "claude-3-haiku -> route 'claude': longest prefix 'claude-' of route 'claude'" in out
    assert "https://api.anthropic.com/v1" in out and "claude-sonnet-4-5" in out


def test_config_after_the_model(config, capsys):
    assert cli.main(["routes", "check", "claude-x", "--config", str(config)]) == 0
    assert "route 'claude'" in capsys.readouterr().out


def test_check_default_as_json(config, capsys):
    assert cli.main(["routes", "--config", str(config), "check", "gpt-4o", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["route"] is None and got["match"] == "default" and got["upstream"] == "https://api.openai.com/v1"


def test_bad_config_is_one_line_and_exit_2(config, capsys):
    config.write_text(CONFIG + '\n[[proxy.routes]]\nname = "x"\nmatch = "m"\n')
    assert cli.main(["routes", "--config", str(config), "check", "m"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("tokentail routes: error: route 'x'")


def test_missing_config_and_missing_upstream(tmp_path, config, capsys):
    assert cli.main(["routes", "--config", str(tmp_path / "nope.toml"), "check", "m"]) == 2
    assert "config file not found" in capsys.readouterr().err
    config.write_text("")
    assert cli.main(["routes", "--config", str(config), "check", "m"]) == 2
    assert "no default upstream" in capsys.readouterr().err
    assert cli.main(["routes", "--config", str(config), "check", "m", "--upstream", "http://127.0.0.1:1/v1"]) == 0
