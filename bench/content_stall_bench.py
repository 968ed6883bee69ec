"""Does one request's content hold the event loop? (RELIABILITY 30)

Runs the real proxy app in this process and the stall test's harness (a scripted upstream
and the clients, ``tests/proxy/_stall_harness.py``) in another: eight 4 MiB adversarial
prompts pass while a 10 ms/token stream runs. Reports the stream's largest gap between
chunks (wall clock: noisy on a loaded machine) and the proxy loop's longest single step in
CPU time of its thread (``time.thread_time``: what the loop itself spent, whatever the
load) and all its steps' CPU time together, the largest lateness of a 1 ms timer on the
proxy's loop and on the harness's (wall clock: a step, another thread holding the GIL, or
the scheduler), plus the streaming redactor's cost per delta.
``--top N`` names the N longest steps of each round (a task step by its coroutine and the
line it stopped at next).

Usage: python bench/content_stall_bench.py [--rounds N] [--top N] [--dense]   (from the repository root)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.helpers.loop_steps import LoopSteps  # noqa: E402  (after the path)


async def _lag(out: list[float], period: float = 0.001) -> None:
    """The loop's largest lateness (wall clock) waking a 1 ms timer: how long it was held,
    by its own steps, by another thread holding the GIL, or by the scheduler."""
    while True:
        t = time.perf_counter()
        await asyncio.sleep(period)
        out.append(time.perf_counter() - t - period)


async def one_round(steps: LoopSteps, dense: bool = False) -> dict[str, float]:
    from tests.conftest import start_proxy

    harness = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.proxy._stall_harness",
        "--lag",
        *(["--dense"] if dense else []),
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert harness.stdin is not None and harness.stdout is not None
    upstream = (await harness.stdout.readline()).decode().strip()
    proxy = await start_proxy(upstream, max_body=64 << 20)
    lags: list[float] = []
    try:
        steps.clear()
        lagger = asyncio.create_task(_lag(lags))
        harness.stdin.write(str(proxy.make_url("/")).encode() + b"\n")
        await harness.stdin.drain()
        result = json.loads(await harness.stdout.readline())
        lagger.cancel()
        await harness.wait()
    finally:
        await proxy.close()
    arr = result["arrivals"]
    return {
        "gap": max(b - a for a, b in itertools.pairwise(arr)) * 1000,
        "step": steps.longest * 1000,
        "total": sum(steps.times) * 1000,
        "lag": max(lags) * 1000,
        "harness_lag": result.get("lag", float("nan")) * 1000,
    }


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
    parser.add_argument("--top", type=int, default=0, help="also list the N longest loop steps of each round")
    parser.add_argument("--dense", action="store_true", help="4 MiB bodies of 140,000 one-word messages instead")
    args = parser.parse_args()
    steps = LoopSteps().install()
    print(f"streaming redactor: {per_delta_us():.1f} µs per one-word delta")
    for i in range(args.rounds):
        r = await one_round(steps, args.dense)
        print(
            f"round {i + 1}: stream's largest gap {r['gap']:4.0f} ms; proxy loop: longest step {r['step']:5.1f} ms"
            f" CPU, all steps {r['total']:4.0f} ms CPU, largest lag {r['lag']:4.0f} ms wall;"
            f" harness loop's largest lag {r['harness_lag']:4.0f} ms"
        )
        for dt, what in steps.top(args.top):
            print(f"    {dt * 1000:6.1f} ms  {what}")


if __name__ == "__main__":
    asyncio.run(main())
