"""Garbage-collector pauses in a loaded proxy, with and without ``serving.settle_heap``.

A full collection (generation 2) walks every tracked object and holds the event loop, and
every stream with it, until it is done. ``tokentail proxy`` (as every ``tokentail`` server)
freezes what start-up left alive (``gc.freeze``) once it listens, so those collections walk
only what serving made since.

For each mode, in one run: a child process serves a proxy (``proxy_settings``, as the CLI
resolves them) in front of ``tokentail simulate``, on uvloop; a client process drives
``--streams`` concurrent chat streams (20 tokens/s, 60 tokens) and one ``/api/live``
subscriber reads the live feed. After a warm-up, the child records every collection
(``gc.callbacks``: generation, duration) and how late a 1 ms timer fires (the loop held:
a collection, or a long step) for ``--seconds``.

Usage: python bench/gc_pause_bench.py [--streams 100] [--seconds 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import free_port, wait_port  # noqa: E402
from tests.helpers.browser import quantile  # noqa: E402

MODES = ("as loaded", "settled (gc.freeze)")

CLIENTS = """
import asyncio, sys, time
sys.path.insert(0, {root!r})
from tests.helpers.stack import Stream, _quiet, stream_chat

async def main(base, n, seconds):
    until = time.monotonic() + seconds
    async def worker(i):
        k = 0
        while time.monotonic() < until:
            await _quiet(stream_chat(base, f"Load {{i}}.{{k}}: explain backpressure.", Stream(),
                                     model="sim-gpt-4o", tps=20, ttft_ms=200, tokens=60))
            k += 1
    await asyncio.gather(*(worker(i) for i in range(n)))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
"""

SUBSCRIBER = """
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /api/live HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nAccept: text/event-stream\\r\\n\\r\\n")
while s.recv(65536):
    pass
"""


async def child(mode: str, upstream: str, streams: int, seconds: float) -> dict[str, Any]:
    from aiohttp import web

    from tests.helpers.proxies import proxy_settings
    from tokentail.proxy.app import app_from_settings
    from tokentail.serving import settle_heap

    port = free_port()
    runner = web.AppRunner(app_from_settings(proxy_settings(upstream, port=port)), handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    if mode == MODES[1]:
        settle_heap()
    warm = 5.0
    sub = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, str(port)])
    clients = subprocess.Popen(
        [sys.executable, "-c", CLIENTS.format(root=str(ROOT)), f"http://127.0.0.1:{port}/v1", str(streams)]
        + [str(warm + seconds)]
    )
    await asyncio.sleep(warm)
    pauses: list[tuple[int, float]] = []
    started: list[float] = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append((info["generation"], (time.perf_counter() - started[0]) * 1000))

    gc.callbacks.append(on_gc)
    late: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.monotonic()
        await asyncio.sleep(0.001)
        late.append((time.monotonic() - t - 0.001) * 1000)
    gc.callbacks.remove(on_gc)
    tracked = len(gc.get_objects())
    await asyncio.to_thread(clients.wait)  # its streams end within their 3.2 s
    sub.terminate()
    sub.wait()
    await runner.cleanup()
    late.sort()
    out: dict[str, Any] = {
        "mode": mode,
        "frozen_objects": gc.get_freeze_count(),
        "tracked_objects": tracked,
        "loop_late_ms": {
            "p50": round(quantile(late, 0.5), 2),
            "p99": round(quantile(late, 0.99), 1),
            "p99.9": round(quantile(late, 0.999), 1),
            "max": round(late[-1], 1),
        },
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    for gen in (0, 1, 2):
        ms = [d for g, d in pauses if g == gen]
        out[f"gen{gen}"] = {"count": len(ms), "total_ms": round(sum(ms)), "max_ms": round(max(ms), 1) if ms else 0}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=20.0, help="measured, after a 5 s warm-up")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--upstream", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        import uvloop

        print(json.dumps(uvloop.run(child(args.child, args.upstream, args.streams, args.seconds))))
        return 0

    sim_port = free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "tokentail", "simulate", "--port", str(sim_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results = []
    try:
        wait_port(sim_port, sim, 30)
        for mode in MODES:
            print(f"gc_pause_bench: {mode}, {args.streams} streams, {args.seconds:.0f} s ...", file=sys.stderr)
            done = subprocess.run(
                [sys.executable, __file__, "--child", mode, "--upstream", f"http://127.0.0.1:{sim_port}/v1"]
                + ["--streams", str(args.streams), "--seconds", str(args.seconds)],
                capture_output=True,
                text=True,
                timeout=args.seconds + 120,
                check=True,
            )
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    finally:
        sim.terminate()
        sim.wait(10)
    print(f"{'mode':<22}{'gen2 n':>7}{'gen2 max':>10}{'gen1 max':>10}{'late p99':>10}{'late max':>10}{'tracked':>9}")
    for r in results:
        print(
            f"{r['mode']:<22}{r['gen2']['count']:>7}{r['gen2']['max_ms']:>8.1f}ms{r['gen1']['max_ms']:>8.1f}ms"
            f"{r['loop_late_ms']['p99']:>8.1f}ms{r['loop_late_ms']['max']:>8.1f}ms{r['tracked_objects']:>9}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
