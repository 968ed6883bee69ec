"""Tiny hand-made upstreams for tests that need exact bytes or odd behaviour."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.helpers import serve

__all__ = ["Probe", "chat_chunk", "firehose", "scripted_sse", "scripted_upstream", "serve", "sse_script"]


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


def chat_chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    obj = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def sse_script(field: str, pieces: list[str]) -> list[bytes]:
    """An OpenAI chat stream carrying ``pieces`` in ``field``: content, reasoning or tool arguments."""
    out = [chat_chunk({"role": "assistant"})]
    for i, p in enumerate(pieces):
        if field == "text":
            out.append(chat_chunk({"content": p}))
        elif field == "reasoning":
            out.append(chat_chunk({"reasoning_content": p}))
        else:
            fn: dict[str, Any] = {"arguments": p}
            call: dict[str, Any] = {"index": 0, "function": fn}
            if i == 0:
                call.update(id="call_1", type="function")
                fn["name"] = "lookup"
            out.append(chat_chunk({"tool_calls": [call]}))
    out.append(chat_chunk({}, "stop"))
    out.append(b"data: [DONE]\n\n")
    return out


def scripted_upstream(scripts: dict[str, list[bytes]], delay: float = 0.0) -> web.Application:
    """Answers a request whose first message's content names a script with that script."""

    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            name = json.loads(body)["messages"][0]["content"] if len(body) < 1 << 20 else None
        except (ValueError, KeyError, TypeError, IndexError, RecursionError):
            name = None
        chunks = scripts.get(name) if isinstance(name, str) else None
        if chunks is None:  # anything else: a small complete answer
            return web.json_response(
                {"id": "x", "object": "chat.completion", "model": "m", "choices": [], "usage": None}
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for c in chunks:
            if delay:
                await asyncio.sleep(delay)
            await resp.write(c)
        await resp.write_eof()
        return resp

    app = web.Application(client_max_size=64 << 20)
    app.router.add_route("*", "/{tail:.*}", handler)
    return app
