"""The floor under the proxy's figures: a bare aiohttp relay, nothing observed (bench only).

What any Python proxy on aiohttp and uvloop pays to pass a stream through, with tokentail's
own work (body parsing, hooks, the tap, telemetry) taken away: the request body read and
sent upstream, the upstream's chunks written to the client as they come, unbuffered, the
same client session settings as the proxy's. ``full_telemetry_bench.py`` runs it beside
the proxies: the difference to it is what tokentail adds; the figure itself is what no
change inside tokentail can go below.

Usage: python bench/_bare_relay.py PORT UPSTREAM_BASE   (e.g. http://127.0.0.1:8000/v1)
"""

from __future__ import annotations

import sys

import aiohttp
from aiohttp import web

from tokentail.serving import new_event_loop

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}


def make_app(upstream: str) -> web.Application:
    app = web.Application()
    session: dict[str, aiohttp.ClientSession] = {}

    async def ctx(_app: web.Application):  # type: ignore[no-untyped-def]
        session["s"] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None)
        )
        yield
        await session["s"].close()

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        url = upstream.rstrip("/") + "/" + request.match_info["tail"]
        async with session["s"].request(request.method, url, data=body, headers=headers) as up:
            resp = web.StreamResponse(status=up.status)
            for k, v in up.headers.items():
                if k.lower() not in _HOP:
                    resp.headers[k] = v
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    app.cleanup_ctx.append(ctx)
    app.router.add_route("*", "/v1/{tail:.*}", relay)
    return app


def main() -> None:
    port, upstream = int(sys.argv[1]), sys.argv[2]
    loop = new_event_loop()  # uvloop, as the proxy runs on
    web.run_app(make_app(upstream), host="127.0.0.1", port=port, print=None, access_log=None, backlog=1024, loop=loop)


if __name__ == "__main__":
    main()
