"""The stall test's other side, in its own process: a scripted upstream and the clients.

Run as ``python -m tests.proxy._stall_harness``: prints the upstream's URL, reads the
proxy's base URL from stdin, streams one 10 ms/token answer through the proxy while eight
4 MiB adversarial prompts pass, then prints ``{"arrivals": [...], "statuses": [...]}``.
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
    scripts = {"stream": sse_script("text", [f"tok{i} " for i in range(80)])}
    upstream = await serve(scripted_upstream(scripts, delay=0.01))
    print(str(upstream.make_url("/v1")), flush=True)
    base = (await asyncio.to_thread(sys.stdin.readline)).strip()
    arrivals: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

        async def post(b: bytes) -> int:
            async with s.post(base + "v1/chat/completions", data=b) as rr:
                await rr.read()
                return rr.status

        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "stream"}]}
        big: list[asyncio.Task[int]] = []
        async with s.post(base + "v1/chat/completions", json=body) as r:
            async for _chunk in r.content.iter_any():
                arrivals.append(time.perf_counter())
                if not big:
                    big = [asyncio.create_task(post(b)) for b in bodies]
        statuses = list(await asyncio.gather(*big))
    await upstream.close()
    print(json.dumps({"arrivals": arrivals, "statuses": statuses}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
