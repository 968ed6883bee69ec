"""Does one request's content hold the event loop? (RELIABILITY 30)

Runs the real proxy app in this process and the stall test's harness (a scripted upstream
and the clients, ``tests/proxy/_stall_harness.py``) in another: eight 4 MiB adversarial
prompts pass while a 10 ms/token stream runs. Reports the stream's largest gap between
chunks (wall clock: noisy on a loaded machine) and the proxy loop's longest single step in
CPU time of its thread (``time.thread_time``: what the loop itself spent, whatever the
load), plus the streaming redactor's cost per delta.

Usage: python bench/content_stall_bench.py [--rounds N]   (from the repository root)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import time
from asyncio import events

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _instrument() -> list[float]:
    """Record the thread CPU time of every event-loop step (callbacks and task steps)."""
    steps: list[float] = []
    run = events.Handle._run

    def timed(self: events.Handle) -> None:
        t = time.thread_time()
        run(self)
        steps.append(time.thread_time() - t)

    events.Handle._run = timed  # type: ignore[method-assign]
    return steps


async def one_round(steps: list[float]) -> tuple[float, float]:
    from tests.conftest import start_proxy

    harness = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.proxy._stall_harness",
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert harness.stdin is not None and harness.stdout is not None
    upstream = (await harness.stdout.readline()).decode().strip()
    proxy = await start_proxy(upstream, max_body=64 << 20)
    try:
        steps.clear()
        harness.stdin.write(str(proxy.make_url("/")).encode() + b"\n")
        await harness.stdin.drain()
        result = json.loads(await harness.stdout.readline())
        await harness.wait()
    finally:
        await proxy.close()
    arr = result["arrivals"]
    gap = max(b - a for a, b in itertools.pairwise(arr))
    return gap * 1000, max(steps) * 1000


def per_delta_us() -> float:
    from tokentail.proxy.redact import Redactor

    words = ("the quick brown fox jumps over the lazy dog, hello world. " * 2000).split(" ")
    sr = Redactor().stream()
    t = time.perf_counter()
    for w in words:
        sr.feed(w + " ")
    sr.flush()
    return (time.perf_counter() - t) / len(words) * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    steps = _instrument()
    print(f"streaming redactor: {per_delta_us():.1f} µs per one-word delta")
    for i in range(args.rounds):
        gap, step = await one_round(steps)
        print(f"round {i + 1}: stream's largest gap {gap:6.0f} ms; proxy loop's longest step {step:6.1f} ms CPU")


if __name__ == "__main__":
    asyncio.run(main())
