"""The collector's /api/live over Redis Streams: many proxies, one merged feed.

Real proxies (each in front of its own simulator) with ``--live-redis``, the real ``openai``
SDK as client, a real ``redis-server`` on a free loopback port (skipped without the binary
unless TOKENTAIL_REQUIRE_REDIS=1), the collector app on loopback, its feed read as a browser
reads it (SSE, ``Last-Event-ID``).
"""

from __future__ import annotations

import asyncio

import aiohttp
import openai
import pytest
import redis

from tests.helpers import read_events, reading, serve, until
from tests.helpers.fakes import make_config
from tests.helpers.proxies import start_proxy, start_sim
from tests.helpers.redis import RedisServer, raw_entries, redis_binary, stream_events
from tokentail.collector.app import create_app
from tokentail.proxy.state import HUB

KEY = "sk-merged-feed-0123456789abcdefghij"
LIVE_EVENTS = ("request.start", "request.delta", "request.end")


@pytest.fixture
def redis_server():
    server = RedisServer(redis_binary()).start()
    yield server
    server.stop()


async def start_collector(tmp_path, redis_url: str | None, **cfg):
    config = make_config(tmp_path, live_redis=redis_url, **cfg)
    return await serve(create_app(config, scrape=False, maintain=False))


async def chat(base_url: str, content: str = "Tell me about tails.") -> str:
    client = openai.AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=30)
    try:
        text = ""
        stream = await client.chat.completions.create(
            model="sim-gpt-4o", messages=[{"role": "user", "content": content}], stream=True
        )
        async for chunk in stream:
            for c in chunk.choices:
                text += c.delta.content or ""
        return text
    finally:
        await client.close()


class Feed:
    """A browser-like reader of a collector's /api/live, collecting (id, event, data) in a task."""

    def __init__(self) -> None:
        self.events: list[tuple[str | None, str, dict]] = []
        self._raw: list = []
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task | None = None

    async def open(self, url: str, last_id: str | None = None, expect_first: bool = True) -> Feed:
        self._session = aiohttp.ClientSession()
        headers = {"Last-Event-ID": last_id} if last_id else {}
        resp = await self._session.get(url + "/api/live", headers=headers, timeout=aiohttp.ClientTimeout(total=None))
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        if expect_first:
            self._task = await reading(read_events(resp, self._raw, meta=True), self._raw, timeout=10)
        else:
            self._task = asyncio.ensure_future(read_events(resp, self._raw, meta=True))
        return self

    def collected(self) -> list[tuple[str | None, str, dict]]:
        return [(i, e, d) for i, e, d, _ in self._raw]

    def live(self) -> list[tuple[str, str, dict]]:
        return [(i, e, d) for i, e, d in self.collected() if e in LIVE_EVENTS]

    def ends(self) -> int:
        return sum(e == "request.end" for _, e, _ in self.collected())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._session is not None:
            await self._session.close()


def _ids(events) -> list[tuple[int, int]]:
    return [tuple(map(int, i.split("-"))) for i, _, _ in events]


def _texts(events) -> dict[str, str]:
    out: dict[str, str] = {}
    for _, name, d in events:
        if name == "request.delta":
            out[d["id"]] = out.get(d["id"], "") + d.get("text", "")
        elif name == "request.end" and isinstance(d.get("text"), str):
            out[d["id"]] = d["text"]
    return out


async def test_two_proxies_one_feed_each_request_in_order(redis_server, tmp_path):
    sims = [await start_sim(length=40, tokens_per_second=400), await start_sim(length=30, tokens_per_second=300)]
    proxies = [await start_proxy(str(s.make_url("/v1")), live_redis=redis_server.url) for s in sims]
    collector = await start_collector(tmp_path, redis_server.url)
    feed = await Feed().open(str(collector.make_url("")))
    try:
        first = feed.collected()[0]
        assert first[1] == "snapshot" and first[2] == {"source": "live_redis", "events": 0}
        texts = await asyncio.gather(*(chat(p.url("/v1")) for p in proxies for _ in range(3)))
        await until(lambda: feed.ends() == 6, timeout=15, what="6 request.end on the merged feed")
        events = feed.live()
        ids = _ids(events)
        assert ids == sorted(ids) and len(set(ids)) == len(ids)  # the stream's order, no duplicate
        hubs = [p.app[HUB] for p in proxies]
        per_proxy = [0, 0]
        by_req: dict[str, list[str]] = {}
        for _, name, d in events:
            by_req.setdefault(d["id"], []).append(name)
        for rid, names in by_req.items():
            assert names[0] == "request.start" and names[-1] == "request.end", names
            assert set(names[1:-1]) == {"request.delta"}
            owner = [h.get_request(rid) is not None for h in hubs]
            assert owner.count(True) == 1
            per_proxy[owner.index(True)] += 1
        assert per_proxy == [3, 3]  # both proxies' requests, on one feed
        assert sorted(_texts(events).values()) == sorted(texts)
        # The feed is the stream: every entry once, with its stream id as the SSE id.
        assert [i for i, _, _ in events] == [e[0] for e in stream_events(redis_server.url)]
    finally:
        await feed.close()
        await collector.close()
        for p in proxies:
            await p.close()
        for s in sims:
            await s.close()


