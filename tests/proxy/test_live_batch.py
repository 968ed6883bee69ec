"""live_batch: a batch of hub events folded and encoded as Redis stream entries."""

from __future__ import annotations

import json

from tokentail.proxy.live_batch import coalesce, encode_data, entry_fields


def _delta(rid: str, seq: int, text: str, **extra) -> tuple[str, dict]:
    return ("request.delta", {"id": rid, "seq": seq, "text": text, **extra})


def test_consecutive_deltas_of_one_request_fold_into_one_keeping_order_per_request():
    events = [
        ("request.start", {"id": "a"}),
        _delta("a", 1, "Hel", ttft_ms=12.5),
        ("request.start", {"id": "b"}),
        _delta("b", 1, "x"),
        _delta("a", 2, "lo "),
        _delta("a", 3, "world", reasoning="r"),
        _delta("b", 2, "y"),
        ("request.end", {"id": "a", "status": "ok"}),
        _delta("b", 3, "z"),
    ]
    out = coalesce(events)
    names = [(n, d["id"]) for n, d in out]
    # b's last delta comes after a's end but b has said nothing else since: it folds too.
    assert names == [
        ("request.start", "a"),
        ("request.delta", "a"),
        ("request.start", "b"),
        ("request.delta", "b"),
        ("request.end", "a"),
    ]
    a = out[1][1]
    assert a == {"id": "a", "seq": 3, "text": "Hello world", "ttft_ms": 12.5, "reasoning": "r"}
    b = out[3][1]
    assert b == {"id": "b", "seq": 3, "text": "xyz"}


def test_a_delta_after_its_request_ended_is_not_folded_into_an_earlier_one():
    out = coalesce([_delta("a", 1, "x"), ("request.end", {"id": "a"}), _delta("a", 2, "y")])
    assert [(n, d.get("text")) for n, d in out] == [
        ("request.delta", "x"),
        ("request.end", None),
        ("request.delta", "y"),
    ]


def test_tool_call_fragments_are_kept_in_order_and_the_inputs_are_not_changed():
    first = {"id": "a", "seq": 1, "text": "", "tool_calls": [{"index": 0, "function": {"name": "f"}}]}
    second = {"id": "a", "seq": 2, "text": "", "tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}
    before = json.dumps([first, second])
    ((_name, merged),) = coalesce([("request.delta", first), ("request.delta", second)])
    assert merged["tool_calls"] == first["tool_calls"] + second["tool_calls"]
    assert json.dumps([first, second]) == before  # the hub's dicts are shared: never mutated


def test_encoded_data_is_one_line_whatever_the_text():
    nasty = "line1\nline2\r\n\u2028 data: fake\n\nevent: x " + "\ud800" + " nan"
    raw = encode_data({"id": "a", "text": nasty, "x": float("nan"), "y": float("inf")})
    assert b"\n" not in raw and b"\r" not in raw
    back = json.loads(raw)
    assert back["x"] is None and back["y"] is None
    assert back["text"].startswith("line1\nline2\r\n\u2028 data: fake")


def test_entry_fields():
    f = entry_fields("request.start", {"id": "a", "model": "m"}, "boot1")
    assert f["e"] == b"request.start" and f["p"] == b"boot1"
    assert json.loads(f["d"]) == {"id": "a", "model": "m"}
