"""Live events made into Redis stream entries (pure): what ``live_redis`` sends per batch.

The hub publishes one ``request.delta`` per released piece of text; a token each, in a fast
stream. ``live_redis`` collects them for a few milliseconds and ``coalesce`` folds the
consecutive deltas of one request into one (text and reasoning joined, tool-call fragments
kept in order, ``seq`` the last one's, ``ttft_ms`` the first one's), so Redis stores, and a
reader replays, one entry per request per batch rather than one per token. The order of
each request's own events is kept (start, deltas, end); across requests the batch keeps
first-arrival order. The hub's data dicts are shared (read-only): merges build new dicts.

``entry_fields`` is one stream entry: ``e`` the event name, ``d`` the data as compact JSON
(one line: JSON escapes newlines, so a reader writes it after ``data:`` as is; NaN/inf as
null; lone surrogates as ``?``), ``p`` the proxy's boot id.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .live_sse import finite

__all__ = ["DELTA", "EVENTS", "coalesce", "encode_data", "entry_fields"]

DELTA = "request.delta"
EVENTS = frozenset({"request.start", DELTA, "request.end"})


def _merge(first: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    out = dict(first)
    out["text"] = (first.get("text") or "") + (later.get("text") or "")
    reasoning = (first.get("reasoning") or "") + (later.get("reasoning") or "")
    if reasoning:
        out["reasoning"] = reasoning
    tools = list(first.get("tool_calls") or ()) + list(later.get("tool_calls") or ())
    if tools:
        out["tool_calls"] = tools
    if "seq" in later:
        out["seq"] = later["seq"]
    if "ttft_ms" not in out and "ttft_ms" in later:
        out["ttft_ms"] = later["ttft_ms"]
    return out


def coalesce(events: Iterable[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """``(name, data)`` events with each request's consecutive deltas folded into one."""
    out: list[tuple[str, dict[str, Any]]] = []
    open_delta: dict[Any, int] = {}  # request id -> index in out of its latest event, a delta
    for name, data in events:
        rid = data.get("id")
        if name == DELTA and not data.get("snapshot"):
            at = open_delta.get(rid)
            if at is not None:
                out[at] = (DELTA, _merge(out[at][1], data))
                continue
            open_delta[rid] = len(out)
        else:
            open_delta.pop(rid, None)
        out.append((name, data))
    return out


def encode_data(data: dict[str, Any]) -> bytes:
    """Compact one-line JSON of ``data`` as UTF-8 (NaN/inf as null, lone surrogates as ``?``)."""
    try:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError:
        text = json.dumps(finite(data), ensure_ascii=False, separators=(",", ":"), default=str)
    return text.encode("utf-8", "replace")


def entry_fields(name: str, data: dict[str, Any], boot_id: str) -> dict[str, bytes]:
    """The fields of one stream entry (see the module docstring)."""
    return {"e": name.encode(), "d": encode_data(data), "p": boot_id.encode()}
