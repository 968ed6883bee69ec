"""Finished requests' raw stream views (``raw_capture``), redacted off the request path.

``RawStore`` is an observer: at a request's end it takes the record's ``RawCapture`` and
queues it; the redaction runs later on the event loop in slices of ``SLICE`` events
(``loop.call_soon`` between them), so a 1 MiB stream (~7000 events, ~100 ms of redaction)
never holds up other requests at once. Views are kept in a ring bounded in count and bytes
(the queued captures count too). ``view_async`` redacts an in-flight capture the same way
when it is served.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from .hooks import PROMPT_KEYS
from .raw_capture import FinishedView, RawCapture
from .record import RequestRecord
from .redact import Redactor

__all__ = ["SLICE", "RawStore", "view_async"]

SLICE = 256  # events redacted per turn of the event loop (~3 ms)


class _Job:
    __slots__ = ("cap", "raws")

    def __init__(self, cap: RawCapture) -> None:
        self.cap = cap
        self.raws: list[str] = []

    def step(self, redactor: Redactor, budget: int) -> int:
        """Redact up to ``budget`` more events; the number done."""
        lo = len(self.raws)
        hi = min(len(self.cap.events), lo + budget)
        self.raws.extend(self.cap.redact_slice(redactor, lo, hi))
        return hi - lo

    @property
    def done(self) -> bool:
        return len(self.raws) >= len(self.cap.events)


class RawStore:
    """See the module docstring. ``get`` returns a finished view, or None (unknown, evicted,
    or still queued: ``pending`` then returns its capture)."""

    def __init__(self, redactor: Redactor, max_requests: int = 1000, max_bytes: int = 64 << 20) -> None:
        self._redactor = redactor
        self._max_requests, self._max_bytes = max_requests, max_bytes
        self._items: OrderedDict[str, tuple[int, _Job | FinishedView]] = OrderedDict()
        # Who each view belongs to, for ``erase``: a spans-row-like dict (ids, attribution, start).
        self._whose: dict[str, dict[str, Any]] = {}
        self._queue: list[str] = []
        self._bytes = 0
        self._scheduled = False

    def on_end(self, rec: RequestRecord) -> None:
        raw = rec.raw
        if not isinstance(raw, RawCapture):
            return
        rec.raw = None  # the record may live on elsewhere: the capture's memory is accounted here
        raw.use_prompt(rec.prompt, PROMPT_KEYS, rec.truncated)  # redacted once, off the loop
        size = raw.size * 2 + 256  # the bytes, and the text pieces / redacted text beside them
        self._items[rec.id] = (size, _Job(raw))
        self._whose[rec.id] = {
            "request_id": rec.id,
            "session_id": rec.session_id,
            "user_id": rec.user,
            "key_fingerprint": rec.key_fingerprint,
            "start_time": rec.started_at,
        }
        self._bytes += size
        self._queue.append(rec.id)
        while self._items and (len(self._items) > self._max_requests or self._bytes > self._max_bytes):
            rid, (n, _item) = self._items.popitem(last=False)
            self._whose.pop(rid, None)
            self._bytes -= n
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a unit test): do it now
            self.drain(budget=None)
            return
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._turn)

    def _turn(self) -> None:
        self._scheduled = False
        if self.drain(budget=SLICE):
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._turn)

    def drain(self, budget: int | None) -> bool:
        """Redact queued captures (``budget`` events, None: all); True when work remains."""
        left = budget
        while self._queue and (left is None or left > 0):
            rid = self._queue[0]
            item = self._items.get(rid)
            job = item[1] if item is not None else None
            if item is None or not isinstance(job, _Job):
                self._queue.pop(0)  # evicted meanwhile
                continue
            size = item[0]
            done = job.step(self._redactor, len(job.cap.events) if left is None else left)
            if left is not None:
                left -= max(done, 1)
            if job.done:
                self._items[rid] = (size, job.cap.finish(job.raws, self._redactor))
                self._queue.pop(0)
        return bool(self._queue)

    def erase(self, match: Any) -> list[str]:
        """Drop the views (finished or queued) whose owner ``match`` selects (a spans-row-like
        dict: ``request_id``, ``session_id``, ``user_id``, ``key_fingerprint``, ``start_time``)."""
        ids = [rid for rid, whose in self._whose.items() if match(whose)]
        for rid in ids:
            del self._whose[rid]
            item = self._items.pop(rid, None)
            if item is not None:
                self._bytes -= item[0]  # a queued one leaves the queue at its turn (``drain``)
        return ids

    def get(self, request_id: str) -> dict[str, Any] | None:
        item = self._items.get(request_id)
        value = item[1] if item is not None else None
        return value.as_dict() if isinstance(value, FinishedView) else None

    def pending(self, request_id: str) -> RawCapture | None:
        item = self._items.get(request_id)
        value = item[1] if item is not None else None
        return value.cap if isinstance(value, _Job) else None


async def view_async(cap: RawCapture, redactor: Redactor) -> dict[str, Any]:
    """``cap.view`` a slice at a time, yielding to the loop between slices (events that
    arrive meanwhile wait for the next read)."""
    n = len(cap.events)
    raws: list[str] = []
    for lo in range(0, n, SLICE):
        raws.extend(cap.redact_slice(redactor, lo, min(n, lo + SLICE)))
        if lo + SLICE < n:
            await asyncio.sleep(0)
    return cap.finish_view(raws, redactor)
