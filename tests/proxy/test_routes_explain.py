"""Route check: ``RouteTable.explain`` and ``GET /api/routes/match`` say where a model would
go and why (exact, prefix, default) without sending anything."""

from __future__ import annotations

import aiohttp
from yarl import URL

from tests.helpers.proxies import start_proxy
from tokentail.proxy.routes import parse_routes

DEFAULT = URL("http://default.example/v1")
ROUTES = [
    {"name": "exact", "match": "claude-x", "upstream": "http://a.example/v1", "model": "claude-sonnet-4-5"},
    {"name": "short", "prefix": "claude-", "upstream": "http://b.example/v1"},
    {"name": "long", "prefix": "claude-opus-", "upstream": "http://c.example/v1", "api_key_env": "K"},
]
ENV = {"K": "sk-never-shown-0123456789"}


def test_explain_exact_prefix_default():
    table = parse_routes(ROUTES, ENV)
    e = table.explain("claude-x", DEFAULT)
    assert (e.route.name, e.how, str(e.upstream), e.upstream_model) == (
        "exact",
        "exact",
        "http://a.example/v1",
        "claude-sonnet-4-5",
    )
    e = table.explain("claude-opus-4", DEFAULT)
    assert (e.route.name, e.how, e.upstream_model) == ("long", "prefix", "claude-opus-4")
    assert "longest prefix 'claude-opus-'" in e.why
    e = table.explain("claude-haiku", DEFAULT)
    assert e.route.name == "short"
    e = table.explain("gpt-4o", DEFAULT)
    assert (e.route, e.how, e.upstream, e.upstream_model) == (None, "default", DEFAULT, "gpt-4o")
    assert table.explain(None, DEFAULT).why == "no model in the request"
    # explain agrees with match, the function that routes requests
    for model in ("claude-x", "claude-opus-4", "claude-", "gpt", ""):
        assert table.explain(model, DEFAULT).route is table.match(model)


async def test_match_endpoint_sends_nothing_and_shows_no_key():
    proxy = await start_proxy("http://127.0.0.1:9/v1", routes=ROUTES, env=ENV)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(proxy.url("/api/routes/match"), params={"model": "claude-opus-4"}) as r:
                assert r.status == 200
                text = await r.text()
                body = await r.json()
            async with s.get(proxy.url("/api/routes/match"), params={"model": "gpt-4o"}) as r:
                default = await r.json()
            async with s.get(proxy.url("/api/routes/match")) as r:
                assert r.status == 400
        assert ENV["K"] not in text
        assert body == {
            "model": "claude-opus-4",
            "route": "long",
            "upstream": "http://c.example/v1",
            "upstream_host": "c.example",
            "upstream_model": "claude-opus-4",
            "match": "prefix",
            "why": "longest prefix 'claude-opus-' of route 'long'",
            "injects_key": True,
        }
        assert default["route"] is None and default["match"] == "default" and default["upstream_host"] == "127.0.0.1"
        assert proxy.spans() == []  # no request was proxied
    finally:
        await proxy.close()
