"""An incremental Server-Sent Events decoder, sans I/O.

``SSEDecoder.feed(bytes)`` returns the events completed by that chunk; ``flush()`` returns
what is left at the end of the stream. Parsing follows the WHATWG rules (CRLF, LF or CR
line endings; a blank line ends an event; ``data`` lines join with ``\\n``; comments;
a leading BOM), and every returned event also carries its exact input bytes in ``raw``:
the ``raw`` of all events, in order, is the input byte for byte. That invariant is what
lets the proxy drop one event and forward every other byte untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BOM = b"\xef\xbb\xbf"
_CR, _LF = 13, 10
# Two line endings in a row: the blank line that ends an event. CRLF is one line ending,
# so the alternatives that read it as such come first (``re`` takes the first that matches).
_BOUNDARY = re.compile(rb"\r\n\r\n|\r\n\r|\r\n\n|\r\r\n|\r\r|\n\r\n|\n\r|\n\n")
_LINES = re.compile(r"\r\n|\r|\n")


@dataclass(slots=True)
class SSEEvent:
    """One event and the exact bytes it came from (its terminating blank line included)."""

    raw: bytes
    event: str | None = None  # the ``event:`` field, None when absent
    data: str | None = None  # ``data:`` lines joined by "\n"; None when the event had no data field
    id: str | None = None  # the ``id:`` field of this event (one holding NUL is ignored, per spec)
    overflow: bool = False  # bytes of an event longer than max_event_bytes, not parsed
    complete: bool = True  # False for the unterminated tail that flush() returns


class SSEDecoder:
    """Incremental SSE decoder; memory stays below about ``max_event_bytes`` per stream.

    An event longer than ``max_event_bytes`` is never parsed: its bytes come back as one or
    more ``overflow=True`` events (data None) up to and including its terminating blank line,
    however the input was split. A blank line ending in CR at the very end of a chunk is held
    until the next byte shows whether an LF completes it, so ``raw`` never depends on chunking.
    """

    __slots__ = ("_buf", "_first", "_max", "_scan", "_skipping")

    def __init__(self, max_event_bytes: int = 1 << 20) -> None:
        self._buf = bytearray()
        self._max = max_event_bytes
        self._scan = 0  # offset in _buf where the boundary search resumes (no boundary before it)
        self._first = True  # nothing returned yet: a BOM may open the stream
        self._skipping = False  # inside an overflowing event, returning its bytes unparsed

    @property
    def buffered(self) -> int:
        """Bytes held back: the incomplete event still waiting for its end."""
        return len(self._buf)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode ``chunk``; return the events it completes (possibly none)."""
        if not chunk:
            return []
        if self._buf:
            self._buf += chunk
            return self._drain(self._buf, final=False)
        if type(chunk) is not bytes:
            chunk = bytes(chunk)
        if self._first or self._skipping or chunk.find(_CR) >= 0:
            return self._drain(chunk, final=False)
        # Hot path: nothing pending, LF line endings, one or a few whole events per chunk.
        events: list[SSEEvent] = []
        pos, n = 0, len(chunk)
        while pos < n:
            i = chunk.find(_LF, pos)
            if i == pos:  # a blank line of its own
                events.append(SSEEvent(chunk[pos : pos + 1]))
                pos += 1
                continue
            if i < 0:
                end = -1
            elif i + 1 < n and chunk[i + 1] == _LF:
                end = i + 2  # a one-line event
            else:
                end = chunk.find(b"\n\n", i)
                end = end + 2 if end >= 0 else -1
            if end < 0:  # an incomplete event: keep it (the slow path checks its size)
                self._buf = bytearray(chunk[pos:])
                self._scan = 0
                return events + self._drain(self._buf, final=False)
            raw = chunk[pos:end]  # the whole chunk when it is one event: no copy
            if end - pos > self._max:
                events.append(SSEEvent(raw, overflow=True))
            elif end == i + 2 and chunk.startswith(b"data:", pos):
                v = pos + 6 if chunk[pos + 5] == 32 else pos + 5
                events.append(SSEEvent(raw, None, chunk[v:i].decode("utf-8", "replace")))
            else:
                events.append(_parse(raw, 0, True))
            pos = end
        return events

    def flush(self) -> list[SSEEvent]:
        """End of stream: return the rest, the unterminated tail as an event with complete=False."""
        events = self._drain(self._buf, final=True) if self._buf else []
        self._buf = bytearray()
        self._scan = 0
        self._first = True
        self._skipping = False
        return events

    def _drain(self, data: bytes | bytearray, final: bool) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        n = len(data)
        pos = 0  # start of the pending event
        scan = self._scan
        while pos < n:
            if self._skipping:
                pos, done = self._skip(data, pos, scan, final, events)
                scan = pos
                if not done:
                    break
                continue
            start = pos
            if self._first:
                if not final and n - pos < 3 and _BOM.startswith(data[pos:n]):
                    break  # cannot tell a BOM yet
                if data.startswith(_BOM, pos):
                    start += 3
                    if start == n:
                        break
            c = data[start]
            if c in (_LF, _CR):  # blank line at the start: an event of its own, no fields
                end = start + 1
                if c == _CR:
                    if end == n and not final:
                        break  # an LF may follow in the next chunk
                    if end < n and data[end] == _LF:
                        end += 1
                events.append(SSEEvent(bytes(data[pos:end])))
                self._first = False
                pos = scan = end
                continue
            end = self._find_end(data, max(start, scan), final)
            if end < 0:
                # No complete event; the search can resume near the end next time.
                scan = -end - 1
                if n - pos > self._max:
                    self._skipping = True
                    self._first = False
                    continue
                break
            if end - pos > self._max:
                events.append(SSEEvent(bytes(data[pos:end]), overflow=True))
            else:
                events.append(_parse(bytes(data[pos:end]), start - pos, True))
            self._first = False
            pos = scan = end
        if final and pos < n:
            events.append(_parse(bytes(data[pos:n]), 3 if self._first and data.startswith(_BOM, pos) else 0, False))
            pos = n
        if data is self._buf:
            if pos:
                del self._buf[:pos]
        elif pos < n:
            self._buf = bytearray(data[pos:])
        self._scan = max(0, scan - pos)
        return events

    @staticmethod
    def _find_end(data: bytes | bytearray, frm: int, final: bool) -> int:
        """End offset of the first blank line at or after ``frm``, else ``-(resume offset) - 1``."""
        if data.find(_CR, frm) < 0:  # fast path: LF-only streams (nearly all of them)
            i = data.find(b"\n\n", frm)
            return i + 2 if i >= 0 else -max(frm, len(data) - 3) - 1
        m = _BOUNDARY.search(data, frm)
        if m is None:
            return -max(frm, len(data) - 3) - 1
        end = m.end()
        if end == len(data) and data[end - 1] == _CR and not final:
            return -m.start() - 1  # "...\r" at the end: an LF may still belong to it
        return end

    def _skip(
        self, data: bytes | bytearray, pos: int, scan: int, final: bool, events: list[SSEEvent]
    ) -> tuple[int, bool]:
        """Return overflowing bytes up to the event's end; keep a possible partial boundary."""
        n = len(data)
        end = self._find_end(data, max(pos, scan), final)
        if end >= 0:
            events.append(SSEEvent(bytes(data[pos:end]), overflow=True))
            self._skipping = False
            return end, True
        keep = n if final else min(-end - 1, _trailing_eol_start(data, pos))
        if keep > pos:
            events.append(SSEEvent(bytes(data[pos:keep]), overflow=True, complete=not final))
        return keep, False


