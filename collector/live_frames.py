"""The merged live feed's SSE frames from Redis stream entries (pure): ``live_redis`` serves them.

A stream entry, as the proxies append it (``proxy/live_batch.py``), has the fields ``e``
(event name), ``d`` (compact one-line JSON) and ``p`` (the proxy's boot id). Its frame is
``id: <stream id>\\nevent: <e>\\ndata: <d>\\n\\n``: the data goes out as stored, never
decoded nor encoded again. What is in Redis is not trusted: an entry whose event is not one
of the three live events, whose data is not one line, or is larger than ``MAX_DATA_BYTES``,
is skipped (``frame`` returns None) rather than break the stream or the browser's parser.

Stream ids (``<ms>-<seq>``) are the SSE ids: ``parse_id`` accepts a ``Last-Event-ID`` only
in that form; ``before`` is the greatest id below one (the snapshot's id, so that resuming
from it replays the first entry shown); ``gap`` tells whether trimming (``MAXLEN ~``) may
have removed entries after the id a client resumes from (Redis 7.0 does not record the
last id trimmed, only how many entries were added and where the stream starts now).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = [
    "EVENTS",
    "MAX_DATA_BYTES",
    "before",
    "frame",
    "frames",
    "gap",
    "parse_id",
    "snapshot_frame",
    "status_frame",
]

EVENTS = frozenset({b"request.start", b"request.delta", b"request.end"})
MAX_DATA_BYTES = 16 << 20  # a proxy's event is bounded by its capture caps (1 MiB by default)
_ID = re.compile(r"^([0-9]{1,19})-([0-9]{1,19})$")
_U64 = (1 << 64) - 1
_ZERO = "0-0"


def parse_id(text: str | bytes | None) -> tuple[int, int] | None:
    """``(ms, seq)`` of a stream id ``<ms>-<seq>``, else None (another feed's id, garbage)."""
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    m = _ID.match(text.strip())
    if m is None:
        return None
    ms, seq = int(m.group(1)), int(m.group(2))
    return (ms, seq) if ms <= _U64 and seq <= _U64 else None


def before(stream_id: str) -> str:
    """The greatest stream id below ``stream_id`` (``0-0`` at the bottom)."""
    parsed = parse_id(stream_id)
    if parsed is None or parsed == (0, 0):
        return _ZERO
    ms, seq = parsed
    return f"{ms}-{seq - 1}" if seq else f"{ms - 1}-{_U64}"


def gap(cursor: str, first: str | bytes | None, trimmed: bool) -> bool:
    """Whether entries after ``cursor`` may have been trimmed away, so its client must start
    over: the stream lost entries (``trimmed``: more added than it holds), and its ``first``
    entry lies after ``cursor`` without being the very next id (a snapshot's id is)."""
    c, f = parse_id(cursor), parse_id(first)
    if not trimmed or c is None or f is None or f <= c:
        return False
    return before(f"{f[0]}-{f[1]}") != f"{c[0]}-{c[1]}"


def frame(entry_id: bytes | str, fields: dict[Any, Any]) -> bytes | None:
    """The SSE frame of one stream entry, or None when the entry is not a well-formed live event."""
    eid = entry_id if isinstance(entry_id, bytes) else entry_id.encode("ascii", "replace")
    if parse_id(eid) is None:
        return None
    event, data = _field(fields, "e"), _field(fields, "d")
    if event not in EVENTS or data is None or len(data) > MAX_DATA_BYTES:
        return None
    if b"\n" in data or b"\r" in data or not data.startswith(b"{"):
        return None
    return b"id: " + eid + b"\nevent: " + event + b"\ndata: " + data + b"\n\n"


def _field(fields: dict[Any, Any], name: str) -> bytes | None:
    value = fields.get(name.encode(), fields.get(name))
    if isinstance(value, str):
        return value.encode("utf-8", "replace")
    return value if isinstance(value, bytes) else None


def frames(entries: Iterable[tuple[Any, dict[Any, Any]]], size: int) -> Iterator[bytes]:
    """The frames of ``entries`` joined into writes of about ``size`` bytes (one per burst,
    not one per event); malformed entries skipped."""
    buf: list[bytes] = []
    n = 0
    for entry_id, fields in entries:
        f = frame(entry_id, fields)
        if f is None:
            continue
        buf.append(f)
        n += len(f)
        if n >= size:
            yield b"".join(buf)
            buf, n = [], 0
    if buf:
        yield b"".join(buf)


def snapshot_frame(stream_id: str, replayed: int) -> bytes:
    """The ``snapshot`` that starts a fresh feed (a client drops the live rows it shows and
    rebuilds from what follows: the ``replayed`` most recent events)."""
    data = json.dumps({"source": "live_redis", "events": replayed}, separators=(",", ":"))
    return f"id: {stream_id}\nevent: snapshot\ndata: {data}\n\n".encode()


def status_frame(up: bool, message: str = "") -> bytes:
    """A ``status`` event (no id: a reconnect resumes from the last event, not from it):
    ``{"live_redis": "up"|"down", "message"}``, for the dashboard's banner."""
    data = json.dumps({"live_redis": "up" if up else "down", "message": message}, separators=(",", ":"))
    return f"event: status\ndata: {data}\n\n".encode()
