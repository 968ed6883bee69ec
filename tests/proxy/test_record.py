"""The observer fan-out and delta merging."""

from __future__ import annotations

import logging

from tokentail.proxy import record as R
from tokentail.proxy.record import Delta, Observers, RequestRecord, merge_deltas


def test_merge_keeps_text_reasoning_and_tool_calls_in_order():
    a = Delta(text="Hel", reasoning="r1")
    b = Delta(tool_calls=[{"index": 0, "function": {"arguments": "{"}}])
    c = Delta(text="lo", reasoning="r2", tool_calls=[{"index": 0, "function": {"arguments": "}"}}])
    m = merge_deltas([a, b, c])
    assert (m.text, m.reasoning) == ("Hello", "r1r2")
    assert [t["function"]["arguments"] for t in m.tool_calls] == ["{", "}"]
    assert merge_deltas([a]) is a
    assert merge_deltas([Delta(text="x"), Delta(text="y")]).tool_calls is None


class Recorder:
    def __init__(self):
        self.calls = []

    def on_start(self, rec):
        self.calls.append(("start", rec.id))

    def on_delta(self, rec, delta):
        self.calls.append(("delta", delta.text))

    def on_end(self, rec):
        self.calls.append(("end", rec.id))


class Broken:
    def on_start(self, rec):
        raise RuntimeError("boom")

    def on_end(self, rec):
        raise ValueError("bang")


def test_a_failing_observer_never_stops_the_others(caplog):
    caplog.set_level(logging.ERROR)
    rec_obs = Recorder()
    obs = Observers([Broken(), rec_obs])  # Broken has no on_delta: skipped, not an error
    rec = RequestRecord(id="r1", variant="v", method="POST", endpoint="/chat/completions")
    obs.start(rec)
    obs.delta(rec, Delta(text="t"))
    obs.end(rec)
    assert rec_obs.calls == [("start", "r1"), ("delta", "t"), ("end", "r1")]
    assert "boom" in caplog.text and "bang" in caplog.text


def test_error_kinds_are_the_documented_names() -> None:
    # DESIGN: the live feed, /api/requests and spans (error.type) carry these names.
    assert (R.ERR_INCOMPLETE, R.ERR_DISCONNECT) == ("incomplete_stream", "upstream_disconnect")
