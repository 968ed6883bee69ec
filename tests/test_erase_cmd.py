"""``tokentail erase`` against a real collector and a real proxy on loopback: one line per
server, exit codes, the selector checked before anything is sent."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import serve
from tests.helpers.fakes import make_config
from tests.helpers.proxies import start_proxy, start_sim
from tokentail.cli import main as cli_main
from tokentail.collector.app import create_app
from tokentail.erase_cmd import base_url, describe, fan_out


def test_base_url_forms():
    assert base_url("canary=http://127.0.0.1:8789/v1/") == "http://127.0.0.1:8789"
    assert base_url("http://user:pw@host:1/x?y=1") == "http://host:1/x"
    with pytest.raises(Exception, match="expected http"):
        base_url("ftp://x")


def test_a_bad_selector_is_exit_2_before_anything_is_sent(capsys):
    assert cli_main(["erase", "--collector", "http://127.0.0.1:9", "--proxy", ""]) == 2
    assert "name what to erase" in capsys.readouterr().err
    assert cli_main(["erase", "--before", "whenever", "--collector", "http://127.0.0.1:9"]) == 2


async def test_erase_on_a_collector_and_a_proxy(tmp_path, capsys):
    collector = await serve(create_app(make_config(tmp_path), scrape=False, maintain=False))
    sim = await start_sim()
    proxy = await start_proxy(str(sim.make_url("/v1")))
    try:
        c_url, p_url = str(collector.make_url("")).rstrip("/"), proxy.url("").rstrip("/")
        argv = ["erase", "--session", "s1", "--collector", c_url, "--proxy", f"canary={p_url}/v1"]
        assert await asyncio.to_thread(cli_main, argv) == 0
        out = capsys.readouterr().out.splitlines()
        assert out == [
            f"collector {c_url}: erased the content of 0 stored spans",
            f"proxy {p_url}: erased 0 in the live ring, 0 in flight, 0 raw views",
        ]
        down = ["erase", "--request", "r1", "--collector", c_url, "--proxy", "http://127.0.0.1:9"]
        assert await asyncio.to_thread(cli_main, down) == 1  # one server could not: named, exit 1
        err = capsys.readouterr().err
        assert "proxy http://127.0.0.1:9: NOT erased: unreachable" in err
    finally:
        await proxy.close()
        await sim.close()
        await collector.close()


async def test_with_an_admin_token_the_cli_sends_it(tmp_path):
    collector = await serve(create_app(make_config(tmp_path, admin_token="adm-1"), scrape=False, maintain=False))
    try:
        url = str(collector.make_url("")).rstrip("/")
        no = await asyncio.to_thread(fan_out, {"session": "s"}, url, [], token=None, timeout=5)
        assert no[0]["status"] == 401 and "NOT erased: HTTP 401" in describe(no[0])
        yes = await asyncio.to_thread(fan_out, {"session": "s"}, url, [], token="adm-1", timeout=5)
        assert yes[0]["ok"] and yes[0]["body"]["erased"] == 0
    finally:
        await collector.close()
