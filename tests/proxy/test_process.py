"""The proxy as a process: graceful SIGTERM, many concurrent streams, mass disconnects
(RELIABILITY cases 28 and 29: memory, open files and in-flight work return to baseline)."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from tests.helpers import listening, until
from tests.helpers.procs import TokentailProcess

BODY = {"model": "sim-gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture
def sim():
    p = TokentailProcess(
        "simulate", "--tokens-per-second", "0", "--ttft", "0", "--length", "20", "--log-level", "warning"
    )
    yield p
    p.stop()


@pytest.fixture
def proxy(sim):
    p = TokentailProcess("proxy", "--upstream", f"{sim.url}/v1", "--grace", "5s", "--log-level", "warning")
    yield p
    p.stop()


async def metric(proxy: TokentailProcess, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    from prometheus_client.parser import text_string_to_metric_families

    async with aiohttp.ClientSession() as s:
        async with s.get(f"{proxy.url}/metrics") as r:
            text = await r.text()
    hits = [
        smp.value
        for fam in text_string_to_metric_families(text)
        for smp in fam.samples
        if smp.name == name and all(smp.labels.get(k) == v for k, v in labels.items())
    ]
    assert hits, f"{name}{labels} not exposed"
    return sum(hits)


def in_flight_zero(proxy: TokentailProcess):
    """A predicate for ``until``: the proxy has no request in flight."""

    async def idle() -> bool:
        return await metric(proxy, "tokentail_in_flight_requests") == 0

    return idle


async def sim_stats(sim: TokentailProcess) -> dict:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{sim.url}/_sim/stats") as r:
            return await r.json()


async def test_sigterm_lets_in_flight_streams_finish_then_exits(sim, proxy):
    async with aiohttp.ClientSession() as s:
        async with s.post(
            f"{proxy.url}/v1/chat/completions", json=BODY, headers={"x-sim-tps": "20", "x-sim-tokens": "30"}
        ) as r:  # ~1.5 s stream
            first = await r.content.readany()
            proxy.proc.send_signal(15)
            await until(lambda: not listening(proxy.port), timeout=5, what="the proxy still accepts")
            with pytest.raises(aiohttp.ClientConnectionError):  # no new connections
                async with aiohttp.ClientSession() as s2:
                    await s2.get(f"{proxy.url}/healthz")
            rest = await r.read()
    body = first + rest
    assert body.rstrip().endswith(b"data: [DONE]")  # the in-flight stream finished whole
    assert body.count(b'"content"') >= 30
    proxy.proc.wait(10)
    assert proxy.proc.returncode == 0


@pytest.mark.slow
async def test_hundreds_of_concurrent_streams_return_to_baseline(sim, proxy):
    idle = in_flight_zero(proxy)
    async with aiohttp.ClientSession() as s:  # warm up: pools, caches, lazy imports
        for _ in range(20):
            async with s.post(f"{proxy.url}/v1/chat/completions", json=BODY) as r:
                await r.read()
    await until(idle, timeout=10)
    fds0, rss0 = proxy.open_fds(), proxy.rss_mb()

    done = 0
    deadline = time.monotonic() + 60  # RELIABILITY 28: hundreds of streams for 60 s in CI

    async def worker(session):
        nonlocal done
        while time.monotonic() < deadline:
            async with session.post(
                f"{proxy.url}/v1/chat/completions", json=BODY, headers={"x-sim-tps": "100", "x-sim-tokens": "50"}
            ) as r:
                body = await r.read()
                assert body.rstrip().endswith(b"[DONE]")
                done += 1

    peak_in_flight = 0

    async def watch():
        nonlocal peak_in_flight
        while time.monotonic() < deadline:
            peak_in_flight = max(peak_in_flight, await metric(proxy, "tokentail_in_flight_requests"))
            await asyncio.sleep(2)  # a sample every 2 s: the watcher must not load the proxy

    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=120)) as session:
        await asyncio.gather(watch(), *(worker(session) for _ in range(200)))
        rss_peak = proxy.rss_mb()
    await until(idle, timeout=10)
    assert peak_in_flight >= 100 and done > 1000
    assert await metric(proxy, "tokentail_in_flight_requests") == 0
    # Idle upstream connections stay pooled for aiohttp's 15 s keep-alive, then close.
    await until(lambda: proxy.open_fds() <= fds0 + 2, timeout=25, step=0.25, what="open files back to baseline")
    assert proxy.open_fds() <= fds0 + 2, (fds0, proxy.open_fds())
    assert rss_peak < 300 and proxy.rss_mb() < rss0 + 100, (rss0, rss_peak, proxy.rss_mb())
    assert (await sim_stats(sim))["in_flight"] == 0


@pytest.mark.slow
async def test_thousands_of_instant_disconnects_leak_nothing(sim, proxy):
    idle = in_flight_zero(proxy)
    fds0 = proxy.open_fds()

    async def hit_and_run():
        _reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        body = json.dumps(BODY).encode()
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"x-sim-ttft-ms: 2000\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        await writer.drain()
        await asyncio.sleep(0.5)  # the scenario: a client that sent its request, then leaves
        writer.close()  # gone before the first token (the simulator waits 2 s for it)

    for _ in range(10):  # 2,000 in batches of 200
        await asyncio.gather(*(hit_and_run() for _ in range(200)))
    stats: dict = {}

    async def all_closed() -> bool:
        stats.update(await sim_stats(sim))
        return stats["in_flight"] == 0 and await idle()

    await until(all_closed, timeout=15, step=0.25)
    assert stats["in_flight"] == 0, stats  # every upstream call was closed
    assert stats["requests"] >= 1500 and stats["client_disconnects"] == stats["requests"], stats
    assert proxy.open_fds() <= fds0 + 2
    assert await metric(proxy, "tokentail_requests_total", status_class="cancelled") >= stats["requests"]
