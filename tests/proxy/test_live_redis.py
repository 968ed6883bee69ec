"""live_redis: the proxy appends its live events to a real redis-server, never waiting on it.

Real proxies in front of the simulator (or a scripted upstream), the real ``openai`` SDK as
client, a real ``redis-server`` on a free loopback port (skipped without the binary unless
TOKENTAIL_REQUIRE_REDIS=1). Redis down, paused (slow) or out of memory (full): every request
completes as without Redis, the lost events are counted, and the writer reconnects.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time

import openai
import pytest
import redis

from tests.helpers import until
from tests.helpers.proxies import start_proxy, start_sim
from tests.helpers.redis import RedisServer, raw_entries, redis_binary, stream_events, texts_by_request
from tests.helpers.secrets import STREAM_SECRETS, middle
from tests.helpers.upstreams import scripted_upstream, serve, sse_script
from tokentail.proxy.live_redis import LiveRedisSink
from tokentail.proxy.state import HUB

KEY = "sk-live-redis-test-0123456789abcdefghij"  # the client's API key: never in the stream
MSGS = [{"role": "user", "content": "Tell me about tails."}]
DROPPED = re.compile(r'^tokentail_telemetry_dropped_total\{sink="live_redis"\} (\S+)$', re.M)


@pytest.fixture
def redis_server():
    server = RedisServer(redis_binary()).start()
    yield server
    server.stop()


def dropped(proxy) -> float:
    m = DROPPED.search(proxy.metrics())
    assert m, "the live_redis drop counter is exported from the start"
    return float(m.group(1))


async def chat(base_url: str, content: str = "Tell me about tails.", model: str = "sim-gpt-4o", client=None) -> str:
    """One streamed chat completion through the real SDK (``client``: reuse one)."""
    own = client is None
    if own:
        client = openai.AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=30)
    try:
        text = ""
        stream = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": content}], stream=True
        )
        async for chunk in stream:
            for c in chunk.choices:
                text += c.delta.content or ""
        return text
    finally:
        if own:
            await client.close()


async def test_every_event_reaches_the_stream_in_order_with_deltas_batched(redis_server):
    sim = await start_sim(length=60, tokens_per_second=2000)
    proxy = await start_proxy(str(sim.make_url("/v1")), live_redis=redis_server.url)
    hub = proxy.app[HUB]
    published: list = []
    hub.add_sink(published.append)  # what the hub published, beside the Redis sink
    try:
        texts = await asyncio.gather(*(chat(proxy.url("/v1")) for _ in range(4)))
        await until(lambda: sum(e[1] == "request.end" for e in stream_events(redis_server.url)) == 4, timeout=10)
        events = stream_events(redis_server.url)
        assert {e[3] for e in events} == {hub.boot_id}
        by_req: dict[str, list[str]] = {}
        for _, name, data, _ in events:
            by_req.setdefault(data["id"], []).append(name)
        assert len(by_req) == 4
        for names in by_req.values():  # each request's own order: start, deltas, end
            assert names[0] == "request.start" and names[-1] == "request.end"
            assert set(names[1:-1]) <= {"request.delta"}
        assert sorted(texts_by_request(events).values()) == sorted(texts)
        ids = [tuple(map(int, e[0].split("-"))) for e in events]
        assert ids == sorted(ids)
        # Batching folds each request's deltas of a few ms into one entry; the last one
        # carries the seq of the last delta it holds.
        hub_deltas = [ev[2] for ev in published if ev[1] == "request.delta"]
        deltas = [d for _, n, d, _ in events if n == "request.delta"]
        assert len(events) - len(deltas) == 8 and 0 < len(deltas) <= len(hub_deltas)
        for rid in by_req:
            last_seq = max(d["seq"] for d in hub_deltas if d["id"] == rid)
            assert [d["seq"] for d in deltas if d["id"] == rid][-1] == last_seq
        assert dropped(proxy) == 0
    finally:
        await proxy.close()
        await sim.close()


async def test_redis_down_then_back_requests_unaffected_drops_counted_reconnects(redis_server, caplog):
    caplog.set_level(logging.INFO, "tokentail.proxy")
    sim = await start_sim(length=20)
    proxy = await start_proxy(str(sim.make_url("/v1")), live_redis=redis_server.url)
    try:
        direct = await chat(str(sim.make_url("/v1")))
        assert await chat(proxy.url("/v1")) == direct
        await until(lambda: len(stream_events(redis_server.url)) >= 3, timeout=10)
        redis_server.stop()
        t0 = time.perf_counter()
        results = await asyncio.gather(*(chat(proxy.url("/v1")) for _ in range(10)))
        elapsed = time.perf_counter() - t0
        assert results == [direct] * 10
        assert elapsed < 10  # generous: what matters is that none waited on Redis
        await until(lambda: dropped(proxy) >= 30, timeout=15, what="10 requests' events counted as dropped")
        redis_server.start()  # empty: --save ''
        assert await chat(proxy.url("/v1")) == direct
        await until(lambda: any(e[1] == "request.end" for e in stream_events(redis_server.url)), timeout=15)
        events = stream_events(redis_server.url)
        assert texts_by_request(events) and list(texts_by_request(events).values())[-1] == direct

        def logged(what: str) -> list[logging.LogRecord]:
            return [r for r in caplog.records if what in r.getMessage()]

        # The writer logs "up" once its write returned, a moment after Redis holds the entries.
        await until(lambda: len(logged("appending live events")) == 2, timeout=5)
        downs, ups = logged("unavailable"), logged("appending live events")
        assert len(downs) == 1, [r.getMessage() for r in downs]  # once per change, not per batch
        assert all("redis://127.0.0.1" in r.getMessage() for r in downs + ups)
    finally:
        await proxy.close()
        await sim.close()


async def test_paused_or_full_redis_delays_no_request(redis_server):
    sim = await start_sim(length=20)
    proxy = await start_proxy(str(sim.make_url("/v1")), live_redis=redis_server.url)
    admin = redis.Redis.from_url(redis_server.url)
    try:
        direct = await chat(str(sim.make_url("/v1")))
        await chat(proxy.url("/v1"))
        admin.client_pause(10_000, all=False)  # writes wait 10 s: Redis is "slow"
        t0 = time.perf_counter()
        assert await asyncio.gather(*(chat(proxy.url("/v1")) for _ in range(5))) == [direct] * 5
        assert time.perf_counter() - t0 < 8  # done while Redis still holds writes (generous on a loaded machine)
        await until(lambda: dropped(proxy) > 0, timeout=10, what="the timed-out batch counted")
        admin.client_unpause()
        admin.config_set("maxmemory", "1")  # full: XADD refused (OOM)
        before = dropped(proxy)
        assert await asyncio.gather(*(chat(proxy.url("/v1")) for _ in range(3))) == [direct] * 3
        await until(lambda: dropped(proxy) >= before + 9, timeout=10, what="refused events counted")
        admin.config_set("maxmemory", "0")
        n = len(raw_entries(redis_server.url))
        await chat(proxy.url("/v1"))
        await until(lambda: len(raw_entries(redis_server.url)) > n, timeout=15, what="writes again")
    finally:
        admin.close()
        await proxy.close()
        await sim.close()


async def test_secrets_and_the_api_key_never_reach_the_stream(redis_server):
    rng = random.Random(15)
    scripts = {}
    for i, (text, _secret) in enumerate(STREAM_SECRETS):
        body = f"see {text} here. "
        pieces, j = [], 0
        while j < len(body):  # split anywhere, 1-5 characters a piece
            n = rng.randint(1, 5)
            pieces.append(body[j : j + n])
            j += n
        scripts[f"s{i}"] = sse_script("text", pieces)
    upstream = await serve(scripted_upstream(scripts))
    proxy = await start_proxy(str(upstream.make_url("/v1")), live_redis=redis_server.url)
    try:
        client = openai.AsyncOpenAI(base_url=proxy.url("/v1"), api_key=KEY, max_retries=0, timeout=30)
        try:
            for name in scripts:
                await chat("", content=name, model="m", client=client)
        finally:
            await client.close()
        await until(
            lambda: sum(e[1] == "request.end" for e in stream_events(redis_server.url)) == len(scripts), timeout=15
        )
        raw = b"".join(eid + b"".join(k + v for k, v in f.items()) for eid, f in raw_entries(redis_server.url))
        text = raw.decode("utf-8", "replace")
        unescaped = "".join(json.loads(f[b"d"]).__repr__() for _, f in raw_entries(redis_server.url))
        for _, secret in STREAM_SECRETS:
            needle = middle(secret)
            assert needle not in text and needle not in unescaped, secret
            assert json.dumps(needle)[1:-1] not in text, secret
        assert KEY not in text and middle(KEY) not in text
        assert "[REDACTED:" in text  # the redacted text did arrive
    finally:
        await proxy.close()
        await upstream.close()


async def test_huge_completion_is_capped_and_split_chunks_keep_the_text(redis_server):
    word = "tail" * 10 + " "
    body = word * (3 * 1024 * 1024 // len(word))  # 3 MiB, one class of characters mostly
    cut = [body[i : i + 4] for i in range(0, 8_000, 4)]  # tiny chunks, then big ones
    big = [body[i : i + 256 * 1024] for i in range(8_000, len(body), 256 * 1024)]
    scripts = {"big": sse_script("text", [p for p in cut if p] + big)}
    upstream = await serve(scripted_upstream(scripts))
    cap = 64 * 1024
    proxy = await start_proxy(str(upstream.make_url("/v1")), live_redis=redis_server.url, capture_bytes=cap)
    try:
        got = await chat(proxy.url("/v1"), content="big", model="m")
        assert len(got) > 3_000_000  # the client gets everything
        await until(lambda: any(e[1] == "request.end" for e in stream_events(redis_server.url)), timeout=15)
        events = stream_events(redis_server.url)
        (text,) = texts_by_request(events).values()
        assert 0 < len(text.encode()) <= cap
        assert got.startswith(text)
        end = next(d for _, n, d, _ in events if n == "request.end")
        assert end["truncated"] is True
        assert sum(len(f[b"d"]) for _, f in raw_entries(redis_server.url)) < 4 * cap
    finally:
        await proxy.close()
        await upstream.close()


async def test_without_live_redis_the_proxy_has_no_sink_and_no_counter_series():
    sim = await start_sim()
    proxy = await start_proxy(str(sim.make_url("/v1")))
    try:
        assert await chat(proxy.url("/v1"))
        assert proxy.app[HUB]._sinks == []
        assert 'sink="live_redis"' not in proxy.metrics()
    finally:
        await proxy.close()
        await sim.close()


def test_the_buffer_is_bounded_oldest_dropped_first_and_counted():
    counted: list[tuple[str, int]] = []
    sink = LiveRedisSink(
        "redis://127.0.0.1:1",
        boot_id="b",
        max_events=100,
        max_bytes=10_000,
        on_drop=lambda s, n: counted.append((s, n)),
    )
    for i in range(250):
        sink.push((i, "request.delta", {"id": "r", "seq": i, "text": "x"}, 50))
    assert sink.buffered == 100 and sink.dropped == 150
    assert sum(n for _, n in counted) == 150 and {s for s, _ in counted} == {"live_redis"}
    assert sink._buf[0][0] == 150  # the newest kept
    sink.push((999, "request.end", {"id": "r"}, 9_000))  # over the byte bound: older ones go
    assert sink._bytes <= 10_000 and sink._buf[-1][0] == 999
