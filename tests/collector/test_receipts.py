"""collector.receipts: the receipt clock, and how far a reader paging by receipt time may
move its cursor."""

from __future__ import annotations

import math

from tokentail.collector.receipts import Receipts


def test_the_watermark_is_now_with_nothing_in_flight():
    r = Receipts()
    assert r.watermark(100.0) == 100.0 and len(r) == 0


def test_the_earliest_batch_in_flight_holds_the_watermark_until_it_ends():
    r = Receipts()
    a = r.begin(10.0)
    b = r.begin(12.0)
    assert (a, b) == (10.0, 12.0) and r.watermark(20.0) == 10.0
    r.end(b)  # the later one stored first: the earlier one still holds it
    assert r.watermark(20.0) == 10.0
    r.end(a)
    assert r.watermark(20.0) == 20.0


def test_batches_received_at_the_same_instant_get_distinct_stamps():
    r = Receipts()
    a, b = r.begin(5.0), r.begin(5.0)
    assert a == 5.0 and b == math.nextafter(5.0, math.inf)
    r.end(a)
    assert r.watermark(9.0) == b and len(r) == 1
    r.end(b)
    assert r.watermark(9.0) == 9.0 and len(r) == 0


def test_a_clock_stepped_back_never_stamps_below_a_stamp_or_watermark_given_out():
    r = Receipts()
    first = r.begin(1000.0)
    r.end(first)
    cursor = r.watermark(1005.0)  # a reader's cursor
    stamps = []
    for now in (900.0, 900.0, 950.0, 1004.0, 1006.0):  # stepped back 105 s, then catching up
        stamps.append(r.begin(now))
        r.end(stamps[-1])
    assert all(s >= cursor for s in stamps), (cursor, stamps)
    assert stamps == sorted(set(stamps))  # rising, each distinct
    assert stamps[-1] == 1006.0  # the wall clock again once it has caught up
    assert r.watermark(901.0) > stamps[-1]


def test_a_batch_in_flight_holds_the_watermark_even_ahead_of_a_clock_stepped_back():
    r = Receipts()
    held = r.begin(50.0)
    assert r.watermark(40.0) == held  # spans stamped before it are all stored
    later = r.begin(40.0)
    assert later > held
    r.end(held)
    assert r.watermark(40.0) == later


def test_the_floor_from_storage_starts_stamps_above_what_is_stored():
    r = Receipts()
    r.raise_floor(2000.0)  # stored before a restart; the clock now says 1500
    assert r.begin(1500.0) > 2000.0
    r.raise_floor(None)  # an empty store
    r.raise_floor(float("nan"))
    r.raise_floor(10.0)  # below the floor: no change
    assert r.begin(1500.0) > 2000.0
