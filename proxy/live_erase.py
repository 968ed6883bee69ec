"""Erasing captured content from the live hub's ring and replay log (pure over its structures).

``erase`` empties, for every entry whose ``request.start`` data ``match`` selects: the prompt
keys and ``prompt_preview`` of its start data, its text, reasoning and tool calls (in flight:
the buffers and stream redactors), and the text of its ``request.delta`` and ``request.end``
events still in the replay log. The dicts are emptied in place: an event still queued for a
subscriber, or held in the log for a ``Last-Event-ID`` replay, is the same dict, so it goes
out empty too. Ids, usage, timings, status and cost stay. The entry is marked ``erased``
in its start data (``content_erased``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .live_entry import Entry, Event

__all__ = ["erase"]

_TEXT_KEYS = ("reasoning", "tool_calls")


def _empty_start(st: dict[str, Any], prompt_keys: Iterable[str]) -> None:
    for k in prompt_keys:
        st.pop(k, None)
    st["prompt_preview"] = ""
    st["params"] = {k: v for k, v in (st.get("params") or {}).items() if isinstance(v, (bool, int, float))}
    st["content_erased"] = True


def erase(
    entries: Mapping[str, Entry], log: Iterable[Event], match: Callable[[dict[str, Any]], bool]
) -> tuple[list[str], int]:
    """Erase the selected entries (see the module docstring); their ids and the bytes freed."""
    ids: list[str] = []
    freed = 0
    for e in entries.values():
        if not match(e.start):
            continue
        ids.append(e.id)
        _empty_start(e.start, e.prompt_keys)
        e.prompt_keys = ()
        before = len(e.buf) + len(e.rbuf) + len(e.text or "") + len(e.reasoning or "")
        e.buf, e.rbuf = bytearray(), bytearray()
        if e.text is not None:
            e.text = ""
        if e.reasoning is not None:
            e.reasoning = ""
        e.tool_calls = []
        e.streams = None  # in flight: the held tails go too (later deltas arrive empty, see capture)
        if e.held:
            for _name, data, _size in e.held:
                _empty_event(data)
        if e.end is not None:
            e.end.pop("text", None)
        e.size -= before
        freed += before
    if ids:
        wanted = set(ids)
        for _seq, name, data, _size, wire in log:
            if data.get("id") not in wanted:
                continue
            if name in ("request.delta", "request.end"):
                _empty_event(data)
            if wire is not None:  # its SSE bytes, shared by subscribers, may hold the text: encode again
                wire.bytes, wire.done = None, False
    return ids, freed


def _empty_event(data: dict[str, Any]) -> None:
    if "text" in data:
        data["text"] = ""
    for k in _TEXT_KEYS:
        data.pop(k, None)
