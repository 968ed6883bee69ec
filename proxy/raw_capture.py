"""The raw stream view: the SSE events relayed for a request, in order, as they arrived.

``RawCapture`` belongs to one request (``RequestRecord.raw``): the tap adds each SSE event's
raw text with its arrival time (ms from the request's start) and whether it is the usage
chunk tokentail injected (stripped from the client's stream, kept here marked). It is capped
in bytes like the other captures (beyond: ``truncated``) and also holds the request's JSON
body as sent upstream (after a route's model rewrite).

A secret streamed in pieces (``"sk-"``, ``"proj-"``, ...) matches no rule in any one event, so
``view`` also redacts the completion (and reasoning) text assembled from the events' pieces
and withholds the piece of every event that overlaps a secret found there
(``[REDACTED:split_secret]``; the whole event when the piece cannot be found in it).

Nothing here is redacted per chunk: ``raw_store.RawStore`` (an observer) redacts a capture
once, after the request's end, and keeps the finished views in a ring; an in-flight capture
is redacted when it is served. ``GET /api/requests/{id}/raw`` serves them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from ._promptcap import cap_prompt
from .redact import Redactor

__all__ = ["FinishedView", "RawCapture", "secret_regions"]

_LABEL = re.compile(r"\[REDACTED:[A-Za-z0-9_]+\]")
SPLIT = "[REDACTED:split_secret]"
WITHHELD = "[REDACTED: this event carries part of a secret streamed across events]"


class RawCapture:
    __slots__ = ("_bytes", "_cap", "_clock", "_prompt", "_t0", "events", "request_body", "truncated")

    def __init__(
        self, t0: float, cap: int, request_body: Any = None, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self._t0, self._cap, self._clock = t0, cap, clock
        self._bytes = 0
        # (arrival clock, raw event bytes, injected, completion text it carried, reasoning text it carried)
        self.events: list[tuple[float, bytes, bool, str, str]] = []
        self.truncated = False
        self.request_body = request_body
        self._prompt: tuple[dict[str, Any], tuple[str, ...], bool] | None = None

    def use_prompt(self, prompt: dict[str, Any], keys: tuple[str, ...], truncated: bool) -> None:
        """Show the body's prompt fields (``keys``) as the record holds them, already capped
        and redacted off the event loop (``rec.prompt``), instead of redacting them again
        here: thousands of small messages are seconds of redaction in one turn of the loop."""
        self._prompt = (prompt, keys, truncated)

    def add(self, raw: bytes, injected: bool = False, text: str = "", reasoning: str = "") -> None:
        if self.truncated:
            return
        if self._bytes + len(raw) > self._cap:
            self.truncated = True
            return
        self._bytes += len(raw)
        self.events.append(
            (self._clock(), raw, injected, text, reasoning)  # decoded and made relative when viewed
        )

    @property
    def size(self) -> int:
        return self._bytes

    def redact_slice(self, redactor: Redactor, lo: int, hi: int) -> list[str]:
        """Events ``lo:hi`` as text, each redacted (a slice at a time: ``raw_store`` spreads
        the work of a long stream over several turns of the event loop)."""
        texts = [e[1].decode("utf-8", "replace") for e in self.events[lo:hi]]
        # Nearly every event holds no secret, yet each one's digits (``created``) wake the
        # digit rules: one call for the slice is ~8x cheaper than one per event. A match in an
        # event alone is a match in the newline-joined slice (the built-in rules end at
        # separators, and each SSE event already ends in newlines), so an unchanged join means
        # unchanged events; anything found, or user patterns (their anchors are theirs), and
        # each event is redacted on its own as before.
        if len(texts) > 1 and not redactor.has_user_rules:
            joined = "\n".join(texts)
            if redactor.redact_text(joined) == joined:
                return texts
        return [redactor.redact_text(t) for t in texts]

    def finish(self, raws: list[str], redactor: Redactor) -> FinishedView:
        """The view of the first ``len(raws)`` events, given them redacted one by one: all
        that is redacted is done here; the JSON's dicts are built when it is served."""
        events = self.events[: len(raws)]
        body, body_cut = self._body(redactor)
        _withhold_split_secrets(raws, [e[3] for e in events], redactor)  # the completion text
        _withhold_split_secrets(raws, [e[4] for e in events], redactor)  # the reasoning
        return FinishedView(
            self._t0, [e[0] for e in events], raws, [e[2] for e in events], self.truncated or body_cut, body
        )

    def finish_view(self, raws: list[str], redactor: Redactor) -> dict[str, Any]:
        """``finish(...)`` as the JSON of ``GET /api/requests/{id}/raw``."""
        return self.finish(raws, redactor).as_dict()

    def _body(self, redactor: Redactor) -> tuple[Any, bool]:
        """The body as sent, redacted, and whether anything of it was cut. Cut at the
        capture's budget before it is redacted: megabytes of prompt would be tens of
        milliseconds of redaction in one turn of the event loop (RELIABILITY 30)."""
        body = self.request_body
        if body is None:
            return None, False
        if self._prompt is None or not isinstance(body, dict):
            capped, cut, _ = cap_prompt(body, self._cap)
            return redactor.redact_json(capped), cut
        prompt, keys, cut = self._prompt
        rest, rest_cut, _ = cap_prompt({k: v for k, v in body.items() if k not in keys}, self._cap)
        rest = redactor.redact_json(rest)
        out = {}
        for k in body:  # the client's order; a prompt field the cap dropped stays out
            source = prompt if k in keys else rest
            if k in source:
                out[k] = source[k]
        return out, cut or rest_cut or len(out) < len(body)

    def view(self, redactor: Redactor) -> dict[str, Any]:
        """The JSON of ``GET /api/requests/{id}/raw``, redacted, all at once."""
        return self.finish_view(self.redact_slice(redactor, 0, len(self.events)), redactor)


