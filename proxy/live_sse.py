"""Server-Sent Events encoding for ``/api/live`` (pure): one message at once, or in slices.

A live delta is a few bytes and is encoded in one go (``encode_sse``). A snapshot or a
``request.end`` can hold a whole prompt or completion, megabytes of JSON string: encoded in
one go it would hold the event loop (about 6 ms per MiB, with every subscriber encoding
its own copy). ``sse_slices`` yields the same bytes in pieces of about ``SLICE_CHARS``
characters, a long string cut into several, so the HTTP layer can write a piece and yield
the loop before the next. ``b"".join(sse_slices(...)) == encode_sse(...)`` always.

A small live event is encoded once for every subscriber: the hub gives each event it
publishes one ``Wire``, which travels with every subscriber's item (``LiveItem.wire``);
``item_slices`` encodes it for the first that writes it and hands the same bytes to the
rest. Snapshot items and big events are encoded per reader, as before.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import msgspec

__all__ = [
    "SLICE_CHARS",
    "SSE_HEARTBEAT",
    "LiveItem",
    "Wire",
    "encode_small",
    "encode_sse",
    "finite",
    "item_slices",
    "sse_slices",
]

SSE_HEARTBEAT = b": ping\n\n"  # a comment line; the HTTP layer sends it every 15 s
# About 0.4 ms of encoding: 64 subscribers joining at once hold the loop ~25 ms per round.
SLICE_CHARS = 64 * 1024
# Deeper than this, a value is encoded in one go (deep JSON is small; Python's recursion is not).
_MAX_DEPTH = 64


def finite(obj: Any) -> Any:
    """A copy with NaN/inf replaced by None (JSON.parse rejects them)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


# msgspec writes the same compact JSON as ``json.dumps(..., ensure_ascii=False,
# separators=(",", ":"), default=str)`` with NaN/inf as null, ~10x faster (a live delta is
# encoded on the request path); only exponents are spelled differently (1e16, not 1e+16).
_ENCODER = msgspec.json.Encoder(enc_hook=str)


def _scrub(obj: Any, depth: int = 0) -> Any:
    """A copy with lone surrogates replaced by ``?`` (what UTF-8 "replace" makes of them)."""
    if isinstance(obj, str):
        return obj.encode("utf-8", "replace").decode("utf-8")
    if depth < 1000 and isinstance(obj, dict):
        return {_scrub(k, depth + 1): _scrub(v, depth + 1) for k, v in obj.items()}
    if depth < 1000 and isinstance(obj, (list, tuple)):
        return [_scrub(v, depth + 1) for v in obj]
    return obj


def _dumps_bytes(obj: Any) -> bytes:
    try:
        return _ENCODER.encode(obj)
    except UnicodeEncodeError:  # a lone surrogate
        try:
            return _ENCODER.encode(_scrub(obj))
        except (TypeError, ValueError, msgspec.EncodeError):
            pass
    except (TypeError, ValueError, msgspec.EncodeError):  # keys msgspec does not take
        pass
    try:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError:
        text = json.dumps(finite(obj), ensure_ascii=False, separators=(",", ":"), default=str)
    return text.encode("utf-8", "replace")


def _dumps(obj: Any) -> str:
    return _dumps_bytes(obj).decode("utf-8")


def _head(sse_id: str, event: str) -> str:
    return f"id: {sse_id}\nevent: {event}\ndata: "


def encode_sse(sse_id: str, event: str, data: dict[str, Any]) -> bytes:
    """One SSE message: ``id: ...\\nevent: ...\\ndata: <compact JSON>\\n\\n``.

    Compact JSON escapes newlines, so ``data`` is always one line; NaN/inf become
    null; characters UTF-8 cannot encode (lone surrogates) become ``?``.
    """
    return _head(sse_id, event).encode("utf-8", "replace") + _dumps_bytes(data) + b"\n\n"


