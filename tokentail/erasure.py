"""Which captured content an erase removes: selectors, the erase ledger, capture levels (pure).

An erase names its rows with a ``Selector``: ``session``, ``request``, ``user``, ``key`` (a
key fingerprint) and ``before`` (epoch seconds: requests started before it), any combination,
all of them must match (AND). An empty selector is refused: erasing everything is
``before`` = now, said out loud. The collector turns a selector into SQL (``where``), the
proxy into a predicate over its ring (``matches``); both refuse the same input with the same
message (``SelectorError``).

``Ledger`` is the list of erases already done, consulted when a span arrives: a span of an
erased session that was still in an exporter's queue is stored without content (no
resurrection); a request started after the erase is new data. It is bounded (``MAX_LEDGER``, oldest dropped first) and looks a row up in
O(1) for one-field selectors (sets), linearly only for combinations.

Capture levels (``full`` > ``metadata`` > ``none``): ``lowest`` of the proxy's, the route's,
the key's and the request's own; a request can lower its level, never raise it.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "CAPTURE_HEADER",
    "CAPTURE_LEVELS",
    "FIELDS",
    "MAX_LEDGER",
    "CaptureError",
    "Ledger",
    "Selector",
    "SelectorError",
    "lowest",
    "matches_start",
    "parse_capture",
    "parse_capture_key",
    "parse_time",
    "stream_entries_to_erase",
]

MAX_LEDGER = 10_000
_MAX_VALUE = 200  # ids, users and fingerprints are short; anything longer is refused
# Selector field -> the spans column it matches (the collector's table, the proxy's record).
FIELDS: dict[str, str] = {
    "session": "session_id",
    "request": "request_id",
    "user": "user_id",
    "key": "key_fingerprint",
}
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")


class SelectorError(ValueError):
    """An erase selector that cannot be used; ``field`` names the part at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse_time(value: Any, now: float | None = None) -> float:
    """A point in time as epoch seconds: a number, digits, ISO 8601 (``2026-01-31``,
    ``2026-01-31T12:00:00Z``; no zone: UTC) or an age (``7d``, ``12h``: that long before now)."""
    if isinstance(value, bool):
        raise SelectorError("before", "before must be a time, not a boolean")
    if isinstance(value, (int, float)):
        t = float(value)
    elif isinstance(value, str):
        text = value.strip()
        m = _AGO.match(text)
        if m:
            t = (time.time() if now is None else now) - float(m.group(1)) * _UNITS[m.group(2)]
        else:
            try:
                t = float(text)
            except ValueError:
                try:
                    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
                except ValueError:
                    raise SelectorError(
                        "before", f"before {text[:40]!r}: expected epoch seconds, ISO 8601 or an age like 7d"
                    ) from None
                if dt.tzinfo is None:
                    dt = dt.replace(tzinfo=UTC)
                t = dt.timestamp()
    else:
        raise SelectorError("before", "before must be epoch seconds, ISO 8601 or an age like 7d")
    if not math.isfinite(t) or t < 0:
        raise SelectorError("before", "before must be a finite time after 1970")
    return t


@dataclass(frozen=True, slots=True)
class Selector:
    """What to erase: every given field must match (see the module docstring)."""

    session: str | None = None
    request: str | None = None
    user: str | None = None
    key: str | None = None
    before: float | None = None

    @classmethod
    def from_json(cls, obj: Any, now: float | None = None) -> Selector:
        """From an API body (``{"session": ..., "before": ...}``) or raise ``SelectorError``."""
        if not isinstance(obj, Mapping):
            raise SelectorError("body", "the body must be a JSON object")
        known = [f.name for f in fields(cls)]
        for k in obj:
            if k not in known:
                raise SelectorError(str(k)[:40], f"unknown field {str(k)[:40]!r}; known: {', '.join(known)}")
        values: dict[str, Any] = {}
        for name in FIELDS:
            v = obj.get(name)
            if v is None:
                continue
            if not isinstance(v, str) or not v.strip():
                raise SelectorError(name, f"{name} must be a non-empty string")
            if len(v) > _MAX_VALUE:
                raise SelectorError(name, f"{name} must be at most {_MAX_VALUE} characters")
            values[name] = v
        if obj.get("before") is not None:
            values["before"] = parse_time(obj["before"], now)
        sel = cls(**values)
        if sel.empty:
            raise SelectorError(
                "body", "name what to erase: session, request, user, key and/or before (all of it: before = now)"
            )
        return sel

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def as_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def describe(self) -> str:
        """For logs: the selector's fields (ids and fingerprints, never content)."""
        return " ".join(f"{k}={v!r}" for k, v in self.as_json().items())

    def matches(
        self,
        *,
        request_id: str | None,
        session_id: str | None,
        user_id: str | None,
        key_fingerprint: str | None,
        start_time: float | None,
    ) -> bool:
        if self.request is not None and request_id != self.request:
            return False
        if self.session is not None and session_id != self.session:
            return False
        if self.user is not None and user_id != self.user:
            return False
        if self.key is not None and key_fingerprint != self.key:
            return False
        return self.before is None or (start_time is not None and start_time < self.before)

    @property
    def matches_id_only(self) -> bool:
        """Whether the request id alone decides (no other field named)."""
        return (
            self.request is not None
            and self.session is None
            and self.user is None
            and self.key is None
            and (self.before is None)
        )

    def matches_row(self, row: Mapping[str, Any]) -> bool:
        """``matches`` on a spans row (the collector's column names)."""
        return self.matches(
            request_id=row.get("request_id"),
            session_id=row.get("session_id"),
            user_id=row.get("user_id"),
            key_fingerprint=row.get("key_fingerprint"),
            start_time=row.get("start_time"),
        )

    def where(self) -> tuple[str, list[Any]]:
        """SQL condition on the spans table and its parameters (values never in the text)."""
        parts, args = [], []
        for name, column in FIELDS.items():
            v = getattr(self, name)
            if v is not None:
                parts.append(f"{column} = ?")
                args.append(v)
        if self.before is not None:
            parts.append("start_time < ?")
            args.append(self.before)
        return " AND ".join(parts) or "FALSE", args


