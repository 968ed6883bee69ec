"""Option resolution: flag > environment > config file > default, with clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tokentail import settings as st
from tokentail.proxy.command import OPTIONS as PROXY_OPTIONS
from tokentail.proxy.command import validate_upstream

OPTS = [
    st.Option("port", "p", 8787, st.port),
    st.Option("target", "t", [], multiple=True),
    st.Option("inject", "i", True, st.parse_bool),
    st.Option("timeout", "d", 300.0, st.parse_duration),
    st.Option("token", "secret", None, secret=True, env_aliases=("TOKENTAIL_READ_TOKEN",)),
    st.Option("mode", "m", "a", choices=("a", "b")),
]


def test_precedence_flag_env_file_default():
    file = {"proxy": {"port": 1111, "timeout": "5s"}}
    env = {"TOKENTAIL_PROXY_PORT": "2222"}
    s = st.resolve("proxy", OPTS, {"port": "3333"}, env, file)
    assert s.port == 3333 and s.source("port") == "flag"
    s = st.resolve("proxy", OPTS, {}, env, file)
    assert s.port == 2222 and s.source("port") == "env TOKENTAIL_PROXY_PORT"
    s = st.resolve("proxy", OPTS, {}, {}, file)
    assert s.port == 1111 and s.timeout == 5.0 and s.source("port") == "config file"
    s = st.resolve("proxy", OPTS, {}, {}, {})
    assert s.port == 8787 and s.inject is True and s.target == [] and s.source("port") == "default"


def test_repeatable_options_take_commas_from_the_environment():
    s = st.resolve("proxy", OPTS, {}, {"TOKENTAIL_PROXY_TARGET": "a=http://x, b=http://y"}, {})
    assert s.target == ["a=http://x", "b=http://y"]
    s = st.resolve("proxy", OPTS, {"target": ["only"]}, {"TOKENTAIL_PROXY_TARGET": "a,b"}, {})
    assert s.target == ["only"]


def test_aliases_and_masking():
    s = st.resolve("proxy", OPTS, {}, {"TOKENTAIL_READ_TOKEN": "rt-zq93"}, {})
    assert s.token == "rt-zq93" and s.masked()["token"] == "****" and "rt-zq93" not in repr(s)


@pytest.mark.parametrize(
    "args,env,file,fragment",
    [
        ({"port": "99999"}, {}, {}, "port out of range"),
        ({}, {"TOKENTAIL_PROXY_INJECT": "maybe"}, {}, "not a boolean"),
        ({}, {}, {"proxy": {"mode": "c"}}, "not one of a, b"),
        ({}, {}, {"proxy": {"nope": 1}}, "unknown option(s): nope"),
        ({}, {"TOKENTAIL_PROXY_TIMEOUT": "soon"}, {}, "--timeout (environment)"),
    ],
)
def test_bad_values_are_one_clear_error(args, env, file, fragment):
    with pytest.raises(st.SettingsError) as exc:
        st.resolve("proxy", OPTS, args, env, file)
    assert fragment in str(exc.value)


def test_settings_are_frozen():
    s = st.resolve("proxy", OPTS, {}, {}, {})
    with pytest.raises(AttributeError):
        s.port = 1
    assert s.replace(port=1).port == 1 and s.port == 8787


@pytest.mark.parametrize("text,expected", [("64MiB", 64 << 20), ("512k", 512 << 10), ("1000", 1000)])
def test_sizes(text, expected):
    assert st.parse_size(text) == expected


@pytest.mark.parametrize("text,expected", [("250ms", 0.25), ("5s", 5), ("2m", 120), ("7d", 604800), ("1.5", 1.5)])
def test_durations(text, expected):
    assert st.parse_duration(text) == expected


def test_config_file_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[proxy\nport = 1")
    with pytest.raises(st.SettingsError, match="not valid TOML"):
        st.load_config_file(str(bad), {})
    with pytest.raises(st.SettingsError, match="not found"):
        st.load_config_file(str(tmp_path / "missing.toml"), {})
    good = tmp_path / "good.toml"
    good.write_text('[proxy]\nupstream = "http://127.0.0.1:1/v1"\n')
    cfg, path = st.load_config_file(None, {"TOKENTAIL_CONFIG": str(good)})
    assert cfg["proxy"]["upstream"] == "http://127.0.0.1:1/v1" and path == str(good)


@pytest.mark.parametrize(
    "url,ok",
    [
        ("https://api.openai.com/v1", True),
        ("http://127.0.0.1:8000/v1/", True),
        ("ftp://x/v1", False),
        ("not a url", False),
        ("http://x/v1?key=1", False),
        ("", False),
    ],
)
def test_upstream_validation(url, ok):
    if ok:
        assert validate_upstream(url) == url.rstrip("/")
    else:
        with pytest.raises(st.SettingsError):
            validate_upstream(url)


def run_cli(*args, env=None):
    import os

    return subprocess.run(
        [sys.executable, "-m", "tokentail", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )


def test_help_documents_every_option_and_its_environment_variable():
    out = run_cli("proxy", "--help").stdout
    for opt in PROXY_OPTIONS:
        assert opt.flag in out and opt.env_name("proxy") in out.replace("\n", "").replace(" ", "")
    top = run_cli("--help").stdout
    for cmd in ("proxy", "simulate", "up", "config"):
        assert cmd in top


def test_cli_errors_are_one_line_not_a_traceback():
    r = run_cli("proxy")
    assert r.returncode == 2 and "--upstream is required" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("proxy", "--upstream", "http://127.0.0.1:1/v1", env={"TOKENTAIL_PROXY_PORT": "x"})
    assert r.returncode == 2 and "--port (environment)" in r.stderr and "Traceback" not in r.stderr


def test_config_command_masks_secrets(tmp_path):
    cfg = tmp_path / "t.toml"
    cfg.write_text('[proxy]\nupstream = "http://127.0.0.1:9/v1"\nread_token = "super-secret-rt"\n')
    r = run_cli("config", "--config", str(cfg), "--format", "json", env={"TOKENTAIL_PROXY_PORT": "9001"})
    assert r.returncode == 0, r.stderr
    assert "super-secret-rt" not in r.stdout and '"****"' in r.stdout
    import json

    data = json.loads(r.stdout)["commands"]["proxy"]
    assert data["port"] == {"value": 9001, "source": "env TOKENTAIL_PROXY_PORT"}
    assert data["upstream"]["source"] == "config file"


def test_boolean_options_are_flags_and_read_false_from_the_environment():
    import argparse

    opts = [st.Option("demo", "d", False, st.parse_bool), st.Option("fast", "f", True, bool)]
    parser = argparse.ArgumentParser()
    st.add_options(parser, "up", opts)
    s = st.resolve("up", opts, parser.parse_args(["--demo", "--no-fast"]), {}, {})
    assert (s.demo, s.fast) == (True, False)
    s = st.resolve("up", opts, parser.parse_args([]), {"TOKENTAIL_UP_DEMO": "false", "TOKENTAIL_UP_FAST": "0"}, {})
    assert (s.demo, s.fast) == (False, False)
    s = st.resolve("up", opts, {}, {}, {"up": {"demo": True}})
    assert s.demo is True
    with pytest.raises(st.SettingsError, match="not a boolean"):
        st.resolve("up", opts, {}, {}, {"up": {"demo": 3}})


def test_configuration_reference_is_up_to_date():
    from pathlib import Path

    from tokentail.config_cmd import reference

    doc = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
    assert doc.read_text() == reference() + "\n", "regenerate: tokentail config --reference > docs/configuration.md"
