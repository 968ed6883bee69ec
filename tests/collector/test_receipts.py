"""collector.receipts: how far a reader paging by receipt time may move its cursor."""

from __future__ import annotations

from tokentail.collector.receipts import Receipts


def test_the_watermark_is_now_with_nothing_in_flight():
    r = Receipts()
    assert r.watermark(100.0) == 100.0 and len(r) == 0


def test_the_earliest_batch_in_flight_holds_the_watermark_until_it_ends():
    r = Receipts()
    r.begin(10.0)
    r.begin(12.0)
    assert r.watermark(20.0) == 10.0
    r.end(12.0)  # the later one stored first: the earlier one still holds it
    assert r.watermark(20.0) == 10.0
    r.end(10.0)
    assert r.watermark(20.0) == 20.0


def test_batches_sharing_a_stamp_are_counted_each():
    r = Receipts()
    r.begin(5.0)
    r.begin(5.0)
    r.end(5.0)
    assert r.watermark(9.0) == 5.0 and len(r) == 1
    r.end(5.0)
    assert r.watermark(9.0) == 9.0 and len(r) == 0


def test_a_stamp_ahead_of_the_clock_never_moves_the_watermark_past_now():
    r = Receipts()
    r.begin(50.0)  # a clock that stepped back after it
    assert r.watermark(40.0) == 40.0
