"""The raw stream view: events in order with monotonic arrival times, the injected usage chunk
marked, the request body as sent upstream (model rewritten), redaction, the cap, in flight."""

from __future__ import annotations

import itertools
import json

import aiohttp
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import until
from tests.helpers.proxies import start_proxy
from tests.helpers.upstreams import scripted_sse
from tokentail.proxy.raw_capture import RawCapture
from tokentail.proxy.raw_store import RawStore
from tokentail.proxy.record import RequestRecord
from tokentail.proxy.redact import Redactor

SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD"
EMAIL = "alice.secret@example.com"


def chunk(obj) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def delta(text: str) -> dict:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "m",
        "usage": None,
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }


USAGE = {
    "id": "c1",
    "object": "chat.completion.chunk",
    "model": "m",
    "choices": [],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}
CHUNKS = [chunk(delta("Hel")), chunk(delta(f"lo {SECRET}")), chunk(USAGE), b"data: [DONE]\n\n"]


async def _run(chunks, *, delay=0.0, content_type="text/event-stream", **overrides):
    app, probe = scripted_sse(chunks, delay=delay, content_type=content_type)
    up = TestServer(app, host="127.0.0.1")
    await up.start_server()
    routes = [{"name": "r", "prefix": "alias-", "upstream": str(up.make_url("/v1")), "model": "real-model"}]
    proxy = await start_proxy("http://127.0.0.1:9/v1", routes=routes, **overrides)
    return up, proxy, probe


