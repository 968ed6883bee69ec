"""events.py: the broadcaster never blocks, a new subscriber gets the latest snapshot at once."""

from __future__ import annotations

import json

from tokentail.collector.events import QUEUE_SIZE, Broadcaster, format_event


def test_latest_snapshot_on_subscribe_and_fan_out():
    b = Broadcaster()
    b.publish("snapshot", {"n": 1})
    b.publish("target", {"up": False})  # not replayed: only snapshots are state
    with b.subscribe() as q1, b.subscribe() as q2:
        assert b.subscribers == 2
        _seq, name, data = q1.get_nowait()
        assert name == "snapshot" and json.loads(data) == {"n": 1}
        b.publish("snapshot", {"n": 2})
        assert json.loads(q1.get_nowait()[2]) == {"n": 2}
        assert [json.loads(q2.get_nowait()[2])["n"] for _ in range(2)] == [1, 2]
    assert b.subscribers == 0


def test_a_stalled_subscriber_loses_the_oldest_and_never_blocks():
    b = Broadcaster()
    with b.subscribe() as q:
        for i in range(QUEUE_SIZE + 5):
            b.publish("snapshot", {"n": i})
        assert q.qsize() == QUEUE_SIZE and b.dropped == 5
        assert json.loads(q.get_nowait()[2]) == {"n": 5}  # the oldest went first
        b.close()
        items = [q.get_nowait() for _ in range(q.qsize())]
        assert items[-1] is None  # the stream is told to end


def test_format():
    assert format_event(7, "snapshot", '{"a":1}') == b'id: 7\nevent: snapshot\ndata: {"a":1}\n\n'
