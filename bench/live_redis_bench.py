"""Live plane on Redis Streams: what --live-redis costs the proxy, and what it stores.

Starts `tokentail simulate`, a real `redis-server` (loopback, no persistence) and two
`tokentail proxy` processes in front of the simulator: one plain, one with --live-redis.
Interleaving rounds so all see the same machine state, it measures:

1. throughput: 40-token streams with no token delay at concurrency 32 through each proxy,
   as a ratio to direct, and the proxy's CPU time per streamed request;
2. latency: 40-token streams at 10 ms per token, concurrency 8: added total latency p50/p99
   with and without --live-redis;
3. Redis entries per request (deltas folded over a few ms: far fewer than tokens) and bytes;
4. the same throughput with Redis stopped: the proxy must not slow down (events dropped,
   counted in tokentail_telemetry_dropped_total{sink="live_redis"}).

Usage: python bench/live_redis_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

import aiohttp
from _procfs import cpu_seconds, free_port  # bench/ is on sys.path
from proxy_bench import pct, process, run_load


def start_redis(port: int) -> subprocess.Popen:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server not found (make system-deps)")
    tmp = tempfile.mkdtemp(prefix="tokentail-bench-redis-")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    import socket
    import time

    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


async def dropped(metrics_url: str) -> float:
    async with aiohttp.ClientSession() as s, s.get(metrics_url) as r:
        text = await r.text()
    m = re.search(r'^tokentail_telemetry_dropped_total\{sink="live_redis"\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


async def rounds_of(urls: dict[str, str], pids: dict[str, int | None], n: int, rounds: int, conc: int, hdr: dict):
    rps: dict[str, list[float]] = {k: [] for k in urls}
    cpu: dict[str, list[float]] = {k: [] for k in urls}
    totals: dict[str, list[float]] = {k: [] for k in urls}
    for _ in range(rounds):
        for name, url in urls.items():
            pid = pids[name]
            c0 = cpu_seconds(pid) if pid else 0.0
            _, tot, wall = await run_load(url, n, conc, hdr)
            rps[name].append(n / wall)
            totals[name] += tot
            if pid:
                cpu[name].append((cpu_seconds(pid) - c0) / n * 1000)
    return rps, cpu, totals


async def main_async(quick: bool) -> None:
    import redis

    sim_port, plain_port, live_port, redis_port = free_port(), free_port(), free_port(), free_port()
    n, rounds = (300, 2) if quick else (2000, 4)
    lat_n = 80 if quick else 400
    rproc = start_redis(redis_port)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    client = redis.Redis.from_url(redis_url)
    try:
        with (
            process(["simulate", "--tokens-per-second", "0", "--ttft", "0", "--length", "40", "--seed", "1"], sim_port),
            process(["proxy", "--upstream", f"http://127.0.0.1:{sim_port}/v1"], plain_port) as plain,
            process(
                ["proxy", "--upstream", f"http://127.0.0.1:{sim_port}/v1", "--live-redis", redis_url], live_port
            ) as live,
        ):
            urls = {
                "direct": f"http://127.0.0.1:{sim_port}/v1/chat/completions",
                "plain": f"http://127.0.0.1:{plain_port}/v1/chat/completions",
                "live_redis": f"http://127.0.0.1:{live_port}/v1/chat/completions",
            }
            pids = {"direct": None, "plain": plain.pid, "live_redis": live.pid}
            for url in urls.values():
                await run_load(url, 50, 8, {})  # warm up
            client.delete("tokentail:live")
            rps, cpu, _ = await rounds_of(urls, pids, n, rounds, 32, {})
            await asyncio.sleep(0.5)  # the last batch
            proxied = n * rounds
            xlen = client.xlen("tokentail:live")
            mem = client.memory_usage("tokentail:live") or 0
            _, _, totals = await rounds_of(urls, pids, lat_n // rounds, rounds, 8, {"x-sim-tps": "100"})

            rproc.send_signal(signal.SIGKILL)
            rproc.wait(10)
            d0 = await dropped(f"http://127.0.0.1:{live_port}/metrics")
            rps_down, _, _ = await rounds_of(urls, pids, n // 2, rounds, 32, {})
            await asyncio.sleep(1.0)
            d1 = await dropped(f"http://127.0.0.1:{live_port}/metrics")

        med = {k: statistics.median(v) for k, v in rps.items()}
        print(f"\ntokentail live plane benchmark ({'quick' if quick else 'full'}; {os.cpu_count()} cores)\n")
        print(f"throughput, 40-token streams, no token delay, concurrency 32 ({n} requests x {rounds} rounds):")
        for k in ("plain", "live_redis"):
            print(
                f"  {k:10} {med[k]:7.0f} req/s  ratio to direct {med[k] / med['direct']:.2f}x  "
                f"CPU {statistics.median(cpu[k]):.3f} ms/request"
            )
        print(f"  --live-redis against plain: {med['live_redis'] / med['plain']:.2f}x")
        print("\nlatency, 40-token streams at 10 ms/token, concurrency 8 (total, added to direct):")
        for k in ("plain", "live_redis"):
            for q in (50, 99):
                add = (pct(totals[k], q) - pct(totals["direct"], q)) * 1000
                print(f"  {k:10} p{q}: {add:+6.2f} ms")
        print(
            f"\nRedis: {xlen / proxied:.1f} stream entries per request of 40 tokens "
            f"({xlen:,} for {proxied:,} requests; MAXLEN ~ 100000 bounds it), {mem / max(1, xlen):.0f} bytes/entry"
        )
        med_down = {k: statistics.median(v) for k, v in rps_down.items()}
        print(
            f"\nRedis stopped: --live-redis proxy {med_down['live_redis']:.0f} req/s "
            f"(plain {med_down['plain']:.0f}, ratio {med_down['live_redis'] / med_down['plain']:.2f}x); "
            f"events dropped and counted: {d1 - d0:,.0f}"
        )
    finally:
        client.close()
        if rproc.poll() is None:
            rproc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run, noisier figures)")
    asyncio.run(main_async(parser.parse_args().quick))


if __name__ == "__main__":
    main()
