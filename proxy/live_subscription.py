"""One listener of the live hub (``/api/live``): its replay backlog and its bounded queue.

The hub (``live.py``) creates a ``Subscription`` per listener, pushes every event into its
queue without waiting, and closes it when the queue is full (the listener lagged). The HTTP
layer iterates it. ``TooManySubscribers`` is the hub's refusal at its subscriber cap.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from .live_entry import Event
from .live_sse import LiveItem

__all__ = ["Subscription", "TooManySubscribers"]


class TooManySubscribers(Exception):
    """``subscribe`` at the cap (``max_subscribers``): the HTTP layer answers 503."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the live feed has its maximum of {limit} subscribers")
        self.limit = limit


class Subscription:
    """One ``/api/live`` listener: ``async for sse_id, event, data in sub``.

    Items are ``live_sse.LiveItem``s: ``(sse_id, event, data)`` with the event's shared
    ``live_sse.Wire``. Replay/snapshot events come first (they are not bounded by the queue), then live
    events from a queue of ``subscriber_queue`` events. The iteration ends when the
    subscriber lagged (``lagged`` is then True), was unsubscribed or the hub closed
    them all.
    ``data`` dicts are shared between subscribers and the ring: read-only.
    """

    def __init__(self, boot_id: str, backlog: list[Event], maxsize: int) -> None:
        self.boot_id = boot_id
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize)
        self.lagged = False
        self.closed = False
        self._ended = False  # get_nowait took the end marker: get() returns None at once
        self._backlog = deque(backlog)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> tuple[str, str, dict[str, Any]]:
        item = await self.get()
        if item is None:
            raise StopAsyncIteration
        return item

    async def get(self, timeout: float | None = None) -> tuple[str, str, dict[str, Any]] | None:
        """The next ``(sse_id, event, data)``, or None once closed.

        Raises ``TimeoutError`` after ``timeout`` seconds without an event (the HTTP
        layer's cue for a heartbeat); no event is lost when it does.
        """
        if self._backlog:
            ev: Event | None = self._backlog.popleft()
        elif self._ended or (self.closed and self.queue.empty()):
            return None
        elif not self.queue.empty():  # ready: no timeout to arm (one per event adds up)
            ev = self.queue.get_nowait()
        else:
            async with asyncio.timeout(timeout):
                ev = await self.queue.get()
        if ev is None:
            return None
        return self._item(ev)

    def get_nowait(self) -> tuple[str, str, dict[str, Any]] | None:
        """The next event if one is ready now, else None (never waits). The HTTP layer writes
        what is ready in one go: one write per burst of tokens, not one per event."""
        if self._backlog:
            ev: Event | None = self._backlog.popleft()
        elif self._ended or self.queue.empty():
            return None
        else:
            ev = self.queue.get_nowait()
        if ev is None:
            self._ended = True  # the end stays for get()
            return None
        return self._item(ev)

    def _item(self, ev: Event) -> LiveItem:
        item = LiveItem((f"{self.boot_id}:{ev[0]}", ev[1], ev[2]))
        item.wire = ev[4] if len(ev) > 4 else None  # the event's SSE bytes, shared
        return item

    def push(self, ev: Event) -> bool:
        """Queue ``ev`` without waiting; False when the queue is full (the hub then closes it)."""
        try:
            self.queue.put_nowait(ev)
        except asyncio.QueueFull:
            return False
        return True

    def close(self, lagged: bool = False) -> None:
        """End the iteration (the hub's side; listeners call ``LiveHub.unsubscribe``)."""
        self.lagged = self.lagged or lagged
        self.closed = True
        self._backlog.clear()
        # Free what it held and wake a reader waiting in get().
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)