def _small(obj: Any, budget: int) -> bool:
    """Whether ``obj``'s strings hold fewer than ``budget`` characters (stops early when not)."""
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, str):
            budget -= len(o)
            if budget <= 0:
                return False
        elif isinstance(o, dict):
            budget -= len(o)
            stack.extend(o.values())
        elif isinstance(o, (list, tuple)):
            budget -= len(o)
            stack.extend(o)
    return True


def _pieces(obj: Any, depth: int) -> Iterator[str]:
    """Compact JSON of ``obj`` (as ``_dumps``), as pieces of at most about ``SLICE_CHARS``."""
    if isinstance(obj, str):
        if len(obj) <= SLICE_CHARS:
            yield _dumps(obj)
            return
        yield '"'
        for i in range(0, len(obj), SLICE_CHARS):
            # JSON escapes characters one by one: the pieces' escapes join into the whole's.
            yield _dumps(obj[i : i + SLICE_CHARS])[1:-1]
        yield '"'
    elif depth < _MAX_DEPTH and isinstance(obj, dict) and all(isinstance(k, str) for k in obj):
        yield "{"
        for n, (k, v) in enumerate(obj.items()):
            yield ("," if n else "") + _dumps(k) + ":"
            yield from _pieces(v, depth + 1)
        yield "}"
    elif depth < _MAX_DEPTH and isinstance(obj, (list, tuple)):
        yield "["
        for n, v in enumerate(obj):
            if n:
                yield ","
            yield from _pieces(v, depth + 1)
        yield "]"
    else:
        yield _dumps(obj)


def sse_slices(sse_id: str, event: str, data: dict[str, Any], size: int = SLICE_CHARS) -> Iterator[bytes]:
    """The bytes of ``encode_sse(sse_id, event, data)`` in slices of about ``size`` characters.

    A small event is one slice, encoded in one go.
    """
    if _small(data, size):
        yield encode_sse(sse_id, event, data)
        return
    buf = [_head(sse_id, event)]
    n = 0
    for piece in _pieces(data, 0):
        buf.append(piece)
        n += len(piece)
        if n >= size:
            yield "".join(buf).encode("utf-8", "replace")
            buf, n = [], 0
    buf.append("\n\n")
    yield "".join(buf).encode("utf-8", "replace")


def encode_small(sse_id: str, event: str, data: dict[str, Any]) -> bytes | None:
    """``encode_sse(...)`` when the event is one slice (what ``sse_slices`` would yield), else None."""
    return encode_sse(sse_id, event, data) if _small(data, SLICE_CHARS) else None


class Wire:
    """The SSE bytes of one hub event, shared by every subscriber: encoded by the first that
    writes it (``item_slices``), reused by the others; ``bytes`` stays None for a big event
    (each reader slices it lazily)."""

    __slots__ = ("bytes", "done", "small")

    def __init__(self, small: bool = False) -> None:
        self.bytes: bytes | None = None
        self.done = False
        # The hub knows the event is one slice (a delta's text length, a start's size as
        # it measured it): encoded at once, without walking it again.
        self.small = small


class LiveItem(tuple):  # type: ignore[type-arg]  # (sse id, event, data), as a plain 3-tuple compares
    """One event for one subscriber: ``(sse_id, event, data)``, plus ``wire``, the event's
    shared ``Wire`` (None: a snapshot or replay item of this subscriber's own)."""

    wire: Wire | None


def item_slices(item: tuple[str, str, dict[str, Any]]) -> Iterator[bytes]:
    """The SSE bytes of a subscriber's item: a small event's shared bytes (encoded once, by
    whichever subscriber writes it first), else ``sse_slices``."""
    wire: Wire | None = getattr(item, "wire", None)
    if wire is not None:
        if not wire.done:
            wire.bytes = encode_sse(*item) if wire.small else encode_small(*item)
            wire.done = True
        if wire.bytes is not None:
            yield wire.bytes
            return
    yield from sse_slices(*item)
