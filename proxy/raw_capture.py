"""The raw stream view: the SSE events relayed for a request, in order, as they arrived.

``RawCapture`` belongs to one request (``RequestRecord.raw``): the tap adds each SSE event's
raw text with its arrival time (ms from the request's start) and whether it is the usage
chunk tokentail injected (stripped from the client's stream, kept here marked). It is capped
in bytes like the other captures (beyond: ``truncated``) and also holds the request's JSON
body as sent upstream (after a route's model rewrite).

Nothing here is redacted per chunk: ``RawStore`` (an observer) redacts a capture once, at
request end, with the proxy's redactor, and keeps the finished ones in a ring bounded in
count and bytes; ``view`` redacts an in-flight one when it is served.
``GET /api/requests/{id}/raw`` serves ``view``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .record import RequestRecord
from .redact import Redactor

__all__ = ["RawCapture", "RawStore"]


class RawCapture:
    __slots__ = ("_bytes", "_cap", "_clock", "_t0", "events", "request_body", "truncated")

    def __init__(
        self, t0: float, cap: int, request_body: Any = None, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self._t0, self._cap, self._clock = t0, cap, clock
        self._bytes = 0
        self.events: list[tuple[float, str, bool]] = []  # (ms from start, raw event text, injected)
        self.truncated = False
        self.request_body = request_body

    def add(self, raw: bytes, injected: bool = False) -> None:
        if self.truncated:
            return
        if self._bytes + len(raw) > self._cap:
            self.truncated = True
            return
        self._bytes += len(raw)
        self.events.append(((self._clock() - self._t0) * 1000.0, raw.decode("utf-8", "replace"), injected))

    @property
    def size(self) -> int:
        return self._bytes

    def view(self, redactor: Redactor) -> dict[str, Any]:
        """The JSON of ``GET /api/requests/{id}/raw``, redacted."""
        return {
            "events": [
                {"seq": i, "t_ms": round(t, 3), "raw": redactor.redact_text(text), "injected": injected}
                for i, (t, text, injected) in enumerate(self.events)
            ],
            "truncated": self.truncated,
            "request_body": redactor.redact_json(self.request_body) if self.request_body is not None else None,
        }


class RawStore:
    """Finished requests' raw views, redacted once at their end; bounded in count and bytes."""

    def __init__(self, redactor: Redactor, max_requests: int = 1000, max_bytes: int = 64 << 20) -> None:
        self._redactor = redactor
        self._max_requests, self._max_bytes = max_requests, max_bytes
        self._views: OrderedDict[str, tuple[int, dict[str, Any]]] = OrderedDict()
        self._bytes = 0

    def on_end(self, rec: RequestRecord) -> None:
        raw = rec.raw
        if not isinstance(raw, RawCapture):
            return
        rec.raw = None  # the record may live on elsewhere: the capture's memory is accounted here
        size = raw.size + 256
        self._views[rec.id] = (size, raw.view(self._redactor))
        self._bytes += size
        while self._views and (len(self._views) > self._max_requests or self._bytes > self._max_bytes):
            _, (n, _view) = self._views.popitem(last=False)
            self._bytes -= n

    def get(self, request_id: str) -> dict[str, Any] | None:
        item = self._views.get(request_id)
        return item[1] if item is not None else None
