"""Model routes: validation at start, matching, model rewrite and key injection end to end
(two simulators), the key kept out of everything we emit, and reloads that keep the old
routes when the new ones are bad (endpoint and SIGHUP)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys

import aiohttp
import pytest

from tests.helpers import read_events, reading, until
from tests.helpers.proxies import start_proxy, start_sim
from tokentail.proxy.routes import RouteTable, load_routes, parse_routes, reload_routes
from tokentail.proxy.state import RouteState
from tokentail.settings import SettingsError

ROUTE_KEY = "sk-route-SECRETvalue0123456789abcdefXYZ"
ANTH_KEY = "anthropic-route-key-QWERTYUIOPASDFGH-77"
CLIENT_KEY = "sk-client-own0123456789abcdefghijklmnop"
ENV = {"ROUTE_KEY": ROUTE_KEY, "ANTH_KEY": ANTH_KEY}


def chat(model: str, **extra) -> dict:
    return {"model": model, "stream": True, "messages": [{"role": "user", "content": "hello there"}], **extra}


# --- validation -------------------------------------------------------------------------------


GOOD = {"name": "b", "match": "big", "upstream": "http://127.0.0.1:9/v1"}


@pytest.mark.parametrize(
    "routes,fragment",
    [
        ([{**GOOD, "colour": "red"}], "route 'b': unknown key(s) colour"),
        ([{**GOOD, "upstream": "ftp://x/v1"}], "route 'b': upstream must be an http:// or https:// URL"),
        ([{**GOOD, "upstream": "http://user:pw@host/v1"}], "route 'b': upstream must not carry credentials"),
        ([{**GOOD, "upstream": "http://host/v1?key=1"}], "route 'b': upstream must not carry a query string"),
        ([{k: v for k, v in GOOD.items() if k != "upstream"}], "route 'b': 'upstream' is required"),
        ([{**GOOD, "api_key_env": "NOT_SET_ANYWHERE"}], "route 'b': environment variable NOT_SET_ANYWHERE"),
        ([{**GOOD, "api_key_env": "EMPTY"}], "route 'b': environment variable EMPTY (api_key_env) is not set or empty"),
        ([{**GOOD, "api_key_env": "bad name"}], "route 'b': 'api_key_env' must be an environment variable name"),
        ([GOOD, {**GOOD, "match": "other"}], "route 'b': the name is used twice"),
        ([GOOD, {**GOOD, "name": "c"}], "route 'c': match 'big' is already taken by route 'b'"),
        ([{**GOOD, "prefix": "gpt-"}], "route 'b': give exactly one of 'match'"),
        ([{k: v for k, v in GOOD.items() if k != "match"}], "route 'b': give exactly one of 'match'"),
        ([{**GOOD, "auth_header": "x-api-key"}], "route 'b': 'auth_header' needs 'api_key_env'"),
        ([{**GOOD, "capture": "everything"}], "route 'b': 'capture': 'everything' is not a capture mode"),
        ([{**GOOD, "capture": 1}], "route 'b': 'capture': '1' is not a capture mode"),
        ([{**GOOD, "api_key_env": "ROUTE_KEY", "auth_header": "cookie"}], "route 'b': 'auth_header' must be one of"),
        ([{**GOOD, "model": ""}], "route 'b': 'model' must be a non-empty string"),
        ([{"match": "x", "upstream": "http://h/v1"}], "route #1: 'name' is required"),
        ("not a list", "expected a list"),
    ],
)
def test_bad_routes_are_one_clear_error_naming_the_route(routes, fragment):
    with pytest.raises(SettingsError) as exc:
        parse_routes(routes, {**ENV, "EMPTY": ""})
    assert fragment in str(exc.value)
    assert "\n" not in str(exc.value) and ROUTE_KEY not in str(exc.value)


def test_matching_exact_first_then_longest_prefix():
    table = parse_routes(
        [
            {"name": "gpt", "prefix": "gpt-", "upstream": "http://a/v1"},
            {"name": "gpt4o", "prefix": "gpt-4o", "upstream": "http://b/v1"},
            {"name": "exact", "match": "gpt-4o-mini", "upstream": "http://c/v1"},
        ],
        {},
    )
    assert table.match("gpt-4o-mini").name == "exact"
    assert table.match("gpt-4o-2024-08-06").name == "gpt4o"
    assert table.match("gpt-3.5-turbo").name == "gpt"
    assert table.match("claude-3") is None and table.match(None) is None and table.match("") is None
    assert RouteTable().match("gpt-4o") is None


def test_the_key_is_never_shown_by_a_route():
    table = parse_routes([{**GOOD, "api_key_env": "ROUTE_KEY"}], ENV)
    route = table.match("big")
    assert route.auth() == ("Authorization", f"Bearer {ROUTE_KEY}")
    shown = repr(route) + repr(table.routes) + json.dumps(table.describe())
    assert ROUTE_KEY not in shown and "ROUTE_KEY" in shown
    assert table.describe()[0] == {
        "name": "b",
        "match": "big",
        "prefix": None,
        "upstream": "http://127.0.0.1:9/v1",
        "upstream_host": "127.0.0.1",
        "model": None,
        "api_key_env": "ROUTE_KEY",
        "auth_header": "authorization",
        "capture": None,
    }
    anth = parse_routes([{**GOOD, "api_key_env": "ANTH_KEY", "auth_header": "X-Api-Key"}], ENV).match("big")
    assert anth.auth() == ("x-api-key", ANTH_KEY)


def test_routes_come_from_the_config_file_env_or_flag(tmp_path):
    cfg = tmp_path / "tokentail.toml"
    cfg.write_text(
        '[proxy]\nupstream = "http://127.0.0.1:1/v1"\n\n[[proxy.routes]]\nname = "f"\nprefix = "x-"\n'
        'upstream = "http://127.0.0.1:2/v1"\n'
    )
    table, path = load_routes({"TOKENTAIL_CONFIG": str(cfg)})
    assert [r.name for r in table.routes] == ["f"] and path == str(cfg)
    env = {"TOKENTAIL_CONFIG": str(cfg), "TOKENTAIL_PROXY_ROUTES": json.dumps([{**GOOD, "name": "e"}])}
    assert [r.name for r in load_routes(env)[0].routes] == ["e"]
    assert [r.name for r in load_routes(env, flag_value=[{**GOOD, "name": "g"}])[0].routes] == ["g"]
    with pytest.raises(SettingsError, match="--routes"):
        load_routes({"TOKENTAIL_PROXY_ROUTES": "[not json"})


def test_reload_swaps_the_table_and_stamps_it_with_the_given_clock(caplog):
    now = [100.0]
    env = {"TOKENTAIL_PROXY_ROUTES": json.dumps([{**GOOD, "name": "one"}]), **ENV}
    state = RouteState(RouteTable(), env, clock=lambda: now[0])
    assert state.loaded_at == 100.0
    now[0] = 200.0
    table = reload_routes(state)
    assert state.table is table and [r.name for r in table.routes] == ["one"] and state.loaded_at == 200.0
    env["TOKENTAIL_PROXY_ROUTES"] = "[broken"
    now[0] = 300.0
    with caplog.at_level(logging.ERROR, logger="tokentail.proxy"), pytest.raises(SettingsError):
        reload_routes(state)
    assert state.table is table and state.loaded_at == 200.0  # the routes in effect stay
    assert "routes not reloaded (the 1 route(s) in effect stay)" in caplog.text


def test_the_cli_refuses_to_start_with_bad_routes(tmp_path, monkeypatch, capsys):
    from tokentail import cli

    cfg = tmp_path / "tokentail.toml"
    cfg.write_text(
        '[proxy]\nupstream = "http://127.0.0.1:1/v1"\n\n[[proxy.routes]]\nname = "claude"\n'
        'prefix = "claude-"\nupstream = "https://api.anthropic.com/v1"\napi_key_env = "TT_TEST_NO_SUCH_VAR"\n'
    )
    monkeypatch.setenv("TOKENTAIL_CONFIG", str(cfg))
    monkeypatch.delenv("TT_TEST_NO_SUCH_VAR", raising=False)
    assert cli.main(["proxy", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "route 'claude': environment variable TT_TEST_NO_SUCH_VAR (api_key_env) is not set" in err


# --- end to end -----------------------------------------------------------------------------


ROUTES = [
    {"name": "big", "match": "big", "upstream": None, "model": "sim-gpt-4o", "api_key_env": "ROUTE_KEY"},
    {"name": "claude", "prefix": "claude-", "upstream": None, "api_key_env": "ANTH_KEY", "auth_header": "x-api-key"},
    {"name": "claude-haiku-local", "prefix": "claude-haiku", "upstream": "DEFAULT"},
    {"name": "pass", "match": "sim-passthrough", "upstream": None},
]


@pytest.fixture
async def two_sims():
    a, b = await start_sim(), await start_sim()
    yield a, b
    await a.close()
    await b.close()


def _routes(a, b) -> list[dict]:
    out = []
    for r in ROUTES:
        up = str((a if r["upstream"] == "DEFAULT" else b).make_url("/v1"))
        out.append({**r, "upstream": up})
    return out


async def _last(sim) -> dict:
    async with aiohttp.ClientSession() as s:
        async with s.get(sim.make_url("/_sim/last")) as r:
            return await r.json()


async def _stats(sim) -> dict:
    async with aiohttp.ClientSession() as s:
        async with s.get(sim.make_url("/_sim/stats")) as r:
            return await r.json()


async def test_routes_rewrite_and_inject_keys_and_the_key_is_never_emitted(two_sims, caplog):
    caplog.set_level(logging.DEBUG)
    a, b = two_sims
    proxy = await start_proxy(str(a.make_url("/v1")), env=ENV, routes=_routes(a, b))
    events: list = []
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(proxy.url("/api/live")) as live:
                reader = await reading(read_events(live, events, stop_on="request.end", count=5), events)
                client_auth = {"Authorization": f"Bearer {CLIENT_KEY}", "x-api-key": CLIENT_KEY}

                async def send(model: str, query: str = "") -> tuple[str, str]:
                    async with s.post(
                        proxy.url("/v1/chat/completions") + query, json=chat(model), headers=client_auth
                    ) as r:
                        body = await r.text()
                        assert r.status == 200, body
                        return r.headers["x-tokentail-request-id"], body

                # exact route: model rewritten, our key replaces the client's
                rid_big, body = await send("big", "?key=client-query-key&x=1")
                last = await _last(b)
                assert last["json"]["model"] == "sim-gpt-4o" and last["path"] == "/v1/chat/completions"
                assert last["headers"]["authorization"] == f"Bearer {ROUTE_KEY}"
                assert "x-api-key" not in last["headers"] and CLIENT_KEY not in json.dumps(last)
                assert last["query"] == "x=1"  # the client's ?key= is dropped too
                assert '"model":"sim-gpt-4o"' in body.replace(" ", "")  # the upstream answered as that model

                # prefix route with an x-api-key upstream
                await send("claude-sonnet-4-5")
                last = await _last(b)
                assert last["headers"]["x-api-key"] == ANTH_KEY and "authorization" not in last["headers"]
                assert last["json"]["model"] == "claude-sonnet-4-5"  # no rewrite configured

                # the longer prefix wins and goes to the default simulator, client headers untouched
                before_a = (await _stats(a))["requests"]
                await send("claude-haiku-4-5")
                assert (await _stats(a))["requests"] == before_a + 1
                assert (await _last(a))["headers"]["authorization"] == f"Bearer {CLIENT_KEY}"

                # a route without a key passes the client's credentials through
                await send("sim-passthrough")
                assert (await _last(b))["headers"]["authorization"] == f"Bearer {CLIENT_KEY}"

                # unmatched: the default upstream
                before_b = (await _stats(b))["requests"]
                await send("sim-gpt-4o-mini")
                assert (await _stats(b))["requests"] == before_b
                await asyncio.wait_for(reader, 5)

            listing = await (await s.get(proxy.url("/api/requests"))).text()
            detail = await (await s.get(proxy.url(f"/api/requests/{rid_big}"))).json()
            routes_view = await (await s.get(proxy.url("/api/routes"))).text()
        metrics = proxy.metrics()
    finally:
        await proxy.close()

    starts = {d["id"]: d for name, d in events if name == "request.start"}
    assert starts[rid_big]["route"] == "big" and starts[rid_big]["model"] == "big"
    assert starts[rid_big]["upstream_model"] == "sim-gpt-4o"
    assert detail["route"] == "big" and detail["response_model"] == "sim-gpt-4o"
    assert sorted(d["route"] or "-" for d in starts.values()) == ["-", "big", "claude", "claude-haiku-local", "pass"]

    spans = proxy.spans()
    big = next(sp for sp in spans if sp.attributes["tokentail.request.id"] == rid_big)
    assert big.attributes["tokentail.route"] == "big"
    assert big.attributes["gen_ai.request.model"] == "big"  # what the client asked (as in the live feed)
    assert big.attributes["tokentail.upstream.model"] == "sim-gpt-4o"
    assert big.attributes["gen_ai.response.model"] == "sim-gpt-4o"
    assert big.attributes["server.port"] == b.port
    default = next(sp for sp in spans if "tokentail.route" not in sp.attributes)
    assert default.attributes["server.port"] == a.port
    assert json.loads(routes_view)["routes"][0]["api_key_env"] == "ROUTE_KEY"

    emitted = json.dumps(
        [dict(sp.attributes) for sp in spans]
        + [{"events": [dict(ev.attributes or {}) for ev in sp.events]} for sp in spans],
        default=str,
    )
    emitted += json.dumps(events) + listing + json.dumps(detail) + routes_view + metrics + caplog.text
    for secret in (ROUTE_KEY, ANTH_KEY, CLIENT_KEY, "client-query-key"):
        assert secret not in emitted


async def test_requests_cannot_pick_an_unconfigured_upstream(two_sims):
    a, b = two_sims
    proxy = await start_proxy(str(a.make_url("/v1")), env=ENV, routes=_routes(a, b))
    try:
        before = (await _stats(b))["requests"]
        async with aiohttp.ClientSession() as s:
            body = chat(f"{b.make_url('/v1')}", upstream=str(b.make_url("/v1")))
            async with s.post(
                proxy.url("/v1/chat/completions"),
                json=body,
                headers={"Host": f"127.0.0.1:{b.port}", "X-Upstream": str(b.make_url("/v1"))},
            ) as r:
                await r.read()
                assert r.status == 200
        assert (await _stats(b))["requests"] == before  # only a configured model name selects a route
    finally:
        await proxy.close()


async def test_reload_endpoint_swaps_good_routes_and_keeps_old_ones_on_error(two_sims, tmp_path, caplog):
    a, b = two_sims
    cfg = tmp_path / "tokentail.toml"
    proxy = await start_proxy(
        str(a.make_url("/v1")), env={**ENV, "TOKENTAIL_CONFIG": str(cfg)}, routes=_routes(a, b)[:1]
    )
    try:
        async with aiohttp.ClientSession() as s:

            async def names() -> list[str]:
                async with s.get(proxy.url("/api/routes")) as r:
                    return [x["name"] for x in (await r.json())["routes"]]

            assert await names() == ["big"]
            cfg.write_text(
                f'[proxy]\nupstream = "{a.make_url("/v1")}"\n\n[[proxy.routes]]\nname = "broken"\n'
                f'match = "big"\nupstream = "{b.make_url("/v1")}"\napi_key_env = "MISSING_KEY_VAR"\n'
            )
            async with s.post(proxy.url("/api/routes/reload")) as r:
                body = await r.json()
                assert r.status == 422
                assert "route 'broken': environment variable MISSING_KEY_VAR" in body["error"]["message"]
                assert [x["name"] for x in body["routes"]] == ["big"]
            assert await names() == ["big"]
            assert "routes not reloaded" in caplog.text
            async with s.post(proxy.url("/v1/chat/completions"), json=chat("big")) as r:
                await r.read()
            assert (await _last(b))["json"]["model"] == "sim-gpt-4o"  # the old route still works

            cfg.write_text(
                f'[[proxy.routes]]\nname = "new"\nprefix = "sim-"\nupstream = "{b.make_url("/v1")}"\n'
                f'model = "sim-claude"\n'
            )
            async with s.post(proxy.url("/api/routes/reload")) as r:
                assert r.status == 200 and [x["name"] for x in (await r.json())["routes"]] == ["new"]
            async with s.post(proxy.url("/v1/chat/completions"), json=chat("sim-gpt-4o")) as r:
                await r.read()
            assert (await _last(b))["json"]["model"] == "sim-claude"
            async with s.post(proxy.url("/v1/chat/completions"), json=chat("big")) as r:
                await r.read()
            assert r.headers["x-tokentail-request-id"]
            assert (await _last(a))["json"]["model"] == "big"  # "big" has no route any more
    finally:
        await proxy.close()


async def test_sighup_reloads_routes_in_the_proxy_process(two_sims, tmp_path):
    a, b = two_sims
    cfg = tmp_path / "tokentail.toml"

    def write(route: str) -> None:
        cfg.write_text(f'[proxy]\nupstream = "{a.make_url("/v1")}"\nport = 0\n\n' + route)

    write(f'[[proxy.routes]]\nname = "first"\nmatch = "m1"\nupstream = "{b.make_url("/v1")}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOKENTAIL_", "OTEL_"))}
    env.update(TOKENTAIL_CONFIG=str(cfg), PYTHONUNBUFFERED="1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tokentail",
        "proxy",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    log: list[str] = []
    try:
        port = None
        while port is None:
            line = (await asyncio.wait_for(proc.stderr.readline(), 20)).decode()
            assert line, "the proxy exited: " + "".join(log)
            log.append(line)
            if "proxy listening on http://" in line:
                port = int(line.rsplit(":", 1)[1])
        url = f"http://127.0.0.1:{port}/api/routes"

        async def names() -> list[str]:
            async with aiohttp.ClientSession() as s:
                async with s.get(url) as r:
                    return [x["name"] for x in (await r.json())["routes"]]

        assert await names() == ["first"]
        async with aiohttp.ClientSession() as s:
            async with s.get(url) as r:
                assert (await r.json())["config_file"] == str(cfg)
        write(f'[[proxy.routes]]\nname = "second"\nprefix = "m"\nupstream = "{b.make_url("/v1")}"\n')
        proc.send_signal(signal.SIGHUP)
        await until(lambda: _eq(names(), ["second"]), timeout=10)
        write('[[proxy.routes]]\nname = "bad"\nmatch = "m"\n')  # no upstream
        proc.send_signal(signal.SIGHUP)
        while not any("routes not reloaded" in line for line in log):
            log.append((await asyncio.wait_for(proc.stderr.readline(), 10)).decode())
        assert any("route 'bad': 'upstream' is required" in line for line in log)
        assert await names() == ["second"]
        assert proc.returncode is None  # a bad reload never stops the proxy
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 15)


async def _eq(coro, expected) -> bool:
    return await coro == expected


async def test_a_rewritten_body_keeps_what_utf8_cannot_encode():
    from tests.helpers.upstreams import scripted_sse, serve

    app, probe = scripted_sse([b'{"ok": true}'], content_type="application/json")
    up = await serve(app)
    routes = [{"name": "r", "match": "m", "upstream": str(up.make_url("/v1")), "model": "rewritten"}]
    proxy = await start_proxy(str(up.make_url("/v1")), routes=routes)
    try:
        raw = b'{"model": "m", "stream": true, "messages": [{"role": "user", "content": "a\\ud800b"}]}'
        async with aiohttp.ClientSession() as s:
            async with s.post(
                proxy.url("/v1/chat/completions"), data=raw, headers={"Content-Type": "application/json"}
            ) as r:
                assert r.status == 200 and await r.read() == b'{"ok": true}'
        sent = json.loads(probe.requests[0]["body"])
        assert sent["model"] == "rewritten" and sent["messages"][0]["content"] == "a\ud800b"
        assert sent["stream_options"] == {"include_usage": True}
    finally:
        await proxy.close()
        await up.close()


async def test_an_upstream_echoing_the_injected_key_does_not_put_it_in_our_telemetry(caplog):
    from tests.helpers.upstreams import scripted_sse, serve

    caplog.set_level(logging.DEBUG)
    odd_key = "plain-format-key-0123456789"  # no redaction rule knows this shape
    body = json.dumps({"error": {"message": f"Incorrect API key provided: {odd_key}"}}).encode()
    app, _ = scripted_sse([body], status=401, content_type="application/json")
    up = await serve(app)
    routes = [{"name": "r", "match": "m", "upstream": str(up.make_url("/v1")), "api_key_env": "K"}]
    proxy = await start_proxy(str(up.make_url("/v1")), env={"K": odd_key}, routes=routes)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(proxy.url("/v1/chat/completions"), json=chat("m")) as r:
                assert r.status == 401
                rid = r.headers["x-tokentail-request-id"]
            detail = await (await s.get(proxy.url(f"/api/requests/{rid}"))).json()
        assert "[REDACTED:route_key]" in detail["error_message"]
        span = proxy.spans()[0]
        emitted = json.dumps(detail) + json.dumps(dict(span.attributes)) + str(span.status.description)
        emitted += json.dumps([dict(ev.attributes or {}) for ev in span.events]) + caplog.text
        assert odd_key not in emitted
    finally:
        await proxy.close()
        await up.close()