async def _raw(proxy, rid: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as s:
        async with s.get(proxy.url(f"/api/requests/{rid}/raw")) as r:
            return r.status, await r.json()


REQ = {"model": "alias-x", "stream": True, "messages": [{"role": "user", "content": f"mail me at {EMAIL}"}]}


async def test_raw_view_order_times_injected_and_redaction():
    up, proxy, _ = await _run(CHUNKS)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(proxy.url("/v1/chat/completions"), json=REQ) as r:
                client_bytes = await r.read()
                rid = r.headers["x-tokentail-request-id"]
        assert SECRET.encode() in client_bytes  # the client's bytes are the upstream's
        status, raw = await _raw(proxy, rid)
        assert status == 200 and raw["in_flight"] is False and raw["truncated"] is False
        events = raw["events"]
        assert [e["seq"] for e in events] == [0, 1, 2, 3]
        assert [e["injected"] for e in events] == [False, False, True, False]  # the usage chunk we asked for
        assert events[3]["raw"] == "data: [DONE]\n\n"
        times = [e["t_ms"] for e in events]
        assert times == sorted(times) and times[0] >= 0
        text = json.dumps(raw)
        assert SECRET not in text and "[REDACTED:openai_key]" in events[1]["raw"]
        assert EMAIL not in text
        body = raw["request_body"]  # as sent upstream: the route's model, the usage we asked for
        assert body["model"] == "real-model" and body["stream_options"] == {"include_usage": True}
        assert "[REDACTED:email]" in body["messages"][0]["content"]
    finally:
        await proxy.close()
        await up.close()


async def test_raw_view_is_capped_and_marked():
    chunks = [chunk(delta("x" * 200)) for _ in range(20)] + [b"data: [DONE]\n\n"]
    up, proxy, _ = await _run(chunks, capture_bytes=1000)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(proxy.url("/v1/chat/completions"), json=REQ) as r:
                assert len(await r.read()) > 4000  # the client got everything
                rid = r.headers["x-tokentail-request-id"]
        _, raw = await _raw(proxy, rid)
        assert raw["truncated"] is True
        assert 0 < len(raw["events"]) < 20
        assert sum(len(e["raw"]) for e in raw["events"]) <= 1000
    finally:
        await proxy.close()
        await up.close()


async def test_raw_view_in_flight_and_unknown():
    chunks = [chunk(delta("a")), chunk(delta(f"b {SECRET}"))] + [chunk(delta("c"))] * 30 + [b"data: [DONE]\n\n"]
    up, proxy, _ = await _run(chunks, delay=0.05)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(proxy.url("/v1/chat/completions"), json=REQ) as r:
                rid = r.headers["x-tokentail-request-id"]
                await r.content.readexactly(len(chunks[0]) + len(chunks[1]))
                status, raw = await _raw(proxy, rid)
                assert status == 200 and raw["in_flight"] is True
                assert len(raw["events"]) >= 2 and SECRET not in json.dumps(raw)
                await r.read()

        async def ended() -> bool:  # the client may see the end before the handler's last step
            return (await _raw(proxy, rid))[1]["in_flight"] is False

        await until(ended)
        status, raw = await _raw(proxy, rid)
        assert len(raw["events"]) == 33
        status, _ = await _raw(proxy, "no-such-id")
        assert status == 404
    finally:
        await proxy.close()
        await up.close()


def test_store_is_bounded_in_count_and_bytes():
    store = RawStore(Redactor(enabled=True), max_requests=3, max_bytes=100_000)
    for i in range(5):
        rec = RequestRecord(id=str(i), variant="v", method="POST", endpoint="/chat/completions")
        rec.raw = RawCapture(rec.t0, 1 << 20, {"model": "m"}, clock=lambda t0=rec.t0: t0 + 0.5)
        rec.raw.add(b"data: " + b"y" * 3000 + b"\n\n")
        store.on_end(rec)
        assert rec.raw is None  # the store holds it now
    assert [store.get(str(i)) is not None for i in range(5)] == [False, False, True, True, True]
    assert store.get("4")["events"][0]["t_ms"] == 500.0
    small = RawStore(Redactor(enabled=True), max_requests=10, max_bytes=7000)
    for i in range(3):
        rec = RequestRecord(id=str(i), variant="v", method="POST", endpoint="/chat/completions")
        rec.raw = RawCapture(rec.t0, 1 << 20)
        rec.raw.add(b"z" * 3000)
        small.on_end(rec)
    assert small.get("0") is None and small.get("2") is not None


async def test_non_streamed_request_keeps_its_body():
    up, proxy, _ = await _run([b'{"choices":[{"message":{"content":"hi"}}]}'], content_type="application/json")
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(proxy.url("/v1/chat/completions"), json={**REQ, "stream": False}) as r:
                await r.read()
                rid = r.headers["x-tokentail-request-id"]
        _, raw = await _raw(proxy, rid)
        assert raw["events"] == [] and raw["request_body"]["model"] == "real-model"
    finally:
        await proxy.close()
        await up.close()


async def test_a_secret_split_across_events_is_withheld():
    pieces = ["My key is ", "sk-", "proj-", "abcdefghijkl", "mnopqrstuvwxyz", "0123456789ABCD", " ok bye"]
    chunks = [chunk(delta(p)) for p in pieces] + [chunk(USAGE), b"data: [DONE]\n\n"]
    up, proxy, _ = await _run(chunks)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(proxy.url("/v1/chat/completions"), json=REQ) as r:
                await r.read()
                rid = r.headers["x-tokentail-request-id"]
        _, raw = await _raw(proxy, rid)
        text = "".join(e["raw"] for e in raw["events"])
        for piece in pieces[2:6]:
            assert piece not in text, piece
        assert text.count("[REDACTED:split_secret]") == 5  # sk- proj- and the three tails
        assert "My key is " in text and " ok bye" in text  # the rest as relayed
    finally:
        await proxy.close()
        await up.close()


def test_secret_regions_align_labels():
    from tokentail.proxy.raw_capture import secret_regions

    r = Redactor(enabled=True)
    full = f"a {SECRET} b {EMAIL} c"
    regions = secret_regions(full, r.redact_text(full))
    assert [full[a:b] for a, b in regions] == [SECRET, EMAIL]
    end = f"x {EMAIL}"
    assert [end[a:b] for a, b in secret_regions(end, r.redact_text(end))] == [EMAIL]
    assert secret_regions("plain", "plain") == []
    assert secret_regions("abc", "xyz") is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=70), min_size=1, max_size=8))
