"""Span content within a byte budget (pure): prompt and completion JSON cut to size, still valid.

A span carries the prompt and the completion twice (the details event and the span
attributes, see ``spans``), so about 4x ``DEFAULT_SPAN_CONTENT_BYTES`` per span; the export
batch size in ``telemetry`` is chosen so a batch of such spans stays under the collector's
OTLP body limit (16 MiB), and a receiver never refuses a batch for its size.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ._genai import to_json

# Prompt and completion kept on one span, each, in UTF-8 bytes of their JSON.
DEFAULT_SPAN_CONTENT_BYTES = 64 << 10
TT_CONTENT_TRUNCATED = "tokentail.content.truncated"  # span (and details event) attribute
TRUNCATION_MARK = "…[truncated]"
_CUT_PASSES = 4


def _json_len(s: str) -> int:
    """UTF-8 bytes of ``s``."""
    return len(s) if s.isascii() else len(s.encode("utf-8", "replace"))


def _escaped_len(s: str) -> int:
    """UTF-8 bytes of ``s`` as a JSON string body (quotes, backslashes and controls escaped)."""
    if s.isprintable():  # no control characters: only quotes and backslashes grow
        return _json_len(s) + s.count('"') + s.count("\\")
    return _json_len(json.dumps(s, ensure_ascii=False)) - 2


_MARK_LEN = _json_len(TRUNCATION_MARK)


def _leaf_sizes(v: Any, out: list[int], depth: int = 0) -> None:
    if type(v) is str:
        out.append(_escaped_len(v))
    elif depth < 64 and type(v) is list:
        for x in v:
            _leaf_sizes(x, out, depth + 1)
    elif depth < 64 and type(v) is dict:
        for x in v.values():
            _leaf_sizes(x, out, depth + 1)


def _cut_limit(sizes: list[int], excess: int) -> int:
    """The largest per-string size L whose cuts remove at least ``excess`` bytes (water-filling)."""
    lo, hi = 0, max(sizes, default=0)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        saved = sum(n - mid - _MARK_LEN for n in sizes if n > mid + _MARK_LEN)
        if saved >= excess:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _cut(v: Any, limit: int, sizes: Iterator[int], depth: int = 0) -> Any:
    """A copy of ``v`` with every string over ``limit`` bytes (as JSON) cut and marked; never in
    place: the structures may share objects with the record's prompt. ``sizes`` yields each
    string's size as ``_leaf_sizes`` found them, in the same order."""
    if type(v) is str:
        n = next(sizes)
        if n <= limit + _MARK_LEN:
            return v
        keep = v[: len(v) * limit // n]  # proportional, then trimmed until it fits (once or twice)
        while keep and (k := _escaped_len(keep)) > limit:
            keep = keep[: min(len(keep) - 1, len(keep) * limit // k)]
        return keep + TRUNCATION_MARK
    if depth < 64 and type(v) is list:
        return [_cut(x, limit, sizes, depth + 1) for x in v]
    if depth < 64 and type(v) is dict:
        return {k: _cut(x, limit, sizes, depth + 1) for k, x in v.items()}
    return v


def capped_json(value: list[Any], cap: int) -> tuple[str, bool]:
    """``value`` as compact JSON of at most ``cap`` UTF-8 bytes, and whether it was cut.

    Still valid JSON of the same shape: the longest strings are cut first, each marked with
    ``TRUNCATION_MARK``; if the structure alone is too big (thousands of short messages), the
    oldest items are left out and the latest kept. A few linear passes at most.
    """
    sizes: list[int] = []
    _leaf_sizes(value, sizes)
    size = sum(sizes)  # a lower bound of the JSON's size, without serialising it
    if size <= cap:
        s = to_json(value)
        size = _json_len(s)
        if size <= cap:
            return s, False
    cur: Any = value
    for i in range(_CUT_PASSES):
        if i:
            sizes = []
            _leaf_sizes(cur, sizes)
        cur = _cut(cur, _cut_limit(sizes, size - cap), iter(sizes))
        s = to_json(cur)
        before, size = size, _json_len(s)
        if size <= cap:
            return s, True
        if i and size >= before:
            break  # nothing left worth cutting: the structure itself is too big
    items = cur if type(cur) is list else [cur]
    budget, keep = cap - 2, 0  # the brackets
    for item in reversed(items):
        n = _json_len(to_json(item)) + (1 if keep else 0)  # and a comma between items
        if n > budget:
            break
        budget -= n
        keep += 1
    return to_json(items[len(items) - keep :]), True
