"""The MarkReplay request hook: replay_of on the record, live feed and span; the header never goes upstream."""

from __future__ import annotations

import json

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from tests.conftest import start_proxy
from tests.helpers.upstreams import serve
from tokentail.proxy.attribution import Fingerprinter
from tokentail.proxy.hooks import MarkReplay, RequestContext, UpstreamPlan, default_hooks
from tokentail.proxy.record import RequestRecord
from tokentail.proxy.redact import Redactor
from tokentail.proxy.routes import parse_routes
from tokentail.proxy.sessions import SessionTracker
from tokentail.proxy.upstream import build

RID = "0b5e7c1e-3c1f-4a6e-9d59-0f3f2a1f8d11"


def ctx(headers: dict[str, str]) -> RequestContext:
    rec = RequestRecord(id="r1", variant="v", method="POST", endpoint="/chat/completions")
    h = CIMultiDictProxy(CIMultiDict(headers))
    return RequestContext("POST", "chat/completions", "", h, b"{}", rec, UpstreamPlan(URL("http://up/v1")))


def test_mark_replay_sets_replay_of():
    c = ctx({"x-tokentail-replay-of": RID})
    c.apply(MarkReplay().request(c))
    assert c.rec.replay_of == RID


def test_mark_replay_ignores_absent_or_odd_values():
    for headers in (
        {},
        {"X-Tokentail-Replay-Of": ""},
        {"X-Tokentail-Replay-Of": "a" * 65},
        {"X-Tokentail-Replay-Of": "x y"},
    ):
        assert MarkReplay().request(ctx(headers)) is None


def test_mark_replay_is_in_the_default_hooks():
    hooks = default_hooks(
        redactor=Redactor(),
        fingerprinter=Fingerprinter(),
        routes=lambda: parse_routes([], {}),
        sessions=SessionTracker(),
    )
    assert sum(isinstance(h, MarkReplay) for h in hooks) == 1


def test_the_header_is_not_sent_upstream():
    c = ctx({"X-Tokentail-Replay-Of": RID, "X-Other": "1"})
    sent = build(c)
    assert "X-Tokentail-Replay-Of" not in sent.headers
    assert sent.headers["X-Other"] == "1"


async def test_through_the_proxy_the_upstream_never_sees_the_header_and_the_record_has_it():
    seen: list[dict[str, str]] = []

    async def chat(request: web.Request) -> web.StreamResponse:
        seen.append(dict(request.headers))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        chunk = {"id": "c", "object": "chat.completion.chunk", "model": "m"}
        chunk["choices"] = [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]
        await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\ndata: [DONE]\n\n")
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    up = await serve(app)
    proxy = await start_proxy(str(up.make_url("/v1")))
    try:
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        async with aiohttp.ClientSession() as s:
            async with s.post(
                proxy.make_url("/v1/chat/completions"), json=body, headers={"X-Tokentail-Replay-Of": RID}
            ) as r:
                assert r.status == 200
                rid = r.headers["x-tokentail-request-id"]
                await r.read()
            async with s.get(proxy.make_url(f"/api/requests/{rid}")) as r:
                detail = await r.json()
            async with s.get(proxy.make_url("/api/requests")) as r:
                listed = (await r.json())["requests"]
    finally:
        await proxy.close()
        await up.close()
    assert len(seen) == 1
    assert not any(k.lower() == "x-tokentail-replay-of" for k in seen[0])
    assert detail["replay_of"] == RID
    assert next(x for x in listed if x["id"] == rid)["replay_of"] == RID