def test_a_secret_cut_anywhere_leaves_no_long_piece(cuts):
    """Cut 'hello <key> and <email> bye' at any offsets: no 8 characters of a secret survive."""
    full = f"hello {SECRET} and {EMAIL} bye"
    bounds = sorted({0, len(full), *(c for c in cuts if c < len(full))})
    pieces = [full[a:b] for a, b in itertools.pairwise(bounds)]
    cap = RawCapture(0.0, 1 << 20, clock=lambda: 1.0)
    for p in pieces:
        cap.add(chunk(delta(p)), text=p)
    shown = "".join(e["raw"] for e in cap.view(Redactor(enabled=True))["events"])
    for secret in (SECRET, EMAIL):
        for i in range(len(secret) - 7):
            assert secret[i : i + 8] not in shown, (pieces, secret[i : i + 8])


async def test_store_redacts_after_the_end_in_slices():
    import asyncio

    from tokentail.proxy.raw_store import SLICE

    store = RawStore(Redactor(enabled=True))
    rec = RequestRecord(id="long", variant="v", method="POST", endpoint="/chat/completions")
    rec.raw = RawCapture(rec.t0, 1 << 22)
    n = SLICE * 4 + 3
    for i in range(n):
        piece = f" w{i} {EMAIL}" if i == 7 else f" w{i}"
        rec.raw.add(chunk(delta(piece)), text=piece)
    turns = 0

    def tick() -> None:  # another callback on the loop: it must get turns while the store works
        nonlocal turns
        turns += 1
        if store.get("long") is None:
            asyncio.get_running_loop().call_soon(tick)

    store.on_end(rec)  # returns at once: nothing redacted yet
    assert store.get("long") is None and store.pending("long") is not None
    asyncio.get_running_loop().call_soon(tick)
    await until(lambda: store.get("long") is not None)
    assert turns >= 4  # the loop ran other work between the slices
    view = store.get("long")
    assert len(view["events"]) == n and EMAIL not in json.dumps(view)


def test_request_body_is_capped_before_it_is_redacted():
    # The body as sent holds the whole prompt: megabytes of it are cut at the capture's
    # budget (marked truncated) before redaction, which then runs on the event loop.
    body = {"model": "m", "messages": [{"role": "user", "content": EMAIL + " " + "a." * (2 << 20) + "@"}]}
    cap = RawCapture(0.0, 64 << 10, body)
    view = cap.view(Redactor(enabled=True))
    content = view["request_body"]["messages"][0]["content"]
    assert view["truncated"] is True and view["request_body"]["model"] == "m"
    assert content.startswith("[REDACTED:email] a.a.") and len(content.encode()) <= 64 << 10
    assert body["messages"][0]["content"].startswith(EMAIL)  # the body itself untouched
    small = RawCapture(0.0, 64 << 10, {"model": "m", "messages": [{"role": "user", "content": EMAIL}]})
    assert small.view(Redactor(enabled=True))["truncated"] is False


