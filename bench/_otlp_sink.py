"""A loopback OTLP/HTTP receiver that accepts and discards spans, as its own process.

``python bench/_otlp_sink.py PORT``: ``POST /v1/traces`` answers 200 (an empty protobuf
ExportTraceServiceResponse); ``GET /count`` returns the export calls and bytes received, so
a benchmark can check spans really went out. A process of its own so that its CPU never
counts against the proxy or the load generator.
"""

from __future__ import annotations

import sys

from aiohttp import web


def main() -> None:
    port = int(sys.argv[1])
    count = {"requests": 0, "bytes": 0}

    async def traces(request: web.Request) -> web.Response:
        body = await request.read()
        count["requests"] += 1
        count["bytes"] += len(body)
        return web.Response(status=200, content_type="application/x-protobuf", body=b"")

    async def counts(request: web.Request) -> web.Response:
        return web.json_response(count)

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/v1/traces", traces)
    app.router.add_get("/count", counts)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