async def test_last_event_id_resumes_across_a_collector_restart(redis_server, tmp_path):
    sim = await start_sim(length=20)
    proxy = await start_proxy(str(sim.make_url("/v1")), live_redis=redis_server.url)
    collector = await start_collector(tmp_path, redis_server.url)
    feed = await Feed().open(str(collector.make_url("")))
    try:
        await chat(proxy.url("/v1"))
        await until(lambda: feed.ends() == 1, timeout=10)
        last_id = feed.live()[-1][0]
        await feed.close()
        await collector.close()  # the reader goes; the proxies keep writing to Redis
        missed = await asyncio.gather(*(chat(proxy.url("/v1")) for _ in range(3)))
        await until(lambda: sum(e[1] == "request.end" for e in stream_events(redis_server.url)) == 4, timeout=10)
        collector = await start_collector(tmp_path / "again", redis_server.url)  # a new process, another port
        feed = await Feed().open(str(collector.make_url("")), last_id=last_id)
        await until(lambda: feed.ends() == 3, timeout=10)
        resumed = feed.collected()
        assert all(e != "snapshot" for _, e, _ in resumed)  # exactly what followed: no snapshot
        expected = [
            e[0]
            for e in stream_events(redis_server.url)
            if tuple(map(int, e[0].split("-"))) > _ids([(last_id, 0, 0)])[0]
        ]
        assert [i for i, _, _ in feed.live()] == expected
        assert sorted(_texts(feed.live()).values()) == sorted(missed)
    finally:
        await feed.close()
        await collector.close()
        await proxy.close()
        await sim.close()


async def test_a_fresh_listener_gets_a_snapshot_then_the_recent_events(redis_server, tmp_path):
    sim = await start_sim(length=10)
    proxy = await start_proxy(str(sim.make_url("/v1")), live_redis=redis_server.url)
    collector = await start_collector(tmp_path, redis_server.url, live_replay=5)
    try:
        for _ in range(3):
            await chat(proxy.url("/v1"))
        await until(lambda: sum(e[1] == "request.end" for e in stream_events(redis_server.url)) == 3, timeout=10)
        all_ids = [e[0] for e in stream_events(redis_server.url)]
        assert len(all_ids) > 5
        feed = await Feed().open(str(collector.make_url("")))
        await until(lambda: len(feed.live()) == 5, timeout=10)
        snap_id, name, data = feed.collected()[0]
        assert name == "snapshot" and data == {"source": "live_redis", "events": 5}
        assert [i for i, _, _ in feed.live()] == all_ids[-5:]
        await feed.close()
        # Resuming from the snapshot's id replays those same five first.
        feed = await Feed().open(str(collector.make_url("")), last_id=snap_id)
        await until(lambda: len(feed.live()) == 5, timeout=10)
        assert [i for i, _, _ in feed.live()] == all_ids[-5:]
        await feed.close()
    finally:
        await collector.close()
        await proxy.close()
        await sim.close()


async def test_a_resume_point_trimmed_away_starts_over_with_a_snapshot(redis_server, tmp_path):
    sim = await start_sim(length=10)
    proxy = await start_proxy(str(sim.make_url("/v1")), live_redis=redis_server.url)
    collector = await start_collector(tmp_path, redis_server.url, live_replay=3)
    admin = redis.Redis.from_url(redis_server.url)
    try:
        for _ in range(3):
            await chat(proxy.url("/v1"))
        await until(lambda: sum(e[1] == "request.end" for e in stream_events(redis_server.url)) == 3, timeout=10)
        oldest = stream_events(redis_server.url)[0][0]
        admin.xtrim("tokentail:live", maxlen=4, approximate=False)  # what MAXLEN ~ does, exactly
        feed = await Feed().open(str(collector.make_url("")), last_id=oldest)
        await until(lambda: len(feed.live()) == 3, timeout=10)
        assert feed.collected()[0][1] == "snapshot"
        await feed.close()
    finally:
        admin.close()
        await collector.close()
        await proxy.close()
        await sim.close()