def test_a_finished_requests_body_shows_the_records_prompt_redacted_once():
    # The store shows the prompt fields as the record holds them (capped and redacted off the
    # loop), in the body's order; the rest of the body is redacted here; a prompt field the
    # record's cap dropped is left out and the view marked truncated.
    messages = [{"role": "user", "content": "x"}] * 50_000 + [{"role": "user", "content": EMAIL}]
    body = {"model": "m", "messages": messages, "user": EMAIL, "tools": [{"t": 1}], "stream": True}
    rec = RequestRecord(id="p", variant="v", method="POST", endpoint="/chat/completions")
    rec.prompt = {"messages": [{"role": "user", "content": "kept, [REDACTED:email]"}]}
    rec.raw = RawCapture(rec.t0, 1 << 20, body)
    store = RawStore(Redactor(enabled=True))
    store.on_end(rec)
    view = store.get("p")
    assert view is not None
    assert view["request_body"] == {
        "model": "m",
        "messages": rec.prompt["messages"],
        "user": "[REDACTED:email]",
        "stream": True,
    }
    assert list(view["request_body"]) == ["model", "messages", "user", "stream"]
    assert view["truncated"] is True  # "tools" was cut from the record's prompt
    rec2 = RequestRecord(id="q", variant="v", method="POST", endpoint="/chat/completions")
    rec2.prompt = {"messages": [{"role": "user", "content": "hi"}]}
    rec2.raw = RawCapture(rec2.t0, 1 << 20, {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    store.on_end(rec2)
    assert store.get("q")["truncated"] is False


def _capture(events: list[bytes]) -> RawCapture:
    cap = RawCapture(0.0, 1 << 20, None)
    for raw in events:
        cap.add(raw, False, "", "")
    return cap


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(["Hello", " world", f" {SECRET}", f" {EMAIL}", " +1 415 555 0100", " 1733150000", "."]),
        min_size=1,
        max_size=12,
    )
)
def test_a_slice_redacts_as_each_event_alone(pieces):
    """The slice is redacted in one call when that finds nothing; the result is always what
    redacting each event on its own gives (issue 13: one call per slice, not per event)."""
    red = Redactor()
    events = [chunk({**delta(p), "created": 1733150000 + i}) for i, p in enumerate(pieces)]
    got = _capture(events).redact_slice(red, 0, len(events))
    assert got == [red.redact_text(e.decode()) for e in events]
    assert SECRET not in "".join(got) and EMAIL not in "".join(got)


def test_user_patterns_are_applied_to_each_event_alone():
    red = Redactor(extra_patterns={"whole": r"^data: \{\"only\": 1\}\s*$"})
    assert red.has_user_rules and not Redactor().has_user_rules
    events = [chunk({"only": 1}), chunk({"only": 2})]
    got = _capture(events).redact_slice(red, 0, 2)
    assert got[0] == "[REDACTED:whole]" and got[1] == events[1].decode()


def test_a_finished_view_keeps_only_redacted_text_and_serves_the_same_json():
    # The store keeps a finished view flat (dicts built when it is served): what it holds is
    # the redacted text only, the capture with the clear bytes is gone.
    store = RawStore(Redactor(enabled=True))
    rec = RequestRecord(id="r", variant="v", method="POST", endpoint="/chat/completions")
    rec.raw = RawCapture(rec.t0, 1 << 20, {"model": "m", "messages": [{"role": "user", "content": SECRET}]})
    rec.prompt = {"messages": [{"role": "user", "content": "[REDACTED:openai_key]"}]}  # as the hooks leave it
    pieces = ["key ", SECRET[:6], SECRET[6:], f" mail {EMAIL} ok"]
    for p in pieces:
        rec.raw.add(chunk(delta(p)), text=p)
    rec.raw.add(chunk(USAGE), injected=True)
    cap = rec.raw
    expected = cap.view(Redactor(enabled=True))
    store.on_end(rec)  # no running loop: finished at once
    kept = store._items["r"][1]
    assert not isinstance(kept, dict) and store.pending("r") is None
    held = repr([getattr(kept, name) for name in type(kept).__slots__])
    assert SECRET[6:20] not in held and EMAIL not in held and "sk-proj" not in held
    assert store.get("r") == expected
    assert [e["injected"] for e in expected["events"]] == [False] * 4 + [True]
    assert [e["seq"] for e in expected["events"]] == list(range(5))
    assert all(a["t_ms"] <= b["t_ms"] for a, b in itertools.pairwise(expected["events"]))
