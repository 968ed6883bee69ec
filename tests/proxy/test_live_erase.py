"""live_erase through LiveHub.erase: entries, the replay log and events still queued for a
subscriber lose their text in place; ids, usage and timings stay; other requests keep theirs."""

from __future__ import annotations

import json

from tokentail.proxy.live import LiveHub
from tokentail.proxy.live_sse import item_slices
from tokentail.proxy.record import OK, Delta, RequestRecord, Usage


def _rec(rid: str, session: str, text: str) -> RequestRecord:
    r = RequestRecord(id=rid, variant="production", method="POST", endpoint="/chat/completions")
    r.model, r.stream, r.session_id = "m", True, session
    r.prompt = {"messages": [{"role": "user", "content": f"prompt {text}"}]}
    r.params = {"temperature": 0.2, "stop": [text]}
    return r


def _drain(sub) -> list:
    out = []
    while (item := sub.get_nowait()) is not None:
        out.append(item)
    return out


def test_erase_empties_entries_log_and_queued_events_in_place():
    hub = LiveHub(boot_id="b")
    sub = hub.subscribe(None, snapshot=False)  # live events only: they queue up for it
    gone, kept = _rec("r1", "s-gone", "SECRETX"), _rec("r2", "s-kept", "KEEPY")
    hub.on_start(gone)
    hub.on_start(kept)
    for r, word in ((gone, "SECRETX"), (kept, "KEEPY")):
        for piece in (f"{word} one ", f"{word} two "):
            r.text += piece
            r.deltas += 1
            hub.on_delta(r, Delta(text=piece))
    gone.status = OK
    gone.usage = Usage(input_tokens=5, output_tokens=2)
    gone.latency_ms = 10.0
    hub.on_end(gone)  # finished; ``kept`` is still in flight
    assert "SECRETX" in json.dumps(hub.get_request("r1"))
    assert hub.erase(lambda st: st["session_id"] == "s-gone") == ["r1"]
    detail = hub.get_request("r1")
    assert "SECRETX" not in json.dumps(detail) and detail["content_erased"] is True
    assert (
        detail["usage"]["output_tokens"] == 2
        and detail["latency_ms"] == 10.0
        and detail["params"] == {"temperature": 0.2}
    )
    queued = json.dumps(_drain(sub))  # sent after the erase: the same dicts, emptied
    assert "SECRETX" not in queued and "KEEPY" in queued
    replay = hub.subscribe("b:0")  # the whole log, as a reconnecting client gets it
    assert "SECRETX" not in json.dumps(_drain(replay))
    assert "SECRETX" not in json.dumps(hub.list_requests(q="secretx")) and hub.list_requests(q="secretx") == []
    assert "KEEPY" in hub.get_request("r2")["text"]


def test_erasing_an_in_flight_entry_drops_its_held_tail():
    hub = LiveHub(boot_id="b")
    r = _rec("r1", "s", "x")
    hub.on_start(r)
    r.text = "token sk-proj-"  # the redactor holds a tail that could still become a secret
    hub.on_delta(r, Delta(text="token sk-proj-"))
    hub.erase(lambda st: True)
    r.text = ""  # what the handler does for an erased request (capture.erase_in_flight / at_end)
    r.status = OK
    hub.on_end(r)
    d = hub.get_request("r1")
    assert d["text"] == "" and "sk-proj" not in json.dumps(d)


def test_erase_drops_sse_bytes_another_subscriber_already_encoded():
    # A small event's SSE bytes are encoded once, by the first subscriber that writes them, and
    # shared (live_sse.Wire): erasing must not leave the text in those bytes for the others.
    hub = LiveHub(boot_id="b")
    fast, slow = hub.subscribe(None, snapshot=False), hub.subscribe(None, snapshot=False)
    rec = _rec("r1", "s-gone", "SECRETX")
    hub.on_start(rec)
    rec.text, rec.deltas = "SECRETX one ", 1
    hub.on_delta(rec, Delta(text="SECRETX one "))
    written = b"".join(b"".join(item_slices(item)) for item in _drain(fast))
    assert b"SECRETX" in written  # the fast reader wrote them: the shared bytes are encoded
    assert hub.erase(lambda st: st["session_id"] == "s-gone") == ["r1"]
    later = b"".join(b"".join(item_slices(item)) for item in _drain(slow))
    assert later and b"SECRETX" not in later