async def test_redis_killed_mid_traffic_status_down_then_up_no_duplicates(redis_server, tmp_path):
    sim = await start_sim(length=20)
    proxy = await start_proxy(str(sim.make_url("/v1")), live_redis=redis_server.url)
    collector = await start_collector(tmp_path, redis_server.url)
    feed = await Feed().open(str(collector.make_url("")))
    try:
        direct = await chat(str(sim.make_url("/v1")))
        assert await chat(proxy.url("/v1")) == direct
        await until(lambda: feed.ends() == 1, timeout=10)
        redis_server.stop()
        assert await asyncio.gather(*(chat(proxy.url("/v1")) for _ in range(5))) == [direct] * 5
        await until(lambda: any(e == "status" for _, e, _ in feed.collected()), timeout=15, what="status down")
        status = [d for _, e, d in feed.collected() if e == "status"]
        assert status[0]["live_redis"] == "down" and "Redis unavailable" in status[0]["message"]
        async with aiohttp.ClientSession() as s:
            async with s.get(collector.make_url("/api/status")) as r:
                assert (await r.json())["live_redis"]["up"] is False
        redis_server.start()
        await until(
            lambda: [d["live_redis"] for _, e, d in feed.collected() if e == "status"][-1] == "up",
            timeout=20,
            what="status up once Redis is back",
        )
        assert await chat(proxy.url("/v1")) == direct
        after = proxy.app[HUB].list_requests(limit=1)[0]["id"]  # the newest: sent after the restart
        # The five sent while Redis was down may still be buffered when it returns (then they
        # are written late) or already dropped (counted): either is right; this one must come.
        await until(
            lambda: any(e == "request.end" and d["id"] == after for _, e, d in feed.collected()),
            timeout=15,
            what="the request after the restart on the feed",
        )
        ids = [i for i, _, _ in feed.live()]
        assert len(ids) == len(set(ids))  # nothing shown twice
        assert all(not e.startswith("request.") or i for i, e, _ in feed.collected())
        assert _texts(feed.live())[after] == direct
    finally:
        await feed.close()
        await collector.close()
        await proxy.close()
        await sim.close()


async def test_listener_connected_while_redis_is_down_is_told_and_catches_up(redis_server, tmp_path):
    redis_server.stop()
    collector = await start_collector(tmp_path, redis_server.url)
    feed = await Feed().open(str(collector.make_url("")))
    try:
        first = feed.collected()[0]
        assert first[1] == "status" and first[2]["live_redis"] == "down" and first[0] is None
        redis_server.start()
        await until(lambda: any(e == "snapshot" for _, e, _ in feed.collected()), timeout=20)
        assert [e for _, e, _ in feed.collected()][:3] == ["status", "status", "snapshot"]
    finally:
        await feed.close()
        await collector.close()


async def test_malformed_entries_are_skipped_and_the_feed_goes_on(redis_server, tmp_path):
    collector = await start_collector(tmp_path, redis_server.url)
    feed = await Feed().open(str(collector.make_url("")))
    admin = redis.Redis.from_url(redis_server.url)
    try:
        admin.xadd("tokentail:live", {"e": "request.start", "d": '{"id":"a"}\n\nevent: request.end\ndata: {}'})
        admin.xadd("tokentail:live", {"e": "evil", "d": '{"id":"b"}'})
        admin.xadd("tokentail:live", {"x": "y"})
        admin.xadd("tokentail:live", {"e": "request.start", "d": '{"id":"ok"}', "p": "p1"})
        await until(lambda: len(feed.live()) == 1, timeout=10)
        assert feed.live()[0][1:] == ("request.start", {"id": "ok"})
    finally:
        admin.close()
        await feed.close()
        await collector.close()