def _trailing_eol_start(data: bytes | bytearray, pos: int) -> int:
    """Offset where the trailing run of CR/LF bytes begins (they may start the blank line)."""
    i = len(data)
    while i > pos and data[i - 1] in (_CR, _LF):
        i -= 1
    return i


def _parse(raw: bytes, skip: int, complete: bool) -> SSEEvent:
    """Fields of one event; ``skip`` is 3 when a BOM opens it."""
    if complete and not skip and raw.startswith(b"data:") and raw.find(_LF) == len(raw) - 2 and raw.find(_CR) < 0:
        # Fast path: one data line, the usual shape of an LLM stream event.
        return SSEEvent(raw, None, raw[6 if raw[5:6] == b" " else 5 : -2].decode("utf-8", "replace"))
    text = (raw[skip:] if skip else raw).decode("utf-8", "replace")
    lines = text.split("\n") if "\r" not in text else _LINES.split(text)
    event = id_ = None
    data: list[str] | None = None
    for line in lines:
        if not line or line[0] == ":":  # the blank terminator, or a comment
            continue
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            if data is None:
                data = [value]
            else:
                data.append(value)
        elif name == "event":
            event = value
        elif name == "id" and "\0" not in value:
            id_ = value
    return SSEEvent(raw, event, None if data is None else "\n".join(data), id_, False, complete)
