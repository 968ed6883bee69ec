"""Capture modes and erasure at the source: what the forward handler lets the observers see.

``CaptureMode`` (a request hook) sets ``RequestRecord.capture`` and takes the prompt off the
record. This module does the response half, so no sink (live feed, replay ring, raw view,
spans, the collector) has to know about modes:

- ``metadata``: the tap captures no text (its cap is 0), the raw view is not kept, deltas
  reach the observers empty (timings and counts still come: a delta is still a delta), and
  the record's text and tool calls are emptied before ``on_end``. The live entry shows
  model, status, usage, timings and cost.
- ``none``: only the counting observers (metrics, upstream health, the session tracker's
  bookkeeping) are told of the request: no live entry, no span, no raw view.

``erase_in_flight`` lowers requests still in flight to ``metadata``: what arrives after the
erase is never captured, and what the record held goes now.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from weakref import WeakKeyDictionary

from .metrics import ProxyMetrics
from .record import Delta, Observers, RequestRecord
from .sessions import SessionTracker
from .upstream_health import UpstreamHealth

FULL, METADATA, NONE = "full", "metadata", "none"
_COUNTING = (ProxyMetrics, UpstreamHealth, SessionTracker)
_counting: WeakKeyDictionary[Observers, Observers] = WeakKeyDictionary()
_EMPTY = Delta()


def observers_for(observers: Observers, rec: RequestRecord) -> Observers:
    """The observers that may be told of ``rec``: all, or the counting ones for ``none``."""
    if rec.capture != NONE:
        return observers
    only = _counting.get(observers)
    if only is None:
        only = _counting[observers] = Observers([o for o in observers.all if isinstance(o, _COUNTING)])
    return only


def tap_bytes(rec: RequestRecord, capture_bytes: int) -> int:
    """The tap's capture cap for ``rec``: 0 below ``full`` (no text is kept at all)."""
    return capture_bytes if rec.capture == FULL else 0


def after_tap(rec: RequestRecord) -> None:
    """Below ``full``, no raw stream view is kept for the replay ring."""
    if rec.capture != FULL:
        rec.raw = None


def delta_for_observers(rec: RequestRecord, delta: Delta) -> Delta:
    """The delta as observers may see it: empty below ``full`` (the tap's tool calls too)."""
    if rec.capture == FULL:
        return delta
    rec.tool_calls = []
    return _EMPTY


def at_end(rec: RequestRecord) -> None:
    """Below ``full``, the record ends with no text: nothing to hand to on_end's sinks."""
    if rec.capture == FULL:
        return
    rec.text = rec.reasoning = ""
    rec.tool_calls = []
    rec.prompt = {}
    rec.raw = None
    rec.truncated = False  # nothing captured, so nothing was cut


def erase_in_flight(records: Iterable[RequestRecord], match: Any) -> list[str]:
    """Lower each in-flight record ``match(rec)`` selects to ``metadata`` and empty it now."""
    ids = []
    for rec in records:
        if rec.capture == FULL and match(rec):
            rec.capture = METADATA
            rec.prompt, rec.prompt_pending = {}, None
            rec.text = rec.reasoning = ""
            rec.tool_calls = []
            rec.raw = None
            ids.append(rec.id)
    return ids