def matches_start(sel: Selector, start: Mapping[str, Any]) -> bool:
    """``sel.matches`` on a live ``request.start`` payload (the proxy's ring, the Redis stream)."""
    return sel.matches(
        request_id=start.get("id"),
        session_id=start.get("session_id"),
        user_id=start.get("user"),
        key_fingerprint=start.get("key_fingerprint"),
        start_time=start.get("time"),
    )


def stream_entries_to_erase(
    entries: Iterable[tuple[str, str, Mapping[str, Any]]], sel: Selector, erased: set[str]
) -> list[str]:
    """Of a live stream's entries ``(entry id, event, data)`` in stream order, the ids to delete:
    every event of a request whose ``request.start`` the selector matches (its id is added to
    ``erased``, so later pages of the same stream find its deltas and end). A request whose
    start was trimmed away is matched by ``request`` alone (the only field its events carry)."""
    out: list[str] = []
    for entry_id, event, data in entries:
        rid = data.get("id")
        if not isinstance(rid, str):
            continue
        if event == "request.start" and matches_start(sel, data):
            erased.add(rid)
        if rid in erased or (sel.request is not None and rid == sel.request and sel.matches_id_only):
            out.append(entry_id)
    return out


class Ledger:
    """The erases done so far, newest last, bounded (see the module docstring).

    An erase covers the requests that had started when it was done: a span whose request
    started after it (by more than ``SKEW`` seconds, for the exporter's clock) is new data
    and keeps its content, even in an erased session."""

    SKEW = 300.0

    def __init__(self, entries: Iterable[tuple[Selector, float]] = (), limit: int = MAX_LEDGER) -> None:
        self.limit = max(1, limit)
        self._items: list[tuple[Selector, float]] = list(entries)[-self.limit :]
        self._index()

    def _index(self) -> None:
        self._single: dict[str, dict[str, float]] = {name: {} for name in FIELDS}
        self._before = -math.inf  # start times below it are erased ("before"-only erases)
        self._combined: list[tuple[Selector, float]] = []
        for s, at in self._items:
            given = list(s.as_json())
            if len(given) == 1 and given[0] in FIELDS:
                seen = self._single[given[0]]
                value = getattr(s, given[0])
                seen[value] = max(seen.get(value, -math.inf), at)
            elif given == ["before"]:
                self._before = max(self._before, min(s.before or -math.inf, at + self.SKEW))
            else:
                self._combined.append((s, at))

    def add(self, sel: Selector, at: float) -> None:
        self._items.append((sel, at))
        if len(self._items) > self.limit:
            del self._items[: len(self._items) - self.limit]
        self._index()

    def __len__(self) -> int:
        return len(self._items)

    def erased(self, row: Mapping[str, Any]) -> bool:
        """True when an erase already done covers ``row`` (a spans row)."""
        st = row.get("start_time")
        if st is None:
            return False
        for name, column in FIELDS.items():
            v = row.get(column)
            if v is not None:
                at = self._single[name].get(v)
                if at is not None and st <= at + self.SKEW:
                    return True
        if st < self._before:
            return True
        return any(st <= at + self.SKEW and s.matches_row(row) for s, at in self._combined)


# --- capture levels -------------------------------------------------------------------------

CAPTURE_HEADER = "X-Tokentail-Capture"
CAPTURE_LEVELS = ("none", "metadata", "full")  # lowest first


class CaptureError(ValueError):
    pass


def parse_capture(value: str, where: str = "capture") -> str:
    """A capture level by name (case and spaces ignored) or ``CaptureError`` naming ``where``."""
    v = value.strip().lower() if isinstance(value, str) else ""
    if v not in CAPTURE_LEVELS:
        raise CaptureError(f"{where}: {str(value)[:40]!r} is not a capture mode; use full, metadata or none")
    return v


def parse_capture_key(text: str) -> tuple[str, str]:
    """``--capture-key FINGERPRINT=MODE`` -> (fingerprint, mode), or ``CaptureError``."""
    fp, sep, mode = str(text).partition("=")
    fp = fp.strip().lower()
    if not sep or not fp or len(fp) > 64 or not all(c in "0123456789abcdef" for c in fp):
        raise CaptureError(f"--capture-key {str(text)[:80]!r}: expected FINGERPRINT=MODE (a key fingerprint in hex)")
    return fp, parse_capture(mode, f"--capture-key {fp}")


def lowest(levels: Iterable[str | None]) -> str:
    """The lowest of the given levels (None: not set there); ``full`` when none is set."""
    rank = min((CAPTURE_LEVELS.index(v) for v in levels if v in CAPTURE_LEVELS), default=len(CAPTURE_LEVELS) - 1)
    return CAPTURE_LEVELS[rank]
