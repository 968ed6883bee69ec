"""The receipt clock of span batches, and how far a reader by receipt time can trust it.

The OTLP receiver stamps each batch's ``received_at`` when it arrives, then decodes and
stores it; batches decode side by side, so one stamped earlier can be committed after one
stamped later. A reader that pages by receipt time (``/api/spans?received_since=``) must
not move its cursor past a batch still on its way: ``watermark`` is the earliest stamp in
flight, or now when none is, and every span received before it is stored.

Stamps come from the wall clock, which can step back (NTP, a VM restored): a batch stamped
below a cursor already handed out would never be read. So stamps never go back: each is
above every earlier stamp and every watermark given out (distinct, so one batch's spans
share a stamp and no other batch's), and the floor can start at the newest stamp stored
before a restart (pure, no I/O).
"""

from __future__ import annotations

import math

__all__ = ["Receipts"]


class Receipts:
    """The stamps handed out, and those of batches in flight."""

    def __init__(self, floor: float = 0.0) -> None:
        self._open: set[float] = set()
        self._floor = floor  # no later stamp is below it

    def raise_floor(self, stamp: float | None) -> None:
        """Stamp from here on above ``stamp`` (the newest one stored, at start)."""
        if stamp is not None and math.isfinite(stamp) and stamp >= self._floor:
            self._floor = math.nextafter(stamp, math.inf)

    def begin(self, now: float) -> float:
        """The stamp of a batch received at ``now`` (the wall clock), in flight until ``end``."""
        stamp = max(now, self._floor)
        self._floor = math.nextafter(stamp, math.inf)
        self._open.add(stamp)
        return stamp

    def end(self, stamp: float) -> None:
        """The batch stamped ``stamp`` is stored, or was refused: either way not on its way."""
        self._open.discard(stamp)

    def watermark(self, now: float) -> float:
        """Every span received before this time is stored, and none is stamped below it later."""
        if self._open:
            return min(self._open)  # stamps rise in the order batches came: all before it are done
        mark = max(now, self._floor)
        self._floor = mark  # a later batch may be stamped exactly this: ``>=`` reads it
        return mark

    def __len__(self) -> int:
        return len(self._open)
