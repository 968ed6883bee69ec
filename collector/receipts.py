"""Span batches received and not stored yet: how far a reader by receipt time can trust.

The OTLP receiver stamps each batch's ``received_at`` when it arrives, then decodes and
stores it; batches decode side by side, so one stamped earlier can be committed after one
stamped later. A reader that pages by receipt time (``/api/spans?received_since=``) must
not move its cursor past a batch still on its way: ``watermark`` is the earliest stamp in
flight, or now when none is, and every span received before it is stored (pure, no I/O).
"""

from __future__ import annotations

from collections import Counter

__all__ = ["Receipts"]


class Receipts:
    """The receipt stamps of batches in flight (a multiset: batches can share a stamp)."""

    def __init__(self) -> None:
        self._open: Counter[float] = Counter()

    def begin(self, stamp: float) -> None:
        self._open[stamp] += 1

    def end(self, stamp: float) -> None:
        """The batch stamped ``stamp`` is stored, or was refused: either way not on its way."""
        n = self._open[stamp] - 1
        if n > 0:
            self._open[stamp] = n
        else:
            del self._open[stamp]

    def watermark(self, now: float) -> float:
        """Every span received before this time is stored."""
        return min(min(self._open), now) if self._open else now

    def __len__(self) -> int:
        return sum(self._open.values())
