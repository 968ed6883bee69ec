"""The forward path against scripted upstreams: exact bytes, errors, timeouts, backpressure."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from tests.helpers import until
from tests.helpers.proxies import start_proxy_server
from tests.helpers.upstreams import firehose, scripted_sse, serve

CHAT_REQ = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def chunk(obj) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def delta(text: str, usage_null: bool = False) -> dict:
    d = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    if usage_null:
        d["usage"] = None
    return d


USAGE = {
    "id": "c1",
    "object": "chat.completion.chunk",
    "model": "m",
    "choices": [],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


async def _through(upstream_app, body=CHAT_REQ, headers=None, **proxy_overrides):
    up = await serve(upstream_app)
    proxy = await start_proxy_server(str(up.make_url("/v1")), **proxy_overrides)
    try:
        async with aiohttp.ClientSession(auto_decompress=False) as s:
            async with s.post(proxy.make_url("/v1/chat/completions"), json=body, headers=headers) as r:
                raw = await r.read()
                return r.status, r.headers, raw, proxy.app
    finally:
        await proxy.close()
        await up.close()


async def test_odd_sse_bytes_pass_through_unchanged():
    # CRLF, a comment, multi-line data, bad JSON, a split UTF-8 character, NUL, no [DONE].
    euro = "€".encode()
    chunks = [
        b": keep-alive\r\n\r\n",
        b'data: {"choices":[{"delta":{"content":"a"}}]}\r\n\r\n',
        b'data: {"choices":[{"delta":{"content":"' + euro[:1],
        euro[1:] + b'"}}]}\n\n',
        b"data: not json\ndata: second line\n\n",
        b"data: \x00\xff\xfe\n\n",
    ]
    app, _ = scripted_sse(chunks)
    status, headers, raw, proxy_app = await _through(app, body={**CHAT_REQ, "stream_options": {"include_usage": True}})
    assert status == 200
    assert raw == b"".join(chunks)
    from tokentail.proxy.state import HUB

    rec = proxy_app[HUB].get_request(headers["x-tokentail-request-id"])
    assert rec["malformed"] is True and rec["parsed"] is True  # flagged, never crashed
    assert headers["X-Accel-Buffering"] == "no"
    assert headers["x-tokentail-request-id"]


async def test_injected_usage_chunk_is_hidden_and_recorded():
    chunks = [chunk(delta("Hel", True)), chunk(delta("lo", True)), chunk(USAGE), b"data: [DONE]\n\n"]
    app, probe = scripted_sse(chunks)
    _status, headers, raw, proxy_app = await _through(app)
    sent = json.loads(probe.requests[0]["body"])
    assert sent["stream_options"] == {"include_usage": True}  # asked upstream for usage
    assert raw == chunks[0] + chunks[1] + chunks[3]  # ...and hid it from the client
    from tokentail.proxy.state import HUB

    rec = proxy_app[HUB].get_request(headers["x-tokentail-request-id"])
    assert rec["usage"]["output_tokens"] == 2 and rec["usage"]["source"] == "reported"
    assert rec["text"] == "Hello"


async def test_client_that_asked_for_usage_gets_it():
    chunks = [chunk(delta("Hi", True)), chunk(USAGE), b"data: [DONE]\n\n"]
    app, _ = scripted_sse(chunks)
    _, _, raw, _ = await _through(app, body={**CHAT_REQ, "stream_options": {"include_usage": True}})
    assert raw == b"".join(chunks)


async def test_injection_can_be_turned_off():
    chunks = [chunk(delta("Hi")), b"data: [DONE]\n\n"]
    app, probe = scripted_sse(chunks)
    _, headers, raw, proxy_app = await _through(app, inject_usage=False)
    assert "stream_options" not in json.loads(probe.requests[0]["body"])
    assert raw == b"".join(chunks)
    from tokentail.proxy.state import HUB

    usage = proxy_app[HUB].get_request(headers["x-tokentail-request-id"])["usage"]
    assert usage["source"] == "estimated" and usage["output_tokens"] == 1


async def test_upstream_status_body_and_headers_pass_through():
    body = b'{"error": {"message": "slow down", "type": "rate_limit"}}'
    app, _ = scripted_sse([body], status=429, content_type="application/json", headers={"Retry-After": "7"})
    status, headers, raw, _ = await _through(app)
    assert (status, headers["Retry-After"], raw) == (429, "7", body)


async def test_connection_refused_gives_502_json_without_secrets():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proxy = await start_proxy_server(f"http://127.0.0.1:{port}/v1")
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(
                proxy.make_url("/v1/chat/completions"),
                json=CHAT_REQ,
                headers={"Authorization": "Bearer sk-secret-123456789012345678"},
            ) as r:
                text = await r.text()
                assert r.status == 502
                err = json.loads(text)["error"]
                assert err["code"] == "connect" and "sk-secret" not in text
    finally:
        await proxy.close()


async def test_idle_timeout_before_first_byte_gives_504():
    app, _ = scripted_sse([b"data: late\n\n"], headers_delay=2.0)
    t0 = time.perf_counter()
    status, _, raw, _ = await _through(app, idle_timeout=0.3)
    assert status == 504 and json.loads(raw)["error"]["code"] == "timeout"
    assert time.perf_counter() - t0 < 1.5


async def test_idle_timeout_mid_stream_appends_one_error_event():
    chunks = [chunk(delta("a")), chunk(delta("b"))]

    async def slow_tail(request):
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for c in chunks:
            await resp.write(c)
        await asyncio.sleep(3)  # then silence, longer than the idle timeout
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", slow_tail)
    status, _, raw, _ = await _through(app, idle_timeout=0.3)
    assert status == 200
    assert raw.startswith(b"".join(chunks))
    tail = raw[len(b"".join(chunks)) :]
    assert tail.count(b"data: ") == 1 and b'"code": "timeout"' in tail and b"[DONE]" not in tail


async def test_long_stream_is_never_cut_by_a_total_timeout():
    chunks = [chunk(delta(str(i))) for i in range(12)] + [b"data: [DONE]\n\n"]
    app, probe = scripted_sse(chunks, delay=0.1)  # 1.3 s in all, never idle 0.5 s
    status, _, raw, _ = await _through(app, idle_timeout=0.5)
    assert status == 200 and raw == b"".join(chunks) and probe.finished


async def test_upstream_drop_mid_stream_keeps_partial_and_records_error():
    chunks = [chunk(delta("par")), chunk(delta("tial")), chunk(delta("never"))]
    app, _ = scripted_sse(chunks, drop_after=2)
    status, headers, raw, proxy_app = await _through(app)
    assert status == 200 and raw.startswith(chunks[0] + chunks[1])
    assert b"upstream_disconnect" in raw[len(chunks[0] + chunks[1]) :] and b"[DONE]" not in raw
    from tokentail.proxy.state import HUB

    rec = proxy_app[HUB].get_request(headers["x-tokentail-request-id"])
    assert rec["status"] == "error" and rec["error"] == "upstream_disconnect" and rec["text"] == "partial"


async def test_each_token_reaches_the_client_as_it_arrives():
    n = 10
    chunks = [chunk(delta(f"t{i}")) for i in range(n)]
    app, probe = scripted_sse(chunks, delay=0.05)
    up = await serve(app)
    proxy = await start_proxy_server(str(up.make_url("/v1")))
    arrivals = []
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(proxy.make_url("/v1/chat/completions"), json=CHAT_REQ) as r:
                buf = b""
                async for data in r.content.iter_any():
                    buf += data
                    while b"\n\n" in buf:
                        _, buf = buf.split(b"\n\n", 1)
                        arrivals.append(time.perf_counter())
    finally:
        await proxy.close()
        await up.close()
    assert len(arrivals) == n
    lags = [a - w for a, w in zip(arrivals, probe.write_times)]
    assert max(lags) < 0.03, lags  # relayed as they come, not buffered


async def test_slow_client_pauses_the_upstream_instead_of_buffering():
    total = 64 << 20
    app, probe = firehose(total)
    up = await serve(app)
    proxy = await start_proxy_server(str(up.make_url("/v1")))
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.setblocking(False)  # the proxy runs on this event loop: never block it
    try:
        await loop.sock_connect(sock, ("127.0.0.1", proxy.port))
        body = json.dumps(CHAT_REQ).encode()
        await loop.sock_sendall(
            sock,
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body,
        )
        await loop.sock_recv(sock, 4096)  # read a little, then stop reading
        # Every buffer between us and the upstream fills, then the upstream's own socket
        # refuses more: its writer waits in drain. A loaded machine only makes this later.
        await until(lambda: probe.writer_blocked, timeout=30, what="the upstream never blocked")
        stalled_at = probe.written
        assert stalled_at < 16 << 20  # bounded bytes in flight, far from the 64 MiB streamed
        assert not probe.finished

        # Read again: the proxy reads the upstream again, and the upstream writes on.
        async def reader() -> None:
            while await loop.sock_recv(sock, 1 << 16):
                pass

        draining = asyncio.ensure_future(reader())
        try:
            await until(lambda: probe.written > stalled_at + (1 << 20), timeout=30, what="the upstream never resumed")
        finally:
            draining.cancel()
    finally:
        sock.close()
        await proxy.close()
        await up.close()


async def test_upstream_is_fixed_whatever_the_request_path_says():
    app, probe = scripted_sse([b"{}"], content_type="application/json")
    up = await serve(app)
    proxy = await start_proxy_server(str(up.make_url("/v1")))
    try:
        async with aiohttp.ClientSession() as s:
            for path in ("/v1//evil.example/x", "/v1/http://evil.example/x", "/v1/../../admin"):
                async with s.get(proxy.make_url(path), headers={"Host": "evil.example"}) as r:
                    assert r.status in (200, 404)
        assert probe.requests, "requests reached our upstream"
        assert all(r["headers"].get("Host", "").startswith("127.0.0.1") for r in probe.requests)
    finally:
        await proxy.close()
        await up.close()


async def test_dot_segments_are_refused_and_the_query_goes_byte_for_byte():
    app, probe = scripted_sse([b"{}"], content_type="application/json")
    up = await serve(app)
    proxy = await start_proxy_server(str(up.make_url("/v1")))
    try:
        async with aiohttp.ClientSession() as s:
            for path in (
                "/v1/%2E%2E/%2E%2E/admin",
                "/v1/..%2F..%2Fadmin",
                "/v1/a/%2e%2e/%2e%2e/admin",
                "/v1/../../admin",
                "/v1/a/%2E%2E/b",
            ):
                url = URL(str(proxy.make_url("/")).rstrip("/") + path, encoded=True)  # sent as written
                async with s.get(url) as r:
                    assert r.status == 400, path
                    assert (await r.json())["error"]["code"] == "invalid_path"
                    assert r.headers["x-tokentail-request-id"]
            raw = "/v1/models/a%2Bb?x=%26key%3Dabc&y=a%2Fb&&z=b%20c+d"
            async with s.get(URL(str(proxy.make_url("/")).rstrip("/") + raw, encoded=True)) as r:
                assert r.status == 200
        assert [r["raw_path"] for r in probe.requests] == [raw]  # nothing refused went upstream
    finally:
        await proxy.close()
        await up.close()


async def test_oversized_body_gets_413_before_it_is_read():
    app, probe = scripted_sse([b"{}"], content_type="application/json")
    status, _, raw, _ = await _through(app, body={"model": "m", "pad": "x" * 2048}, max_body=1024)
    assert status == 413 and json.loads(raw)["error"]["code"] == "request_too_large"
    assert probe.requests == []


async def test_non_json_and_binary_bodies_are_forwarded_exactly():
    app, probe = scripted_sse([b"ok"], content_type="text/plain")
    up = await serve(app)
    proxy = await start_proxy_server(str(up.make_url("/v1")))
    deep = b'{"model":"m","messages":' + b"[" * 100_000 + b"]" * 100_000 + b"}"  # deeper than json can parse
    try:
        for i, payload in enumerate((b"\x00\xff not json {", deep)):
            async with aiohttp.ClientSession() as s:
                async with s.post(proxy.make_url("/v1/chat/completions"), data=payload) as r:
                    assert r.status == 200 and await r.read() == b"ok"
                    rid = r.headers["x-tokentail-request-id"]
            assert probe.requests[i]["body"] == payload
            from tokentail.proxy.state import HUB

            detail = proxy.app[HUB].get_request(rid)
            assert detail["status"] == "ok" and detail["parsed"] is False  # recorded as unparsed
    finally:
        await proxy.close()
        await up.close()


async def test_websocket_upgrade_is_refused_with_501():
    app, _ = scripted_sse([b"{}"])
    up = await serve(app)
    proxy = await start_proxy_server(str(up.make_url("/v1")))
    try:
        async with aiohttp.ClientSession() as s:
            with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
                await s.ws_connect(proxy.make_url("/v1/realtime"))
            assert exc.value.status == 501
    finally:
        await proxy.close()
        await up.close()


@pytest.mark.parametrize("after_done", [True, False])
async def test_a_client_that_hangs_up_after_done_had_a_successful_request(after_done):
    """The openai SDK stops reading at ``[DONE]`` and may close before the upstream does: that
    request succeeded. A client that leaves before ``[DONE]`` cancelled it."""
    from tokentail.proxy.state import HUB

    done = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for word in ("Hello", " there"):
            await resp.write(chunk(delta(word)))
        await resp.write(chunk(USAGE))
        if after_done:
            await resp.write(b"data: [DONE]\n\n")
        await asyncio.sleep(3)  # the upstream keeps its connection a while after its answer
        done.set()
        await resp.write_eof()
        return resp

    up_app = web.Application()
    up_app.router.add_post("/v1/chat/completions", handler)
    upstream = await serve(up_app)
    proxy = await start_proxy_server(str(upstream.make_url("/v1")))
    try:
        client = aiohttp.ClientSession()
        resp = await client.post(proxy.make_url("/v1/chat/completions"), json=CHAT_REQ)
        seen = b""
        want = b"[DONE]" if after_done else b" there"
        async with asyncio.timeout(5):
            while want not in seen:
                got = await resp.content.readany()
                assert got, f"the stream ended early: {seen!r}"
                seen += got
        rid = resp.headers["x-tokentail-request-id"]
        resp.close()  # hang up, as the SDK does
        await client.close()
        hub = proxy.app[HUB]
        await until(lambda: hub.get_request(rid)["status"] != "in_flight", timeout=5)
        assert not done.is_set(), "the proxy waited for the upstream to close"
        got = hub.get_request(rid)
        assert got["status"] == ("ok" if after_done else "cancelled")
        assert got["text"] == "Hello there"
    finally:
        await proxy.close()
        await upstream.close()


def test_request_ids_are_random_version_4_uuids_as_uuid_writes_them():
    from tokentail.proxy.forward import request_id

    ids = {request_id() for _ in range(2000)}
    assert len(ids) == 2000
    for rid in list(ids)[:200]:
        u = uuid.UUID(rid)
        assert str(u) == rid  # lower-case 8-4-4-4-12, as str(uuid.uuid4())
        assert u.version == 4 and u.variant == uuid.RFC_4122
