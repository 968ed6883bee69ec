"""Tests for proxy/live.py: events, replay and snapshots, ring bounds, slow subscribers, queries."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokentail.proxy.live import LiveHub
from tokentail.proxy.live_subscription import Subscription, TooManySubscribers
from tokentail.proxy.record import CANCELLED, ERROR, OK, Delta, RequestRecord, Usage
from tokentail.proxy.redact import Redactor

BOOT = "boot1"
KEY = "sk-abcdefghijklmnopqrstuvwxyz012345"


def rec(rid: str, *, model: str = "gpt-4o", content: str = "hello there", **kw: Any) -> RequestRecord:
    r = RequestRecord(id=rid, variant="production", method="POST", endpoint="/chat/completions")
    r.model, r.stream = model, True
    r.prompt = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": content}]}
    r.params = {"temperature": 0.2}
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def run(hub: LiveHub, r: RequestRecord, *pieces: str, status: str = OK) -> RequestRecord:
    """A whole request through the hub, filling the record the way the tap does."""
    hub.on_start(r)
    for p in pieces:
        r.text += p
        r.deltas += 1
        hub.on_delta(r, Delta(text=p))
    r.status = status
    r.latency_ms, r.finish_reason = 12.5, "stop"
    r.usage = Usage(input_tokens=5, output_tokens=len(pieces))
    hub.on_end(r)
    return r


def pending(sub: Subscription) -> list[tuple[str, str, dict[str, Any]]]:
    """Everything a subscription holds right now (replay backlog, then queue), without waiting."""
    evs = list(sub._backlog)
    sub._backlog.clear()
    while not sub.queue.empty():
        ev = sub.queue.get_nowait()
        if ev is not None:
            evs.append(ev)
    return [(f"{sub.boot_id}:{ev[0]}", ev[1], ev[2]) for ev in evs]


async def collect(sub: Subscription, n: int) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    async with asyncio.timeout(2):
        async for ev in sub:
            out.append(ev)
            if len(out) == n:
                break
    return out


# --- events ------------------------------------------------------------------------------


async def test_start_delta_end_sequence() -> None:
    hub = LiveHub(boot_id=BOOT)
    sub = hub.subscribe(snapshot=False)
    r = rec("r1", session_id="s1", trace_id="t1")
    run(hub, r, "Hello ", "world.")  # the last word is held until the end (it could grow into a secret)
    events = await collect(sub, 4)

    assert [e[0] for e in events] == [f"{BOOT}:1", f"{BOOT}:2", f"{BOOT}:3", f"{BOOT}:4"]
    assert [e[1] for e in events] == ["request.start", "request.delta", "request.delta", "request.end"]
    start, d1, d2, end = (e[2] for e in events)
    assert start["id"] == "r1" and start["model"] == "gpt-4o" and start["endpoint"] == "/chat/completions"
    assert start["variant"] == "production" and start["stream"] is True
    assert start["messages"][1]["content"] == "hello there"
    assert start["params"] == {"temperature": 0.2}
    assert (start["session_id"], start["trace_id"]) == ("s1", "t1")
    assert isinstance(start["time"], float) and abs(start["time"] - time.time()) < 60
    assert (d1["seq"], d1["text"], d2["seq"], d2["text"]) == (1, "Hello ", 2, "world.")
    assert "ttft_ms" in d1 and "ttft_ms" not in d2
    assert end["status"] == OK and end["finish_reason"] == "stop" and end["latency_ms"] == 12.5
    assert end["usage"] == {"input_tokens": 5, "output_tokens": 2, "cached_input_tokens": None, "source": "reported"}
    assert end["truncated"] is False and "text" not in end  # deltas already told the whole text
    assert hub.head == 4


async def test_empty_deltas_are_not_published() -> None:
    hub = LiveHub(boot_id=BOOT)
    r = rec("r1")
    hub.on_start(r)
    hub.on_delta(r, Delta())
    hub.on_delta(r, Delta(text="x "))
    hub.on_delta(r, Delta(text="y"))  # held back: nothing to publish yet
    assert hub.head == 2
    assert hub.get_request("r1")["deltas"] == 1


async def test_delta_tool_calls_and_reasoning() -> None:
    hub = LiveHub(boot_id=BOOT)
    sub = hub.subscribe(snapshot=False)
    r = rec("r1")
    hub.on_start(r)
    call = {"index": 0, "function": {"name": "f", "arguments": '{"mail": "a@b.io"}'}}
    hub.on_delta(r, Delta(reasoning="thinking ", tool_calls=[call]))
    _, name, data = (await collect(sub, 2))[1]
    assert name == "request.delta" and data["reasoning"] == "thinking " and data["text"] == ""
    # The arguments' last "word" waits: it could still grow into a secret.
    assert data["tool_calls"][0]["function"]["arguments"] == '{"mail": "[REDACTED:email]"'
    assert hub.get_request("r1")["tool_calls"][0]["function"]["arguments"] == '{"mail": "[REDACTED:email]"'
    assert call["function"]["arguments"] == '{"mail": "a@b.io"}'  # the record's data untouched
    hub.on_end(r)
    _, name, data = (await collect(sub, 1))[0]
    assert name == "request.delta" and data["tool_calls"] == [{"index": 0, "function": {"arguments": "}"}}]


async def test_delta_redacted_and_split_secret_redacted_in_every_delta() -> None:
    hub = LiveHub(boot_id=BOOT)
    sub = hub.subscribe(snapshot=False)
    r = rec("r1")
    hub.on_start(r)
    for p in (f"key {KEY[:5]}", f"{KEY[5:]} ", "mail jane.doe@exa", "mple.com ok"):
        r.text += p
        hub.on_delta(r, Delta(text=p))
        assert "jane.doe" not in hub.get_request("r1")["text"] and KEY[3:19] not in hub.get_request("r1")["text"]
    r.status = OK
    hub.on_end(r)
    events = pending(sub)
    deltas = [e[2]["text"] for e in events if e[1] == "request.delta"]
    whole = "key [REDACTED:openai_key] mail [REDACTED:email] ok"
    assert "".join(deltas) == whole and deltas[-1] == "ok"  # "key" is a label: held with its value
    end = events[-1][2]
    assert "text" not in end  # the deltas told the whole text
    assert hub.get_request("r1")["text"] == whole
    assert hub.list_requests()[0]["text_preview"] == whole


async def test_error_message_redacted_and_status() -> None:
    hub = LiveHub(boot_id=BOOT)
    sub = hub.subscribe(snapshot=False)
    r = rec("r1", error="status", error_message=f"401: Incorrect API key provided: {KEY}", http_status=401)
    run(hub, r, status=ERROR)
    end = (await collect(sub, 2))[1][2]
    assert end["status"] == ERROR and end["error"] == "status" and end["http_status"] == 401
    assert KEY not in end["error_message"] and "[REDACTED:openai_key]" in end["error_message"]


async def test_end_without_deltas_carries_text() -> None:
    hub = LiveHub(boot_id=BOOT)
    sub = hub.subscribe(snapshot=False)
    r = rec("r1")
    hub.on_start(r)
    r.text, r.status = "a whole non-streamed answer", OK
    hub.on_end(r)
    end = (await collect(sub, 2))[1][2]
    assert end["text"] == "a whole non-streamed answer"


async def test_unknown_ids_do_not_raise() -> None:
    hub = LiveHub(boot_id=BOOT)
    r = rec("ghost")
    hub.on_delta(r, Delta(text="x"))
    assert hub.head == 0
    r.status = CANCELLED
    hub.on_end(r)  # still published: the feed must learn it ended
    assert hub.head == 1 and hub.get_request("ghost") is None


# --- replay and snapshots ----------------------------------------------------------------


async def test_replay_from_last_event_id_of_this_boot() -> None:
    hub = LiveHub(boot_id=BOOT)
    run(hub, rec("r1"), "a ", "b ")  # seq 1..4
    run(hub, rec("r2"), "c")  # seq 5..7
    sub = hub.subscribe(f"{BOOT}:3")
    got = pending(sub)
    assert [g[0] for g in got] == [f"{BOOT}:{i}" for i in range(4, 8)]
    assert [g[1] for g in got] == ["request.end", "request.start", "request.delta", "request.end"]
    # Up to date: nothing to replay, then live events follow.
    sub2 = hub.subscribe(f"{BOOT}:7")
    assert pending(sub2) == []
    run(hub, rec("r3"))
    assert [g[0] for g in pending(sub2)] == [f"{BOOT}:8", f"{BOOT}:9"]


def _snapshot_shape(events: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[str, str]]:
    return [(name, data.get("id", "")) for _, name, data in events]


@pytest.mark.parametrize("last_id", [None, "otherboot:5", "garbage", f"{BOOT}:999", f"{BOOT}:x"])
async def test_snapshot_for_foreign_or_unknown_ids(last_id: str | None) -> None:
    hub = LiveHub(boot_id=BOOT)
    run(hub, rec("done"), "Hello ", "there")
    live = rec("live")
    hub.on_start(live)
    hub.on_delta(live, Delta(text="par "))
    hub.on_delta(live, Delta(text="tial "))
    head = hub.head
    sub = hub.subscribe(last_id)
    got = pending(sub)
    assert {g[0] for g in got} == {f"{BOOT}:{head}"}  # a reconnect resumes right after it
    assert _snapshot_shape(got) == [
        ("snapshot", ""),
        ("request.start", "done"),
        ("request.delta", "done"),
        ("request.end", "done"),
        ("request.start", "live"),
        ("request.delta", "live"),
    ]
    assert got[0][2] == {"boot_id": BOOT, "requests": 2}
    assert got[2][2]["text"] == "Hello there" and got[2][2]["seq"] == 2 and got[2][2]["snapshot"] is True
    assert got[5][2]["text"] == "par tial " and got[5][2]["seq"] == 2
    # Live deltas continue after the folded ones.
    hub.on_delta(live, Delta(text="! "))
    nxt = pending(sub)
    assert nxt[0][1] == "request.delta" and nxt[0][2]["seq"] == 3 and nxt[0][0] == f"{BOOT}:{head + 1}"


async def test_snapshot_when_missed_events_left_the_log() -> None:
    hub = LiveHub(boot_id=BOOT, max_events=5)
    for i in range(5):
        run(hub, rec(f"r{i}"), "x")  # 3 events each: the log keeps only the last 5
    got = pending(hub.subscribe(f"{BOOT}:2"))
    assert got[0][1] == "snapshot" and len([g for g in got if g[1] == "request.start"]) == 5
    # Still within the log: a plain replay.
    got2 = pending(hub.subscribe(f"{BOOT}:12"))
    assert [g[0] for g in got2] == [f"{BOOT}:13", f"{BOOT}:14", f"{BOOT}:15"]


async def test_no_snapshot_when_not_asked() -> None:
    hub = LiveHub(boot_id=BOOT)
    run(hub, rec("r1"), "x")
    assert pending(hub.subscribe(None, snapshot=False)) == []


# --- bounds --------------------------------------------------------------------------------


async def test_ring_bounded_by_count() -> None:
    hub = LiveHub(boot_id=BOOT, max_requests=3)
    for i in range(5):
        run(hub, rec(f"r{i}"), "x")
    assert [s["id"] for s in hub.list_requests()] == ["r4", "r3", "r2"]
    assert hub.get_request("r0") is None and hub.get_request("r2") is not None


async def test_ring_bounded_by_bytes_evicts_oldest_finished_first() -> None:
    hub = LiveHub(boot_id=BOOT, max_bytes=80_000)  # 60 KB for entries
    hub.on_start(rec("inflight"))
    hub.on_delta(rec("inflight"), Delta(text="y" * 20_000))
    for i in range(10):
        run(hub, rec(f"r{i}"), "x" * 10_000)
    ids = [s["id"] for s in hub.list_requests()]
    assert "inflight" in ids  # never evicted for bytes: its capture is capped instead
    assert "r9" in ids and "r0" not in ids
    assert len(ids) < 6
    assert hub._entry_bytes <= 60_000


async def test_in_flight_evicted_only_over_count() -> None:
    hub = LiveHub(boot_id=BOOT, max_requests=2)
    recs = [rec(f"r{i}") for i in range(3)]
    for r in recs:
        hub.on_start(r)
    assert [s["id"] for s in hub.list_requests()] == ["r2", "r1"]
    head = hub.head
    hub.on_delta(recs[0], Delta(text="lost"))
    assert hub.head == head  # its deltas are no longer captured or published
    recs[0].status = OK
    hub.on_end(recs[0])
    assert hub.head == head + 1  # but its end is


async def test_capture_cap_marks_truncated() -> None:
    hub = LiveHub(boot_id=BOOT, max_capture_bytes=10)
    sub = hub.subscribe(snapshot=False)
    r = rec("r1")
    run(hub, r, "hello ", "world!", "more")
    events = await collect(sub, 4)
    assert [e[1] for e in events] == ["request.start", "request.delta", "request.delta", "request.end"]
    assert events[2][2]["text"] == "worl"
    assert events[3][2]["truncated"] is True
    detail = hub.get_request("r1")
    assert detail["text"] == "hello worl" and detail["truncated"] is True
    assert hub.list_requests()[0]["truncated"] is True


async def test_capture_cap_never_splits_a_character() -> None:
    hub = LiveHub(boot_id=BOOT, max_capture_bytes=5)
    r = rec("r1")
    hub.on_start(r)
    hub.on_delta(r, Delta(text="ééé "))  # 7 bytes
    assert hub.get_request("r1")["text"] == "éé"
    r.text = "ééé"
    hub.on_end(r)
    assert hub.get_request("r1")["text"] == "éé" and hub.get_request("r1")["truncated"] is True


# --- slow subscribers --------------------------------------------------------------------


async def test_slow_subscriber_dropped_without_blocking_publish() -> None:
    drops: list[str] = []
    hub = LiveHub(boot_id=BOOT, subscriber_queue=10, on_drop=drops.append)
    stalled = hub.subscribe(snapshot=False)  # never read
    reader = hub.subscribe(snapshot=False)
    reader.queue = asyncio.Queue()  # an unbounded reader keeps everything
    r = rec("r1")
    t0 = time.perf_counter()
    hub.on_start(r)
    for _ in range(5000):
        hub.on_delta(r, Delta(text="tok "))
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0
    assert drops == ["live_subscriber"]
    assert stalled.lagged and stalled.closed and hub.subscribers == 1
    assert [ev async for ev in stalled] == []  # its iteration ends at once
    assert reader.queue.qsize() == 5001 and not reader.lagged


async def test_on_drop_that_raises_is_contained() -> None:
    def boom(_: str) -> None:
        raise RuntimeError("metrics bug")

    hub = LiveHub(boot_id=BOOT, subscriber_queue=1, on_drop=boom)
    sub = hub.subscribe(snapshot=False)
    run(hub, rec("r1"), "x")
    assert sub.lagged


async def test_unsubscribe_and_close_wake_readers() -> None:
    hub = LiveHub(boot_id=BOOT)
    a, b = hub.subscribe(snapshot=False), hub.subscribe(snapshot=False)

    async def drain(sub: Subscription) -> list[Any]:
        return [ev async for ev in sub]

    ta, tb = asyncio.create_task(drain(a)), asyncio.create_task(drain(b))
    await asyncio.sleep(0)
    hub.unsubscribe(a)
    assert await asyncio.wait_for(ta, 1) == [] and not a.lagged
    hub.close_all()
    assert await asyncio.wait_for(tb, 1) == []
    assert hub.subscribers == 0


async def test_get_with_timeout_loses_nothing() -> None:
    hub = LiveHub(boot_id=BOOT)
    sub = hub.subscribe(snapshot=False)
    with pytest.raises(TimeoutError):
        await sub.get(timeout=0.01)
    hub.on_start(rec("r1"))
    assert (await sub.get(timeout=1))[:2] == (f"{BOOT}:1", "request.start")
    hub.unsubscribe(sub)
    assert await sub.get(timeout=1) is None


# --- queries -----------------------------------------------------------------------------


def _populate() -> LiveHub:
    hub = LiveHub(boot_id=BOOT, variant="canary")
    run(hub, rec("a", model="gpt-4o", content="Tell me about Paris"), "Paris is in France.")
    run(hub, rec("b", model="llama3", content="hi"), "Hello!", status=ERROR)
    run(hub, rec("c", model="llama3", content="sum 2+2"), "4", status=CANCELLED)
    live = rec("d", model="gpt-4o", content="x" * 500, variant="")
    hub.on_start(live)
    hub.on_delta(live, Delta(text="stream"))
    hub.on_delta(live, Delta(text="ing " * 100))
    live.tool_calls = [{"id": "t1", "function": {"name": "f", "arguments": "a@b.io"}}]
    return hub


async def test_list_newest_first_and_filters() -> None:
    hub = _populate()
    assert [s["id"] for s in hub.list_requests()] == ["d", "c", "b", "a"]
    assert [s["id"] for s in hub.list_requests(model="llama3")] == ["c", "b"]
    assert [s["id"] for s in hub.list_requests(status="in_flight")] == ["d"]
    assert [s["id"] for s in hub.list_requests(status="error")] == ["b"]
    assert [s["id"] for s in hub.list_requests(q="PARIS")] == ["a"]  # prompt and completion
    assert [s["id"] for s in hub.list_requests(q="hello!")] == ["b"]  # completion only
    assert [s["id"] for s in hub.list_requests(variant="canary")] == ["d"]  # empty rec variant -> hub's
    assert [s["id"] for s in hub.list_requests(variant="production")] == ["c", "b", "a"]
    assert [s["id"] for s in hub.list_requests(limit=2)] == ["d", "c"]
    assert hub.list_requests(limit=0) == []


async def test_summary_fields_and_previews() -> None:
    hub = _populate()
    d, _, _, a = hub.list_requests()
    assert set(a) >= {
        "id", "time", "variant", "model", "endpoint", "stream", "status", "usage", "latency_ms",
        "ttft_ms", "output_tps", "finish_reason", "error", "text_preview", "prompt_preview",
    }  # fmt: skip
    assert a["prompt_preview"] == "Tell me about Paris" and a["text_preview"] == "Paris is in France."
    assert a["status"] == OK and a["usage"]["output_tokens"] == 1
    assert d["status"] == "in_flight" and d["usage"] is None
    assert len(d["text_preview"]) == 200 and d["text_preview"].startswith("streaming ")
    assert len(d["prompt_preview"]) == 200


async def test_get_request_detail_in_flight_and_finished() -> None:
    hub = _populate()
    d = hub.get_request("d")
    assert d["text"] == "stream" + "ing " * 100  # as streamed so far
    assert d["messages"][1]["content"] == "x" * 500 and d["params"] == {"temperature": 0.2}
    assert d["tool_calls"][0]["function"]["arguments"] == "[REDACTED:email]"
    assert d["deltas"] == 1 and d["status"] == "in_flight"  # "stream" waited for the rest of its word
    a = hub.get_request("a")
    assert a["text"] == "Paris is in France." and a["finish_reason"] == "stop" and a["tool_calls"] == []
    assert hub.get_request("nope") is None


async def test_redaction_can_be_disabled() -> None:
    hub = LiveHub(boot_id=BOOT, redactor=Redactor(enabled=False))
    run(hub, rec("r1"), f"key {KEY}")
    assert hub.get_request("r1")["text"] == f"key {KEY}"


# --- SSE encoding --------------------------------------------------------------------------


async def test_subscriber_cap_refuses_and_counts() -> None:
    drops: list[str] = []
    hub = LiveHub(boot_id=BOOT, max_subscribers=2, on_drop=drops.append)
    subs = [hub.subscribe(), hub.subscribe()]
    with pytest.raises(TooManySubscribers) as exc:
        hub.subscribe()
    assert exc.value.limit == 2 and drops == ["live_subscriber_refused"] and hub.subscribers == 2
    hub.unsubscribe(subs[0])
    assert hub.subscribe() is not None and hub.subscribers == 2
    assert LiveHub(boot_id=BOOT, max_subscribers=0).max_subscribers == 0


async def test_prompt_preview_on_start_and_in_summaries() -> None:
    hub = LiveHub(boot_id=BOOT)
    sub = hub.subscribe(snapshot=False)
    r = rec("r1")
    r.prompt = {
        "system": "be brief",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "first"}]},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "Look "}, {"type": "text", "text": "here"}]},
        ],
    }
    run(hub, r, "fine")
    start = pending(sub)[0][2]
    assert start["prompt_preview"] == "Look here"  # computed once, the browser shows it as is
    assert hub.list_requests()[0]["prompt_preview"] == "Look here"


# --- a prompt redacted off the loop ----------------------------------------------------------


async def test_start_held_until_the_prompt_is_ready_then_events_in_order() -> None:
    hub = LiveHub(boot_id=BOOT)
    sub = hub.subscribe(snapshot=False)
    r = rec("r1")
    r.prompt, r.prompt_ready = {}, False  # the handler redacts it in a worker thread
    hub.on_start(r)
    hub.on_delta(r, Delta(text="Hello "))
    assert pending(sub) == [] and hub.head == 0  # nothing before request.start
    assert [e[1] for e in pending(hub.subscribe())] == ["snapshot"]  # not in a snapshot either
    r.prompt, r.prompt_ready = {"messages": [{"role": "user", "content": "[REDACTED:email] hi"}]}, True
    hub.on_prompt(r)
    hub.on_delta(r, Delta(text="world "))
    r.status = OK
    hub.on_end(r)
    got = pending(sub)
    assert [g[1] for g in got] == ["request.start", "request.delta", "request.delta", "request.end"]
    assert got[0][2]["messages"][0]["content"] == "[REDACTED:email] hi"
    assert got[0][2]["prompt_preview"] == "[REDACTED:email] hi"
    assert [g[2]["seq"] for g in got[1:3]] == [1, 2]
    assert hub.get_request("r1")["text"] == "Hello world "


# --- SSE bytes encoded once for all subscribers (issue 13) ---------------------------------


async def test_each_event_is_encoded_once_and_shared_by_every_subscriber() -> None:
    from tokentail.proxy.live_sse import SLICE_CHARS, encode_sse, item_slices, sse_slices

    hub = LiveHub(boot_id=BOOT, max_capture_bytes=4 * SLICE_CHARS)
    a, b = hub.subscribe(snapshot=False), hub.subscribe(snapshot=False)
    run(hub, rec("r1"), "Hello ", "x" * (2 * SLICE_CHARS) + " world.")
    got_a, got_b = await collect(a, 5), await collect(b, 5)
    assert got_a == got_b
    for x, y in zip(got_a, got_b, strict=True):
        assert x.wire is y.wire and x.wire is not None  # one per event, shared
        assert not x.wire.done  # nothing encoded until a subscriber writes it
        first = b"".join(item_slices(x))
        assert first == b"".join(sse_slices(*x))  # the bytes a per-subscriber encoding made
        small = len(first) < SLICE_CHARS
        assert x.wire.done and (x.wire.bytes is not None) == small
        if small:
            assert list(item_slices(y)) == [x.wire.bytes] and x.wire.bytes == encode_sse(*x)
            assert next(item_slices(y)) is x.wire.bytes  # the same bytes object, not a copy
        else:  # a big event stays sliced, lazily, per reader
            assert b"".join(item_slices(y)) == first and len(list(item_slices(y))) > 1


# --- deltas batched while nobody listens --------------------------------------------------


class _CountingRedactor(Redactor):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def redact_text(self, s: str) -> str:
        self.calls += 1
        return super().redact_text(s)


def _words(n: int) -> list[str]:
    return [f"word{i} " for i in range(n)]


async def test_with_nobody_listening_deltas_are_redacted_in_batches() -> None:
    pieces = _words(2000)
    quiet, watched = _CountingRedactor(), _CountingRedactor()
    a = LiveHub(boot_id=BOOT, redactor=quiet)
    b = LiveHub(boot_id=BOOT, redactor=watched, subscriber_queue=5000)
    sub = b.subscribe(snapshot=False)
    run(a, rec("r"), *pieces)
    run(b, rec("r"), *pieces)
    assert quiet.calls * 20 < watched.calls  # the work the batching saves: it has to be there
    # and nothing else changes: the same text, finished and as a subscriber built it
    assert a.get_request("r")["text"] == b.get_request("r")["text"] == "".join(pieces)
    streamed = "".join(d["text"] for _, name, d in pending(sub) if name == "request.delta")
    assert streamed == "".join(pieces)


@pytest.mark.parametrize("reader", ["subscribe", "get_request", "list_requests", "head", "erase"])
async def test_anything_that_reads_the_entries_gets_the_batched_text_first(reader: str) -> None:
    hub = LiveHub(boot_id=BOOT)
    r = rec("r")
    hub.on_start(r)
    pieces = ["Hello ", "there, ", "my key is ", "sk-", "proj-", "AbCdEfGhIjKlMnOpQrStUvWxYz012345", " ok "]
    for p in pieces:
        r.text += p
        hub.on_delta(r, Delta(text=p))
    if reader == "subscribe":
        sub = hub.subscribe()
        got = pending(sub)
        text = "".join(d.get("text", "") for _, name, d in got if name == "request.delta")
    elif reader == "get_request":
        text = hub.get_request("r")["text"]
    elif reader == "list_requests":
        assert [s["id"] for s in hub.list_requests(q="my key")] == ["r"]  # searched in the batched text
        text = hub.get_request("r")["text"]
    elif reader == "head":
        before = hub._seq
        assert hub.head > before  # the batch became an event
        text = hub.get_request("r")["text"]
    else:
        hub.erase(lambda st: st["id"] == "r")
        assert hub._batching == {} and hub._entries["r"].pending is None
        return
    # Released so far: everything but what the streaming redactor still holds (the last
    # word), the split key redacted, never in clear.
    assert text.startswith("Hello there, my key is ")
    assert "AbCdEf" not in text and "sk-proj" not in text
    assert "[REDACTED" in text


async def test_a_batch_is_bounded_and_evicted_entries_drop_it() -> None:
    from tokentail.proxy.live import BATCH_CHARS

    hub = LiveHub(boot_id=BOOT, max_requests=1)
    r = rec("a")
    hub.on_start(r)
    for p in ["x" * 100 + " "] * 200:  # 20 KB of text, nobody listening
        hub.on_delta(r, Delta(text=p))
        assert hub._entries["a"].pending_chars < BATCH_CHARS + 101
    hub.on_start(rec("b"))  # over max_requests: "a" is evicted in flight
    hub.on_start(rec("c"))
    assert "a" not in hub._batching


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=40), st.integers(0, 60))
def test_a_secret_split_anyhow_is_never_released_in_clear_batched_or_not(cuts, read_at) -> None:
    text = "Here it is: " + KEY + " and some words after it, " * 3
    pieces, i = [], 0
    for c in cuts:
        if i >= len(text):
            break
        pieces.append(text[i : i + c])
        i += c
    if i < len(text):
        pieces.append(text[i:])
    quiet, watched = LiveHub(boot_id=BOOT), LiveHub(boot_id=BOOT, subscriber_queue=5000)
    watched.subscribe(snapshot=False)
    for hub in (quiet, watched):
        r = rec("r")
        hub.on_start(r)
        for k, p in enumerate(pieces):
            r.text += p
            hub.on_delta(r, Delta(text=p))
            if k == read_at:  # a read mid-stream (the in-flight API) takes the batch
                assert KEY[8:20] not in hub.get_request("r")["text"]
        r.status = OK
        hub.on_end(r)
    assert quiet.get_request("r")["text"] == watched.get_request("r")["text"]
    assert KEY[8:20] not in quiet.get_request("r")["text"]
