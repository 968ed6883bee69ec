"""Tiny hand-made upstreams for tests that need exact bytes or odd behaviour."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.helpers import serve

__all__ = ["Probe", "firehose", "scripted_sse", "serve"]


@dataclass
class Probe:
    """What a scripted upstream saw and did, for assertions."""

    requests: list[dict] = field(default_factory=list)
    written: int = 0  # bytes the upstream managed to hand to its socket
    write_times: list[float] = field(default_factory=list)  # perf_counter per chunk written
    cancelled_at: float | None = None
    finished: bool = False
    protocol: Any = None  # the server side of the upstream's connection (``writing_paused``)

    @property
    def writer_blocked(self) -> bool:
        """The upstream's socket refuses more bytes: its writer waits in ``drain`` (backpressure)."""
        return self.protocol is not None and self.protocol.writing_paused


def scripted_sse(
    chunks: list[bytes],
    *,
    delay: float = 0.0,
    status: int = 200,
    content_type: str = "text/event-stream",
    headers: dict | None = None,
    drop_after: int | None = None,
    headers_delay: float = 0.0,
) -> tuple[web.Application, Probe]:
    """An upstream that answers every request with ``chunks``, written one by one."""
    probe = Probe()

    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        probe.requests.append(
            {
                "path": request.path,
                "raw_path": request.raw_path,
                "query": request.query_string,
                "headers": dict(request.headers),
                "body": body,
            }
        )
        resp = web.StreamResponse(status=status, headers={"Content-Type": content_type, **(headers or {})})
        try:
            await asyncio.sleep(headers_delay)
            await resp.prepare(request)
            for i, chunk in enumerate(chunks):
                if drop_after is not None and i == drop_after:
                    request.transport.close()  # drop mid-stream, no terminator
                    return resp
                if delay:
                    await asyncio.sleep(delay)
                await resp.write(chunk)
                probe.written += len(chunk)
                probe.write_times.append(time.perf_counter())
            await resp.write_eof()
            probe.finished = True
        except asyncio.CancelledError:
            probe.cancelled_at = time.perf_counter()
            raise
        return resp

    app = web.Application(client_max_size=64 << 20)
    app.router.add_route("*", "/{tail:.*}", handler)
    return app, probe


def firehose(total_bytes: int, chunk_size: int = 64 * 1024) -> tuple[web.Application, Probe]:
    """An upstream streaming ``total_bytes`` of SSE as fast as the reader takes it."""
    probe = Probe()
    payload = b"data: " + b"x" * (chunk_size - 8) + b"\n\n"

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        probe.protocol = request.protocol
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        try:
            while probe.written < total_bytes:
                await resp.write(payload)  # waits for drain: shows how far the proxy read
                probe.written += len(payload)
            await resp.write_eof()
            probe.finished = True
        except asyncio.CancelledError:
            probe.cancelled_at = time.perf_counter()
            raise
        except ConnectionResetError:
            pass
        return resp

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app, probe
