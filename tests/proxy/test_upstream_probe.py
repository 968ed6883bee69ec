"""The optional probe: GET {upstream}/models in the background, off by default, with the
route's key, marking the upstream down on 5xx and up again."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from tests.helpers import until
from tests.helpers.proxies import start_proxy
from tokentail.proxy.routes import RouteTable, parse_routes
from tokentail.proxy.upstream_probe import targets


def fake_upstream(state: dict) -> web.Application:
    async def models(request: web.Request) -> web.Response:
        state["seen"].append((request.path, dict(request.headers)))
        return web.json_response({"data": []}, status=state["status"])

    app = web.Application()
    app.router.add_get("/v1/models", models)
    return app


async def test_probe_marks_down_on_5xx_and_up_again():
    state: dict = {"status": 500, "seen": []}
    up = TestServer(fake_upstream(state), host="127.0.0.1")
    await up.start_server()
    proxy = await start_proxy(str(up.make_url("/v1")), probe_interval=0.02, probe_timeout=1.0)
    reg = proxy.registry

    def up_value() -> float | None:
        return reg.get_sample_value("tokentail_upstream_up", {"route": "127.0.0.1"})

    try:
        await until(lambda: up_value() == 0, timeout=5.0)
        assert state["seen"][0][0] == "/v1/models"
        async with aiohttp.ClientSession() as s:
            async with s.get(proxy.url("/api/upstreams")) as r:
                (row,) = (await r.json())["upstreams"]
        assert row["up"] is False and row["last_error"] == "probe: HTTP 500"
        state["status"] = 200
        await until(lambda: up_value() == 1, timeout=5.0)
    finally:
        await proxy.close()
        await up.close()


async def test_probe_is_off_by_default():
    state: dict = {"status": 200, "seen": []}
    up = TestServer(fake_upstream(state), host="127.0.0.1")
    await up.start_server()
    proxy = await start_proxy(str(up.make_url("/v1")))
    try:
        async with aiohttp.ClientSession() as s:  # a round trip through the proxy's loop
            async with s.get(proxy.url("/healthz")) as r:
                assert r.status == 200
        assert state["seen"] == []
    finally:
        await proxy.close()
        await up.close()


def test_targets_are_the_default_and_routes_that_ask_with_their_key():
    table = parse_routes(
        [
            {
                "name": "a",
                "match": "x",
                "upstream": "http://a.example/v1",
                "probe": True,
                "api_key_env": "K",
                "auth_header": "x-api-key",
            },
            {"name": "b", "match": "y", "upstream": "http://b.example/v1"},
        ],
        {"K": "secret-key-value"},
    )
    got = targets(URL("http://default.example/v1"), table)
    assert [(t.label, str(t.url)) for t in got] == [
        ("default.example", "http://default.example/v1/models"),
        ("a", "http://a.example/v1/models"),
    ]
    assert got[1].headers == (("x-api-key", "secret-key-value"),)
    assert "secret-key-value" not in repr(table.routes[0])
    assert targets(URL("http://d.example/v1"), RouteTable())[0].label == "d.example"