async def test_access_rules_and_subscriber_cap(redis_server, tmp_path):
    collector = await start_collector(
        tmp_path, redis_server.url, host="0.0.0.0", read_token="read-tok", live_max_subscribers=1
    )
    url = str(collector.make_url("/api/live"))
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(url) as r:
                assert r.status == 401
            async with s.get(url, headers={"Host": "evil.example"}, params={"token": "read-tok"}) as r:
                assert r.status in (403, 421) and r.status != 200
            async with s.get(url, params={"token": "read-tok"}) as r:
                assert r.status == 200
                await r.content.readuntil(b"\n\n")  # the first subscriber is in
                async with s.get(url, params={"token": "read-tok"}) as r2:
                    assert r2.status == 503 and r2.headers["Retry-After"] == "5"
                    assert (await r2.json())["error"]["type"] == "server_busy"
    finally:
        await collector.close()


async def test_without_live_redis_there_is_no_feed_and_nothing_else_changes(tmp_path):
    collector = await start_collector(tmp_path, None)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(collector.make_url("/api/live")) as r:
                assert r.status == 404
                assert "--live-redis" in (await r.json())["error"]["message"]
            async with s.get(collector.make_url("/api/status")) as r:
                assert "live_redis" not in await r.json()
    finally:
        await collector.close()


async def test_raw_stream_holds_only_the_three_event_fields(redis_server):
    sim = await start_sim(length=5)
    proxy = await start_proxy(str(sim.make_url("/v1")), live_redis=redis_server.url)
    try:
        await chat(proxy.url("/v1"))
        await until(lambda: any(e[1] == "request.end" for e in stream_events(redis_server.url)), timeout=10)
        assert {frozenset(f) for _, f in raw_entries(redis_server.url)} == {frozenset({b"e", b"d", b"p"})}
    finally:
        await proxy.close()
        await sim.close()


async def test_cors_for_the_dashboard_and_a_prompt_shutdown_with_listeners(redis_server, tmp_path):
    origin = "http://127.0.0.1:8050"
    collector = await start_collector(tmp_path, redis_server.url, allowed_origins=frozenset({origin}))
    session = aiohttp.ClientSession()
    try:
        resp = await session.get(collector.make_url("/api/live"), headers={"Origin": origin})
        assert resp.status == 200 and resp.headers["Access-Control-Allow-Origin"] == origin
        out: list = []
        task = await reading(read_events(resp, out, meta=True), out, timeout=10)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await collector.close()  # a listener blocked in XREAD must not hold the shutdown
        assert loop.time() - t0 < 5
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 5)
    finally:
        await session.close()


async def _chat_in_session(base_url: str, session: str, content: str) -> str:
    client = openai.AsyncOpenAI(
        base_url=base_url, api_key=KEY, max_retries=0, timeout=30, default_headers={"X-Session-Id": session}
    )
    try:
        r = await client.chat.completions.create(model="sim-gpt-4o", messages=[{"role": "user", "content": content}])
        return r.choices[0].message.content or ""
    finally:
        await client.close()


async def test_erase_on_the_collector_deletes_the_requests_events_from_the_stream(redis_server, tmp_path):
    sim = await start_sim(length=20)
    proxy = await start_proxy(str(sim.make_url("/v1")), live_redis=redis_server.url)
    collector = await start_collector(tmp_path, redis_server.url)
    try:
        await _chat_in_session(proxy.url("/v1"), "s-gone", "MARKERGONE please")
        await _chat_in_session(proxy.url("/v1"), "s-kept", "MARKERKEPT please")
        await until(lambda: sum(e == "request.end" for _, e, _, _ in stream_events(redis_server.url)) == 2, timeout=10)
        raw = b"".join(f[b"d"] for _, f in raw_entries(redis_server.url))
        assert b"MARKERGONE" in raw and b"MARKERKEPT" in raw
        async with aiohttp.ClientSession() as s:
            async with s.post(collector.make_url("/api/erase"), json={"session": "s-gone"}) as r:
                assert r.status == 200, await r.text()
                assert (await r.json())["live_redis_erased"] >= 2  # its start and end at least
        events = stream_events(redis_server.url)
        raw = b"".join(f[b"d"] for _, f in raw_entries(redis_server.url))
        assert b"MARKERGONE" not in raw and b"MARKERKEPT" in raw
        assert {d.get("session_id") for _, e, d, _ in events if e == "request.start"} == {"s-kept"}
        feed = await Feed().open(str(collector.make_url("")))  # a fresh listener's replay
        try:
            await until(lambda: feed.ends() == 1, timeout=10)
            assert "MARKERGONE" not in repr(feed.collected())
        finally:
            await feed.close()
    finally:
        await collector.close()
        await proxy.close()
        await sim.close()
