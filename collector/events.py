"""``GET /api/events``: Server-Sent Events of the collector's snapshots.

Events (``event:`` name, JSON ``data:``):

- ``snapshot``: after every scrape round, the same shape as ``/api/status``'s live part
  (per-variant current values, target health). A new subscriber gets the latest one at once.
- ``target``: a target went up or down (``variant``, ``url``, ``up``, ``error``, ``ts``).

Heartbeat comments (``: heartbeat``) every ``heartbeat`` seconds keep proxies from
closing an idle stream. A subscriber that does not keep up loses the oldest queued
events (every snapshot is complete, so only the latest matters); it never slows a scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

QUEUE_SIZE = 16


class Broadcaster:
    """Fan-out of events to SSE subscribers, each with a small bounded queue."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue] = set()
        self._seq = itertools.count(1)
        self.latest: dict[str, tuple[int, str]] = {}  # event name -> (id, JSON) of the last one
        self.dropped = 0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, name: str, data: Any) -> None:
        """Queue ``data`` (JSON-serialisable) for every subscriber; never blocks."""
        item = (next(self._seq), name, json.dumps(data, separators=(",", ":"), allow_nan=False))
        if name == "snapshot":
            self.latest[name] = (item[0], item[2])
        for q in self._subscribers:
            if q.full():
                q.get_nowait()  # drop the oldest: the next snapshot supersedes it anyway
                self.dropped += 1
            q.put_nowait(item)

    @contextlib.contextmanager
    def subscribe(self):
        q: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)
        if "snapshot" in self.latest:
            seq, data = self.latest["snapshot"]
            q.put_nowait((seq, "snapshot", data))
        self._subscribers.add(q)
        try:
            yield q
        finally:
            self._subscribers.discard(q)

    def close(self) -> None:
        for q in list(self._subscribers):
            if q.full():
                q.get_nowait()
            q.put_nowait(None)  # ends the stream


def format_event(seq: int, name: str, data: str) -> bytes:
    return f"id: {seq}\nevent: {name}\ndata: {data}\n\n".encode()


async def _items(q: asyncio.Queue, heartbeat: float) -> AsyncIterator[tuple | None]:
    while True:
        try:
            yield await asyncio.wait_for(q.get(), heartbeat)
        except TimeoutError:
            yield ()  # heartbeat


async def stream(
    request: web.Request, broadcaster: Broadcaster, *, heartbeat: float, headers: dict[str, str]
) -> web.StreamResponse:
    """Serve the SSE stream until the client leaves or the server stops."""
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            **headers,
        }
    )
    await resp.prepare(request)
    await resp.write(b"retry: 3000\n\n")
    with broadcaster.subscribe() as q:
        try:
            async for item in _items(q, heartbeat):
                if item is None:
                    break
                await resp.write(format_event(*item) if item else b": heartbeat\n\n")
        except ConnectionResetError:
            pass  # the client left
    return resp
