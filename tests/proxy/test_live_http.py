"""`/api/live`, `/api/requests`, cancellation and secrets, end to end against the simulator."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time

import aiohttp
import pytest

from tests import helpers
from tests.helpers import reading, until
from tests.helpers.proxies import start_proxy_server

KEY = "sk-proj-SECRETSECRETSECRET0123456789abcd"
CHAT = {
    "model": "sim-gpt-4o",
    "stream": True,
    "messages": [{"role": "user", "content": "Mail me at jane.doe@example.com please"}],
}


def read_events(resp: aiohttp.ClientResponse, out: list, stop_on: str | None = None):
    """(id, event, data, arrival time) tuples: these tests check ids and timing."""
    return helpers.read_events(resp, out, stop_on=stop_on, meta=True)


async def test_live_feed_shows_prompt_before_first_token_and_deltas_while_streaming(stack):
    events: list = []
    async with aiohttp.ClientSession() as s:
        async with s.get(stack.url("/api/live")) as live:
            assert live.headers["Content-Type"].startswith("text/event-stream")
            reader = await reading(read_events(live, events, stop_on="request.end"), events)
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
    assert [d[2]["seq"] for d in deltas] == list(range(1, len(deltas) + 1)) and len(
        deltas
    ) >= 6  # a word over two tokens: one delta
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
            await _collect(live, seen)
        assert {e[1] for e in seen} >= {"snapshot", "request.start", "request.end"}
        last_id = seen[-1][0]
        rids = []
        for _ in range(2):  # while the subscriber is away
            async with s.post(f"{stack.base_url}/chat/completions", json=CHAT) as r:
                await r.read()
                rids.append(r.headers["x-tokentail-request-id"])
        missed: list = []
        async with s.get(stack.url("/api/live"), headers={"Last-Event-ID": last_id}) as live:
            await _collect(live, missed, ends=2)
        foreign: list = []
        async with s.get(stack.url("/api/live"), headers={"Last-Event-ID": "otherboot:3"}) as live:
            await _collect(live, foreign)
    assert [m[1] for m in missed if m[1] != "request.delta"] == ["request.start", "request.end"] * 2
    assert [m[2]["id"] for m in missed if m[1] == "request.start"] == rids
    seqs = [int(m[0].split(":")[1]) for m in missed]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[0] == int(last_id.split(":")[1]) + 1
    assert foreign[0][1] == "snapshot"  # another boot's id gets a fresh snapshot
    assert len([f for f in foreign if f[1] == "request.start"]) == 3


async def _collect(resp, out, ends: int | None = None):
    """Read events until ``ends`` requests ended (default: as many as the snapshot holds)."""

    def complete() -> bool:
        want = ends if ends is not None else next((e[2]["requests"] for e in out if e[1] == "snapshot"), None)
        return want is not None and sum(e[1] == "request.end" for e in out) >= want

    task = asyncio.create_task(read_events(resp, out))
    try:
        await until(complete, timeout=5, what=f"the events: {[e[1] for e in out]}")
    finally:
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
    stats: dict = {}
    async with aiohttp.ClientSession() as s:

        async def sim_stats() -> dict:
            async with s.get(stack.sim.make_url("/_sim/stats")) as r:
                stats.update(await r.json())
            return stats

        async def upstream_busy() -> bool:  # the request reached the simulator, which is answering
            return (await sim_stats())["in_flight"] == 1

        async def disconnect_seen() -> bool:
            return (await sim_stats())["client_disconnects"] > 0

        if when == "mid_stream":
            resp = await client.post(f"{stack.base_url}/chat/completions", json=body, headers=headers)
            await resp.content.readany()
            await until(upstream_busy)
        else:
            task = asyncio.create_task(client.post(f"{stack.base_url}/chat/completions", json=body, headers=headers))
            await until(upstream_busy)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        closed_at = time.monotonic()
        await client.close()
        await until(disconnect_seen, timeout=5)
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
            reader = await reading(read_events(live, events, stop_on="request.end"), events)
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
    proxy = await start_proxy_server(str(sim_server.make_url("/v1")), host="0.0.0.0", read_token="rt-123")
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
    proxy = await start_proxy_server(str(sim_server.make_url("/v1")), allowed_origin=["http://127.0.0.1:8050"])
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


# --- the live feed under load: snapshots in slices, a subscriber cap --------------------------


def _fill_ring(hub, entries: int, chars: int) -> None:
    """``entries`` finished requests of ``chars`` characters each, straight into the hub."""
    from tokentail.proxy.record import OK as DONE
    from tokentail.proxy.record import RequestRecord

    text = ('Große "Wörter"\n streamen – ' * (chars // 28 + 1))[:chars]
    for i in range(entries):
        r = RequestRecord(id=f"big-{i}", variant="production", method="POST", endpoint="/chat/completions")
        r.model, r.stream = "sim-gpt-4o", True
        r.prompt = {"messages": [{"role": "user", "content": f"question {i}"}]}
        hub.on_start(r)
        r.text, r.status = text, DONE
        hub.on_end(r)


async def _read_snapshot(resp: aiohttp.ClientResponse, entries: int) -> float:
    """Read until ``entries`` request.end events went by; the time it was done."""
    seen, tail = 0, b""
    marker = b"\nevent: request.end\n"
    async for chunk in resp.content.iter_any():
        data = tail + chunk
        seen += data.count(marker)
        tail = data[-len(marker) :]
        if tail.count(marker):  # counted already: do not count it twice
            tail = tail[len(marker) :]
        if seen >= entries:
            return time.perf_counter()
    raise AssertionError(f"the feed ended after {seen} of {entries} entries")


async def test_subscribers_joining_a_full_ring_never_hold_the_loop(sim_server):
    """Five subscribers receive a ~40 MiB snapshot each while a 10 ms/token stream goes on:
    the stream's largest gap between tokens stays small (the snapshot is encoded and written in
    slices, yielding the loop between them)."""
    from tokentail.proxy import app as keys

    # Requests of 8 MiB each (a raised --capture-bytes): one of them is one JSON string.
    server = await start_proxy_server(str(sim_server.make_url("/v1")), redact=False, capture_bytes=8 << 20)
    try:
        hub = server.app[keys.HUB]
        entries = 5
        _fill_ring(hub, entries, 8 << 20)
        assert len(hub.list_requests(limit=1000)) == entries
        arrivals: list[float] = []  # wall clock at each token
        cpu: list[float] = []  # this thread's CPU time at each token: the event loop's work
        async with aiohttp.ClientSession() as s:
            # Up to 60 s of tokens: read while the snapshots are sent, however long a loaded
            # machine takes for them, then leave.
            headers = {"x-sim-tps": "100", "x-sim-tokens": "6000", "x-sim-ttft-ms": "0"}
            async with s.post(server.make_url("/v1/chat/completions"), json=CHAT, headers=headers) as r:
                chunks = r.content.iter_any()
                for _ in range(5):  # the stream is flowing before anyone joins
                    await chunks.__anext__()
                live = [await s.get(server.make_url("/api/live")) for _ in range(5)]
                readers = asyncio.gather(*(_read_snapshot(resp, entries) for resp in live))
                async for _ in chunks:
                    arrivals.append(time.perf_counter())
                    cpu.append(time.thread_time())
                    if readers.done():
                        break
                assert readers.done(), "the stream ended before the snapshots did"
            await readers  # re-raises a reader's failure
            for resp in live:
                resp.close()
        assert len(arrivals) > 20
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        held = [b - a for a, b in itertools.pairwise(cpu)]
        # Whole-event encoding held the loop ~200 ms of CPU here (8 MiB strings, 5 subscribers
        # at once); in slices, a few ms. A long wall-clock gap on a loaded machine where the
        # loop did not work (the OS ran something else) is not the loop's doing.
        assert max(held) < 0.1, f"the loop worked {max(held) * 1000:.0f} ms between two tokens"
        stalls = [(round(g * 1000), round(h * 1000)) for g, h in zip(gaps, held, strict=True) if g >= 0.2 and h >= 0.05]
        assert not stalls, f"gaps between tokens (wall ms, loop ms): {stalls}"
    finally:
        await server.close()


async def test_subscriber_cap_refuses_with_503_and_counts(sim_server):
    from prometheus_client import CollectorRegistry

    from tokentail.proxy import app as keys

    registry = CollectorRegistry()
    server = await start_proxy_server(str(sim_server.make_url("/v1")), registry, live_max_subscribers=3)
    try:
        hub = server.app[keys.HUB]
        async with aiohttp.ClientSession() as s:
            first = [await s.get(server.make_url("/api/live")) for _ in range(3)]
            assert [r.status for r in first] == [200, 200, 200] and hub.subscribers == 3
            async with s.get(server.make_url("/api/live")) as refused:
                assert refused.status == 503 and refused.headers["Retry-After"] == "5"
                body = await refused.json()
            assert body["error"]["code"] == "too_many_subscribers" and "3" in body["error"]["message"]
            sink = {"sink": "live_subscriber_refused"}
            assert registry.get_sample_value("tokentail_telemetry_dropped_total", sink) == 1
            assert hub.subscribers == 3  # the refused one never joined
            first[0].close()  # one leaves: its place is free again
            await until(lambda: hub.subscribers <= 2, timeout=5)
            async with s.get(server.make_url("/api/live")) as again:
                assert again.status == 200
            for r in first[1:]:
                r.close()
    finally:
        await server.close()


def test_ready_events_go_out_in_one_write_and_a_big_one_in_slices():
    from tokentail.proxy.api import _ready_slices
    from tokentail.proxy.live_sse import SLICE_CHARS, encode_sse
    from tokentail.proxy.live_subscription import Subscription

    small = [(i, "request.delta", {"id": "r", "seq": i, "text": "tok"}, 10) for i in (2, 3)]
    big = (4, "request.end", {"id": "r", "text": "x" * (3 * SLICE_CHARS)}, 10)
    sub = Subscription("b", [*small, big], maxsize=8)
    first = (1, "request.delta", {"id": "r", "seq": 1, "text": "tok"}, 10)
    out = list(_ready_slices(sub, (f"b:{first[0]}", first[1], first[2])))
    expected_small = b"".join(encode_sse(f"b:{e[0]}", e[1], e[2]) for e in (first, *small))
    assert out[0] == expected_small  # three ready deltas, one write
    assert len(out) > 2 and b"".join(out[1:]) == encode_sse("b:4", "request.end", big[2])
    assert sub.get_nowait() is None


def test_a_write_skips_the_stall_timer_only_when_the_buffer_takes_it():
    from tokentail.proxy.api import _fits

    class Transport:
        def __init__(self, size: int, high: int = 65536, closing: bool = False) -> None:
            self.size, self.high, self.closing = size, high, closing

        def is_closing(self) -> bool:
            return self.closing

        def get_write_buffer_size(self) -> int:
            return self.size

        def get_write_buffer_limits(self) -> tuple[int, int]:
            return (self.high // 4, self.high)

    class Protocol:
        def __init__(self, paused: bool = False) -> None:
            self.writing_paused = paused

    ok = Protocol()
    assert _fits(ok, Transport(0), 300)
    assert not _fits(ok, Transport(65_000), 600)  # would cross the high-water mark: it may pause
    assert not _fits(ok, Transport(0), 65536)
    assert not _fits(ok, Transport(0, closing=True), 10)
    assert not _fits(ok, None, 10)
    # Paused above the high-water mark, drained part way (between the marks): still paused, so
    # a write may wait however small it is.
    assert not _fits(Protocol(paused=True), Transport(30_000), 10)
    assert not _fits(object(), Transport(0), 10)  # no pause state to read: assume it may wait

    class Bare:  # no buffer figures: assume it may wait
        def is_closing(self) -> bool:
            return False

    assert not _fits(ok, Bare(), 10)  # type: ignore[arg-type]


async def test_a_subscriber_that_stops_reading_is_dropped_after_the_stall_timeout(sim_server, monkeypatch):
    """Small writes go out without a timer; once the peer's buffers are full a write would
    wait, and that one is bounded: the handler gives up and unsubscribes."""
    import socket

    from tokentail.proxy import api
    from tokentail.proxy import app as keys
    from tokentail.proxy.record import Delta, RequestRecord

    monkeypatch.setattr(api, "STALLED_WRITE_SECONDS", 0.5)
    server = await start_proxy_server(str(sim_server.make_url("/v1")), redact=False)
    sock = socket.create_connection(("127.0.0.1", server.port))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        hub = server.app[keys.HUB]
        hub.subscriber_queue = 10**8  # never dropped for lagging: only the stalled write can end it
        sock.sendall(b"GET /api/live?snapshot=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # and never read
        await until(lambda: hub.subscribers == 1, timeout=5)
        sub = hub._subs[0]
        word = "token " * 500
        t0 = time.perf_counter()
        for n in itertools.count():  # ~7 MB/s of live events, one request per round (each is capped)
            if not hub.subscribers or time.perf_counter() - t0 > 10:
                break
            rec = RequestRecord(id=f"r{n}", variant="v", method="POST", endpoint="/chat/completions", model="m")
            hub.on_start(rec)
            for _ in range(50):
                hub.on_delta(rec, Delta(text=word))
            hub.on_end(rec)
            await asyncio.sleep(0.02)
        assert hub.subscribers == 0, "a subscriber that reads nothing was kept"
        assert not sub.lagged  # the handler's write timed out and it unsubscribed
    finally:
        sock.close()
        await server.close()