class FinishedView:
    """A finished request's raw view, redacted: the events' redacted text with their times and
    marks, kept flat (a dict per event, built for every request, was ~40 % of the view's cost
    on the loop; most views are never opened) until ``as_dict`` builds the served JSON."""

    __slots__ = ("_t0", "body", "injected", "raws", "times", "truncated")

    def __init__(
        self, t0: float, times: list[float], raws: list[str], injected: list[bool], truncated: bool, body: Any
    ) -> None:
        self._t0, self.times, self.raws, self.injected = t0, times, raws, injected
        self.truncated, self.body = truncated, body

    def as_dict(self) -> dict[str, Any]:
        t0 = self._t0
        return {
            "events": [
                {"seq": i, "t_ms": round((t - t0) * 1000.0, 3), "raw": raw, "injected": inj}
                for i, (t, raw, inj) in enumerate(zip(self.times, self.raws, self.injected, strict=True))
            ],
            "truncated": self.truncated,
            "request_body": self.body,
        }


def secret_regions(full: str, redacted: str) -> list[tuple[int, int]] | None:
    """The spans of ``full`` that redaction replaced with labels, found by aligning the text
    between the labels; None when it cannot be aligned (the caller then masks every piece).

    The end of a span is the first place the literal text after its label appears again,
    so a short literal that also occurs inside the secret ends the span early: the pieces
    are masked whole, which covers most of that, and the label-anchored start is exact."""
    labels = list(_LABEL.finditer(redacted))
    if not labels:
        return [] if full == redacted else None
    regions: list[tuple[int, int]] = []
    i = j = k = 0  # position in full, in redacted, label index
    while k < len(labels):
        lit = redacted[j : labels[k].start()]
        if not full.startswith(lit, i):
            return None
        start = i + len(lit)
        while k + 1 < len(labels) and labels[k + 1].start() == labels[k].end():
            k += 1  # touching labels: one span
        j = labels[k].end()
        last = k + 1 == len(labels)
        seg = redacted[j : len(redacted) if last else labels[k + 1].start()]
        if last:
            end = len(full) - len(seg)
            if end <= start or not full.endswith(seg):
                return None
        else:
            end = full.find(seg, start + 1)
            if end < 0:
                return None
        regions.append((start, end))
        i = end
        k += 1
    return regions


def _withhold_split_secrets(raws: list[str], pieces: list[str], redactor: Redactor) -> None:
    full = "".join(pieces)
    if not full:
        return
    redacted = redactor.redact_text(full)
    if redacted == full:
        return
    regions = secret_regions(full, redacted)
    pos = 0
    for idx, piece in enumerate(pieces):
        lo, hi = pos, pos + len(piece)
        pos = hi
        # A secret inside one piece was redacted with its event; only one that crosses the
        # piece's edges is split across events.
        if piece and (regions is None or any(a < hi and lo < b and not (lo <= a and b <= hi) for a, b in regions)):
            raws[idx] = _mask(raws[idx], piece)


def _mask(raw: str, piece: str) -> str:
    """``raw`` with ``piece`` (as JSON escapes it) replaced, or the whole event withheld."""
    for form in (json.dumps(piece, ensure_ascii=False)[1:-1], json.dumps(piece)[1:-1]):
        if form and form in raw:
            return raw.replace(form, SPLIT)
    return WITHHELD
