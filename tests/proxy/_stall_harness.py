"""The stall test's other side, in its own process: a scripted upstream and the clients.

Run as ``python -m tests.proxy._stall_harness``: prints the upstream's URL, reads the
proxy's base URL from stdin, streams one 10 ms/token answer through the proxy while eight
4 MiB adversarial prompts pass (``--dense``: 4 MiB bodies of one-word messages), then prints ``{"arrivals": [...], "statuses": [...], "lag": s}``:
the arrival time of each of the stream's 83 events, and (with ``--lag``) this loop's own
largest lateness waking a 1 ms timer.
Apart so that what is measured is the proxy's event loop, not the test's own work.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp

from tests.helpers.upstreams import scripted_upstream, serve, sse_script


async def main() -> None:
    n = 4 << 20
    prompts = ["x" * n + " contact me @ work", "a." * (n // 2) + "@"]
    bodies = [
        json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": prompts[i % 2]}]}).encode()
        for i in range(8)
    ]
    if "--dense" in sys.argv:  # 4 MiB of one-word messages (140,000 of them) instead
        tiny = [{"role": "user", "content": "x"}] * (n // 30)
        bodies = [json.dumps({"model": "m", "stream": True, "messages": tiny}).encode()] * 8
    scripts = {"stream": sse_script("text", [f"tok{i} " for i in range(80)])}
    upstream = await serve(scripted_upstream(scripts, delay=0.01))
    print(str(upstream.make_url("/v1")), flush=True)
    base = (await asyncio.to_thread(sys.stdin.readline)).strip()
    arrivals: list[float] = []
    lags: list[float] = []

    async def lag() -> None:  # this loop's own lateness: the bench tells its stalls from the proxy's
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - t - 0.001)

    lagger = asyncio.create_task(lag()) if "--lag" in sys.argv else None
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

        async def post(b: bytes) -> int:
            async with s.post(base + "v1/chat/completions", data=b) as rr:
                await rr.read()
                return rr.status

        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "stream"}]}
        big: list[asyncio.Task[int]] = []
        received = b""
        async with s.post(base + "v1/chat/completions", json=body) as r:
            async for chunk in r.content.iter_any():
                # Each event's arrival: a read that brings several (a late reader) gives them one time.
                t = time.perf_counter()
                received += chunk
                arrivals.extend([t] * (received.count(b"\n\n") - len(arrivals)))
                if not big:
                    big = [asyncio.create_task(post(b)) for b in bodies]
        statuses = list(await asyncio.gather(*big))
    if lagger is not None:
        lagger.cancel()
    await upstream.close()
    print(json.dumps({"arrivals": arrivals, "statuses": statuses, "lag": max(lags, default=0.0)}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
