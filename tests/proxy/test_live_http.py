"""`/api/live`, `/api/requests`, cancellation and secrets, end to end against the simulator."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import aiohttp
import pytest

from tests.conftest import start_proxy

KEY = "sk-proj-SECRETSECRETSECRET0123456789abcd"
CHAT = {
    "model": "sim-gpt-4o",
    "stream": True,
    "messages": [{"role": "user", "content": "Mail me at jane.doe@example.com please"}],
}


async def read_events(resp: aiohttp.ClientResponse, out: list, stop_on: str | None = None) -> None:
    """Parse an SSE response into (id, event, data, arrival time) tuples."""
    ev: dict = {}
    async for raw in resp.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if "data" in ev:
                out.append((ev.get("id"), ev.get("event"), json.loads(ev["data"]), time.perf_counter()))
                if stop_on and ev.get("event") == stop_on:
                    return
            ev = {}
        elif not line.startswith(":"):
            k, _, v = line.partition(": ")
            ev[k] = v


async def test_live_feed_shows_prompt_before_first_token_and_deltas_while_streaming(stack):
    events: list = []
    async with aiohttp.ClientSession() as s:
        async with s.get(stack.url("/api/live")) as live:
            assert live.headers["Content-Type"].startswith("text/event-stream")
            reader = asyncio.create_task(read_events(live, events, stop_on="request.end"))
            await asyncio.sleep(0.05)
            t_sent = time.perf_counter()
            async with s.post(
                f"{stack.base_url}/chat/completions",
                json=CHAT,
                headers={
                    "Authorization": f"Bearer {KEY}",
                    "x-sim-ttft-ms": "400",
                    "x-sim-tps": "20",
                    "x-sim-tokens": "8",
                },
            ) as r:
                first_token_at = None
                async for chunk in r.content.iter_any():
                    if first_token_at is None and b"content" in chunk:
                        first_token_at = time.perf_counter()
                    # while the stream is still running, deltas have reached the feed
                rid = r.headers["x-tokentail-request-id"]
            await asyncio.wait_for(reader, 5)
    events = [e for e in events if e[1] != "snapshot"]  # the (empty) ring's snapshot marker
    names = [e[1] for e in events]
    assert names[0] == "request.start" and names[-1] == "request.end"
    start = events[0]
    assert start[2]["id"] == rid and start[2]["model"] == "sim-gpt-4o" and start[2]["stream"] is True
    assert start[3] < t_sent + 0.3 < first_token_at  # the prompt arrived before the first token (TTFT 400 ms)
    assert "[REDACTED:email]" in json.dumps(start[2]) and "jane.doe" not in json.dumps(start[2])
    deltas = [e for e in events if e[1] == "request.delta"]
    assert [d[2]["seq"] for d in deltas] == list(range(1, len(deltas) + 1)) and len(deltas) >= 8
    assert deltas[0][2]["ttft_ms"] >= 350
    assert deltas[1][3] < events[-1][3] - 0.2  # deltas were live, spread over the stream (20 tok/s)
    end = events[-1][2]
    assert end["status"] == "ok" and end["usage"]["source"] == "reported"
    ids = [e[0] for e in events]
    assert len(set(ids)) == len(ids) and all(i.count(":") == 1 for i in ids)
    assert KEY not in json.dumps([e[2] for e in events])


async def test_last_event_id_replays_what_was_missed(stack):
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{stack.base_url}/chat/completions", json=CHAT) as r:
            await r.read()
        seen: list = []
        async with s.get(stack.url("/api/live")) as live:  # a snapshot of the ring, all with one id
            await asyncio.wait_for(_collect_until_quiet(live, seen), 5)
        assert {e[1] for e in seen} >= {"snapshot", "request.start", "request.end"}
        last_id = seen[-1][0]
        rids = []
        for _ in range(2):  # while the subscriber is away
            async with s.post(f"{stack.base_url}/chat/completions", json=CHAT) as r:
                await r.read()
                rids.append(r.headers["x-tokentail-request-id"])
        missed: list = []
        async with s.get(stack.url("/api/live"), headers={"Last-Event-ID": last_id}) as live:
            await asyncio.wait_for(_collect_until_quiet(live, missed), 5)
        foreign: list = []
        async with s.get(stack.url("/api/live"), headers={"Last-Event-ID": "otherboot:3"}) as live:
            await asyncio.wait_for(_collect_until_quiet(live, foreign), 5)
    assert [m[1] for m in missed if m[1] != "request.delta"] == ["request.start", "request.end"] * 2
    assert [m[2]["id"] for m in missed if m[1] == "request.start"] == rids
    seqs = [int(m[0].split(":")[1]) for m in missed]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[0] == int(last_id.split(":")[1]) + 1
    assert foreign[0][1] == "snapshot"  # another boot's id gets a fresh snapshot
    assert len([f for f in foreign if f[1] == "request.start"]) == 3


async def _collect_until_quiet(resp, out, quiet=0.3):
    task = asyncio.create_task(read_events(resp, out))
    n = -1
    while n != len(out):
        n = len(out)
        await asyncio.sleep(quiet)
    task.cancel()


async def test_requests_api_lists_filters_and_details(stack):
    async with aiohttp.ClientSession() as s:
        for model in ("sim-a", "sim-b"):
            async with s.post(f"{stack.base_url}/chat/completions", json={**CHAT, "model": model}) as r:
                await r.read()
        async with s.get(stack.url("/api/requests"), params={"model": "sim-b"}) as r:
            rows = (await r.json())["requests"]
        assert [row["model"] for row in rows] == ["sim-b"]
        async with s.get(stack.url("/api/requests"), params={"limit": "0"}) as r:
            assert r.status == 400 and "limit" in (await r.json())["error"]["message"]
        async with s.get(stack.url(f"/api/requests/{rows[0]['id']}")) as r:
            detail = await r.json()
        assert detail["text"] and detail["status"] == "ok"
        async with s.get(stack.url("/api/requests/nope")) as r:
            assert r.status == 404


@pytest.mark.parametrize("when", ["before_first_token", "mid_stream", "non_streamed"])
async def test_client_disconnect_cancels_upstream_at_once(stack, when):
    from tokentail.proxy.state import HUB

    headers = {"x-sim-tps": "20", "x-sim-tokens": "200"}
    body = dict(CHAT)
    if when == "before_first_token":
        headers["x-sim-ttft-ms"] = "5000"
    if when == "non_streamed":
        body["stream"] = False
        headers["x-sim-ttft-ms"] = "5000"
    client = aiohttp.ClientSession()  # its own connection, closed to disconnect
    if when == "mid_stream":
        resp = await client.post(f"{stack.base_url}/chat/completions", json=body, headers=headers)
        await resp.content.readany()
        await asyncio.sleep(0.2)
    else:
        task = asyncio.create_task(client.post(f"{stack.base_url}/chat/completions", json=body, headers=headers))
        await asyncio.sleep(0.3)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    closed_at = time.monotonic()
    await client.close()
    stats = {}
    async with aiohttp.ClientSession() as s:
        for _ in range(40):
            await asyncio.sleep(0.025)
            async with s.get(stack.sim.make_url("/_sim/stats")) as r:
                stats = await r.json()
            if stats["client_disconnects"]:
                break
    assert stats["client_disconnects"] == 1
    assert stats["last_disconnect_at"] - closed_at < 0.1  # the upstream saw it within 100 ms
    rows = stack.app[HUB].list_requests()
    assert rows[0]["status"] == "cancelled"
    if when == "mid_stream":
        assert stack.app[HUB].get_request(rows[0]["id"])["text"]  # partial output kept


async def test_secrets_never_reach_feed_requests_or_logs(stack, caplog):
    caplog.set_level(logging.DEBUG)
    secret_headers = {
        "Authorization": f"Bearer {KEY}",
        "x-api-key": "anthropic-KEY-123",
        "api-key": "azure-KEY-456",
        "x-goog-api-key": "AIzaSyA-GOOGLEKEY-000000000000000000000",
        "Cookie": "session=COOKIE-789",
    }
    prompt = {
        "model": "sim-gpt-4o",
        "messages": [
            {
                "role": "user",
                "content": f"my key is {KEY} and card 4111 1111 1111 1111, token "
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            }
        ],
    }
    events: list = []
    async with aiohttp.ClientSession() as s:
        async with s.get(stack.url("/api/live")) as live:
            reader = asyncio.create_task(read_events(live, events, stop_on="request.end"))
            await asyncio.sleep(0.05)
            async with s.post(
                f"{stack.base_url}/chat/completions?key=QUERYKEY-000", json=prompt, headers=secret_headers
            ) as r:
                await r.read()
                rid = r.headers["x-tokentail-request-id"]
            await asyncio.wait_for(reader, 5)
        async with s.get(stack.url("/api/requests")) as r:
            listing = await r.text()
        async with s.get(stack.url(f"/api/requests/{rid}")) as r:
            detail = await r.text()
        async with s.get(stack.sim.make_url("/_sim/last")) as r:
            upstream_saw = await r.json()
    assert upstream_saw["headers"]["authorization"] == f"Bearer {KEY}"  # the upstream still gets the key
    everything = json.dumps([e[2] for e in events]) + listing + detail + caplog.text
    for secret in (
        KEY,
        "anthropic-KEY-123",
        "azure-KEY-456",
        "GOOGLEKEY",
        "COOKIE-789",
        "QUERYKEY",
        "4111 1111 1111 1111",
        "eyJhbGciOiJIUzI1NiJ9",
    ):
        assert secret not in everything, secret
    assert "[REDACTED:card]" in detail


async def test_reads_off_loopback_need_the_read_token(sim_server):
    proxy = await start_proxy(str(sim_server.make_url("/v1")), host="0.0.0.0", read_token="rt-123")
    try:
        async with aiohttp.ClientSession() as s:
            for path in ("/api/requests", "/api/live"):
                async with s.get(proxy.make_url(path)) as r:
                    assert r.status == 401
            async with s.get(proxy.make_url("/api/requests"), headers={"Authorization": "Bearer rt-123"}) as r:
                assert r.status == 200
            async with s.get(proxy.make_url("/api/requests"), headers={"Origin": "http://evil.example"}) as r:
                assert "Access-Control-Allow-Origin" not in r.headers
    finally:
        await proxy.close()


async def test_cors_only_for_listed_origins(sim_server):
    proxy = await start_proxy(str(sim_server.make_url("/v1")), allowed_origin=["http://127.0.0.1:8050"])
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(proxy.make_url("/api/requests"), headers={"Origin": "http://127.0.0.1:8050"}) as r:
                assert r.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8050"
            async with s.get(proxy.make_url("/api/requests"), headers={"Origin": "http://other:1"}) as r:
                assert "Access-Control-Allow-Origin" not in r.headers
            async with s.get(proxy.make_url("/healthz"), headers={"Origin": "http://other:1"}) as r:
                assert r.headers.get("Access-Control-Allow-Origin") != "*"
    finally:
        await proxy.close()
