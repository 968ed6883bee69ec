"""Proxy overhead benchmark: direct-to-simulator against through-the-proxy, in one run.

Starts `tokentail simulate` and `tokentail proxy` as separate processes (so the
proxy's CPU time and RSS come from /proc for it alone), then measures, interleaving
direct and proxied rounds so both see the same machine state:

1. latency: 40-token streams at 10 ms per token, concurrency 8 -> added TTFT and
   added total latency, p50/p99;
2. throughput: 40-token streams with no token delay at concurrency 32 -> streamed
   requests per second, as a ratio to direct;
3. the proxy's CPU time per streamed request (utime+stime deltas from /proc);
4. the proxy's RSS idle, after 10,000 requests, and after another 10,000 (flat?);
5. with --telemetry: the throughput with spans exported to a loopback OTLP/HTTP
   receiver and /metrics scraped every second, against telemetry off.

Usage: python bench/proxy_bench.py [--quick] [--telemetry]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager

import aiohttp
from _procfs import cpu_seconds, free_port, rss_mb  # bench/ is on sys.path

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable
BODY = json.dumps(
    {"model": "sim-gpt-4o", "stream": True, "messages": [{"role": "user", "content": "Tell me about proxies."}]}
).encode()


@contextmanager
def process(args: list[str], port: int, env: dict | None = None):
    proc = subprocess.Popen(
        [PY, "-m", "tokentail", *args, "--port", str(port), "--log-level", "warning"],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"{args[0]} did not start")
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def one_stream(session: aiohttp.ClientSession, url: str, headers: dict) -> tuple[float, float]:
    """(ttft, total) seconds for one streamed chat completion read to the end."""
    t0 = time.perf_counter()
    ttft = None
    async with session.post(url, data=BODY, headers=headers) as r:
        async for chunk in r.content.iter_any():
            if ttft is None and b"content" in chunk:
                ttft = time.perf_counter() - t0
    total = time.perf_counter() - t0
    return (ttft if ttft is not None else total), total


async def run_load(url: str, n: int, concurrency: int, headers: dict) -> tuple[list[float], list[float], float]:
    ttfts: list[float] = []
    totals: list[float] = []
    queue = iter(range(n))
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as session:

        async def worker():
            for _ in queue:
                a, b = await one_stream(session, url, headers)
                ttfts.append(a)
                totals.append(b)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return ttfts, totals, wall


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


async def otlp_sink(port: int):
    """A loopback OTLP/HTTP receiver that accepts and discards spans."""
    from aiohttp import web

    count = {"requests": 0}

    async def traces(request):
        await request.read()
        count["requests"] += 1
        return web.Response(status=200, content_type="application/x-protobuf", body=b"")

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, count


async def scraper(url: str, stop: asyncio.Event):
    async with aiohttp.ClientSession() as s:
        while not stop.is_set():
            async with s.get(url) as r:
                await r.read()
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass


async def throughput(direct: str, proxied: str, proxy_pid: int, n: int, rounds: int) -> dict:
    d_rps, p_rps, cpu = [], [], []
    for _ in range(rounds):
        _, _, wall = await run_load(direct, n, 32, {})
        d_rps.append(n / wall)
        c0 = cpu_seconds(proxy_pid)
        _, _, wall = await run_load(proxied, n, 32, {})
        cpu.append((cpu_seconds(proxy_pid) - c0) / n)
        p_rps.append(n / wall)
    return {
        "direct_rps": statistics.median(d_rps),
        "proxy_rps": statistics.median(p_rps),
        "cpu_ms_per_request": statistics.median(cpu) * 1000,
    }


async def main_async(args) -> None:
    quick = args.quick
    sim_port, proxy_port = free_port(), free_port()
    lat_n = 80 if quick else 400
    tp_n = 300 if quick else 2000
    rounds = 2 if quick else 4
    with process(["simulate", "--tokens-per-second", "0", "--ttft", "0", "--length", "40", "--seed", "1"], sim_port):
        direct = f"http://127.0.0.1:{sim_port}/v1/chat/completions"
        proxied = f"http://127.0.0.1:{proxy_port}/v1/chat/completions"
        with process(["proxy", "--upstream", f"http://127.0.0.1:{sim_port}/v1"], proxy_port) as proxy:
            pid = proxy.pid
            await run_load(proxied, 50, 8, {})  # warm up
            await run_load(direct, 50, 8, {})
            rss_idle = rss_mb(pid)

            # 1. latency at 10 ms per token, interleaved rounds
            slow = {"x-sim-tps": "100"}
            d_ttft, d_tot, p_ttft, p_tot = [], [], [], []
            for _ in range(rounds):
                a, b, _ = await run_load(direct, lat_n // rounds, 8, slow)
                d_ttft += a
                d_tot += b
                a, b, _ = await run_load(proxied, lat_n // rounds, 8, slow)
                p_ttft += a
                p_tot += b

            # 2+3. throughput and CPU per request
            tp = await throughput(direct, proxied, pid, tp_n, rounds)

            # 4. RSS after 10,000 and 20,000 requests
            mem_n = 2000 if quick else 10000
            await run_load(proxied, mem_n, 32, {})
            rss_1 = rss_mb(pid)
            await run_load(proxied, mem_n, 32, {})
            rss_2 = rss_mb(pid)

        print(
            f"\ntokentail proxy benchmark ({'quick' if quick else 'full'}; {os.cpu_count()} cores; "
            f"simulator and proxy in separate processes)\n"
        )
        print(
            f"latency, 40-token streams at 10 ms/token, concurrency 8 ({len(p_ttft)} requests each way, interleaved):"
        )
        for name, d, p in (("TTFT", d_ttft, p_ttft), ("total", d_tot, p_tot)):
            for q in (50, 99):
                dq, pq = pct(d, q) * 1000, pct(p, q) * 1000
                print(f"  {name:5} p{q}: direct {dq:7.2f} ms  proxy {pq:7.2f} ms  added {pq - dq:+6.2f} ms")
        print(f"\nthroughput, 40-token streams, no token delay, concurrency 32 ({tp_n} requests x {rounds} rounds):")
        print(
            f"  direct {tp['direct_rps']:7.0f} req/s   proxy {tp['proxy_rps']:7.0f} req/s   "
            f"ratio {tp['proxy_rps'] / tp['direct_rps']:.2f}x"
        )
        print(f"  proxy CPU per streamed request: {tp['cpu_ms_per_request']:.3f} ms")
        print(
            f"\nproxy RSS: idle {rss_idle:.1f} MB, after {mem_n:,} requests {rss_1:.1f} MB, "
            f"after {2 * mem_n:,} {rss_2:.1f} MB (growth over the second batch {rss_2 - rss_1:+.1f} MB)"
        )

        if args.telemetry:
            otlp_port = free_port()
            runner, count = await otlp_sink(otlp_port)
            env = {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            }
            tel_port, plain_port = free_port(), free_port()
            upstream = ["proxy", "--upstream", f"http://127.0.0.1:{sim_port}/v1"]
            with process(upstream, tel_port, env), process(upstream, plain_port):
                stop = asyncio.Event()
                scrape = asyncio.create_task(scraper(f"http://127.0.0.1:{tel_port}/metrics", stop))
                tel_url = f"http://127.0.0.1:{tel_port}/v1/chat/completions"
                plain_url = f"http://127.0.0.1:{plain_port}/v1/chat/completions"
                await run_load(tel_url, 50, 8, {})
                await run_load(plain_url, 50, 8, {})
                on_rps, off_rps = [], []
                for _ in range(rounds):  # interleaved, same simulator
                    _, _, wall = await run_load(tel_url, tp_n, 32, {})
                    on_rps.append(tp_n / wall)
                    _, _, wall = await run_load(plain_url, tp_n, 32, {})
                    off_rps.append(tp_n / wall)
                stop.set()
                await scrape
            await runner.cleanup()
            on, off = statistics.median(on_rps), statistics.median(off_rps)
            print(
                f"\ntelemetry on (OTLP/HTTP to a loopback receiver, {count['requests']} export calls; /metrics "
                f"scraped every 1 s): {on:.0f} req/s; off: {off:.0f} req/s; ratio {on / off:.2f}x"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run, noisier figures)")
    parser.add_argument("--telemetry", action="store_true", help="also measure telemetry on against off")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
