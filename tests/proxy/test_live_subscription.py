"""Subscription.get_nowait: what is ready now, never waiting; the end is left for get()."""

from __future__ import annotations

from tokentail.proxy.live_subscription import Subscription


def _ev(seq: int) -> tuple[int, str, dict, int]:
    return (seq, "request.delta", {"seq": seq}, 10)


async def test_get_nowait_takes_backlog_then_queue_then_nothing() -> None:
    sub = Subscription("boot", [_ev(1)], maxsize=8)
    assert sub.push(_ev(2))
    assert sub.get_nowait() == ("boot:1", "request.delta", {"seq": 1})
    assert sub.get_nowait() == ("boot:2", "request.delta", {"seq": 2})
    assert sub.get_nowait() is None  # nothing ready: no wait, no exception
    assert sub.push(_ev(3))
    assert await sub.get() == ("boot:3", "request.delta", {"seq": 3})


async def test_the_end_marker_taken_by_get_nowait_still_ends_get() -> None:
    sub = Subscription("boot", [], maxsize=8)
    sub.push(_ev(1))
    sub.close(lagged=True)  # clears the queue, then queues the end marker
    assert sub.get_nowait() is None
    assert await sub.get(timeout=1.0) is None  # returns at once, not after the timeout
    assert sub.get_nowait() is None
