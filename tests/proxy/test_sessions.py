"""Sessions: explicit ids (header, metadata, user) and conversations recognised because a
request's messages continue an earlier request's messages plus its reply."""

from __future__ import annotations

import aiohttp
import pytest

from tests.helpers.proxies import start_proxy, start_sim
from tokentail.proxy.record import ERROR, OK, RequestRecord
from tokentail.proxy.redact import Redactor
from tokentail.proxy.sessions import HASHED_TURN_CHARS, SessionTracker

SYSTEM = {"role": "system", "content": "You are terse."}


def turn(
    tracker: SessionTracker,
    body: dict,
    reply: str | None = "",
    *,
    endpoint: str = "/chat/completions",
    headers: dict | None = None,
    user: str | None = None,
    status: str = OK,
    response_id: str | None = None,
    truncated: bool = False,
) -> str | None:
    """One request through the tracker: assign on arrival, on_end with ``reply`` as the completion."""
    rec = RequestRecord(id=f"r{id(body)}-{len(tracker)}", variant="t", method="POST", endpoint=endpoint)
    rec.user = user
    sid = tracker.assign(rec, body, headers or {})
    assert rec.session_id == sid
    rec.status, rec.text, rec.response_id, rec.truncated = status, reply or "", response_id, truncated
    tracker.on_end(rec)
    return sid


def test_explicit_ids_header_then_metadata_then_user():
    t = SessionTracker(redactor=Redactor())
    body = {"messages": [{"role": "user", "content": "hi"}], "metadata": {"session_id": "meta-1"}}
    assert turn(t, body, headers={"X-Session-Id": "hdr-1"}, user="u1") == "hdr-1"
    assert turn(t, body, user="u1") == "meta-1"
    assert turn(t, {"messages": body["messages"], "metadata": {"conversation_id": "conv-9"}}) == "conv-9"
    assert turn(t, {"input": "hi", "conversation": {"id": "conv_abc"}}, endpoint="/responses") == "conv_abc"
    assert turn(t, {"messages": body["messages"]}, user="u1") == "user:u1"
    assert turn(t, {"messages": body["messages"]}, headers={"X-Session-Id": "x" * 500}) == "x" * 200
    # an id that is personal data is redacted like everything else we keep
    assert turn(t, body, headers={"X-Session-Id": "jane.doe@example.com"}) == "[REDACTED:email]"


def test_continued_messages_join_the_earlier_request_session():
    t = SessionTracker()
    m1 = [SYSTEM, {"role": "user", "content": "What is 2+2?"}]
    s1 = turn(t, {"messages": m1}, "4")
    assert s1.startswith("s-") and len(s1) == 14 and int(s1[2:], 16) >= 0  # 12 hex digits
    m2 = [*m1, {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"}]
    assert turn(t, {"messages": m2}, " 6\n") == s1
    # whitespace at the ends of a message does not matter, and list-of-parts content is text
    m3 = [
        *m2,
        {"role": "assistant", "content": [{"type": "text", "text": "6"}]},
        {"role": "user", "content": "  thanks  "},
    ]
    assert turn(t, {"messages": m3}, "ok") == s1
    # another conversation: same question, other system prompt
    other = [{"role": "system", "content": "You are verbose."}, *m1[1:]]
    assert turn(t, {"messages": other}, "four") != s1
    # a request that does not continue any reply we relayed starts a session of its own
    forged = [*m1, {"role": "assistant", "content": "5"}, {"role": "user", "content": "sure?"}]
    assert turn(t, {"messages": forged}, "yes") not in (s1, None)


def test_tool_calls_and_several_tool_results_continue_the_session():
    t = SessionTracker()
    m1 = [{"role": "user", "content": "Weather in Lisbon and Porto?"}]
    s1 = turn(t, {"messages": m1}, "")  # the reply was two tool calls, no text
    m2 = [
        *m1,
        {"role": "assistant", "content": None, "tool_calls": [{"id": "a"}, {"id": "b"}]},
        {"role": "tool", "tool_call_id": "a", "content": "21C"},
        {"role": "tool", "tool_call_id": "b", "content": "19C"},
    ]
    assert turn(t, {"messages": m2}, "Lisbon 21C, Porto 19C") == s1


def test_anthropic_messages_with_a_system_prompt_and_blocks():
    t = SessionTracker()
    m1 = {"system": "Be brief.", "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}
    s1 = turn(t, m1, "Hello!", endpoint="/messages")
    m2 = {
        "system": "Be brief.",
        "messages": [
            *m1["messages"],
            {
                "role": "assistant",
                "content": [{"type": "thinking", "thinking": "greet"}, {"type": "text", "text": "Hello!"}],
            },
            {"role": "user", "content": "Bye"},
        ],
    }
    assert turn(t, m2, "Bye!", endpoint="/messages") == s1
    assert turn(t, {**m2, "system": "Be long."}, "x", endpoint="/messages") != s1


def test_a_reply_of_several_text_blocks_sent_back_continues_the_session():
    """The tap joins a reply's text blocks with no separator; the reply sent back as blocks
    (and any tool results after it) reads the same (tokentail.messages' one rule)."""
    t = SessionTracker()
    m1 = {"messages": [{"role": "user", "content": "Search the docs"}]}
    s1 = turn(t, m1, "Found two.Here they are.", endpoint="/messages")
    blocks = [
        {"type": "text", "text": "Found two."},
        {"type": "tool_use", "id": "t1", "name": "open", "input": {}},
        {"type": "text", "text": "Here they are."},
    ]
    results = [
        {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "doc A"}]},
        {"type": "text", "text": "Thanks"},
    ]
    m2 = {"messages": [*m1["messages"], {"role": "assistant", "content": blocks}, {"role": "user", "content": results}]}
    assert turn(t, m2, "Welcome", endpoint="/messages") == s1


def test_responses_api_previous_response_id_and_echoed_output_items():
    t = SessionTracker()
    s1 = turn(t, {"instructions": "Be brief.", "input": "Hi"}, "Hello!", endpoint="/responses", response_id="resp_1")
    assert turn(t, {"input": "More", "previous_response_id": "resp_1"}, "ok", endpoint="/responses") == s1
    # a client that sends the output items back: reasoning + two function calls, then their outputs
    s2 = turn(t, {"input": [{"role": "user", "content": "Weather?"}]}, "", endpoint="/responses")
    assert s2 != s1
    again = {
        "input": [
            {"role": "user", "content": "Weather?"},
            {"type": "reasoning", "summary": []},
            {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "21C"},
            {"type": "function_call_output", "call_id": "c2", "output": "19C"},
        ]
    }
    assert turn(t, again, "Both mild.", endpoint="/responses") == s2


def test_failed_or_truncated_requests_are_not_continued():
    t = SessionTracker()
    m1 = [{"role": "user", "content": "one"}]
    s_err = turn(t, {"messages": m1}, "partial", status=ERROR)
    s_cut = turn(t, {"messages": [{"role": "user", "content": "two"}]}, "long...", truncated=True)
    follow_err = [*m1, {"role": "assistant", "content": "partial"}, {"role": "user", "content": "?"}]
    follow_cut = [
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "long..."},
        {"role": "user", "content": "?"},
    ]
    assert turn(t, {"messages": follow_err}, "x") != s_err
    assert turn(t, {"messages": follow_cut}, "x") != s_cut


def test_megabyte_turns_continue_the_session_by_their_ends_and_length():
    """A turn over ``HASHED_TURN_CHARS`` is hashed by its two ends and its length (a bounded
    pass per request): long prompts and replies still continue their session, a change at
    either end or in length is another conversation; a change only in the middle is not seen."""
    t = SessionTracker()
    n = 4 << 20
    doc = "a." * (n // 2) + "@"  # a 4 MiB adversarial prompt
    reply = "word " * 20_000  # a 100 kB answer, hashed by its ends too
    m1 = [SYSTEM, {"role": "user", "content": "Summarise:\n" + doc}]
    s1 = turn(t, {"messages": m1}, reply)
    m2 = [*m1, {"role": "assistant", "content": reply}, {"role": "user", "content": "Shorter?"}]
    assert turn(t, {"messages": m2}, "ok") == s1
    assert HASHED_TURN_CHARS < len(reply) < n  # both are sampled

    def follow(user: str) -> str | None:
        m = [SYSTEM, {"role": "user", "content": user}, {"role": "assistant", "content": reply}]
        return turn(t, {"messages": [*m, {"role": "user", "content": "?"}]}, "x")

    half = HASHED_TURN_CHARS // 2
    original = "Summarise:\n" + doc
    assert follow(original[:-1] + "#") != s1  # the last character differs
    assert follow("#" + original[1:]) != s1  # the first one
    assert follow(original + ".") != s1  # one character longer
    middle = len(original) // 2
    assert follow(original[:middle] + "#" + original[middle + 1 :]) == s1  # not seen: the stated cost
    # just under the limit the whole turn counts, as for every normal prompt
    short = "b" * (HASHED_TURN_CHARS - 1)
    s2 = turn(t, {"messages": [{"role": "user", "content": short}]}, "r")
    changed = short[:half] + "#" + short[half + 1 :]
    cont = [{"role": "assistant", "content": "r"}, {"role": "user", "content": "?"}]
    assert turn(t, {"messages": [{"role": "user", "content": changed}, *cont]}, "x") != s2
    assert turn(t, {"messages": [{"role": "user", "content": short}, *cont]}, "x") == s2


def test_non_conversational_requests_get_no_session_and_memory_is_bounded():
    t = SessionTracker(max_entries=2)
    assert turn(t, {"input": "embed me"}, endpoint="/embeddings") is None
    assert turn(t, {"prompt": "complete me"}, endpoint="/completions") is None
    first = [{"role": "user", "content": "first"}]
    s1 = turn(t, {"messages": first}, "a")
    for i in range(3):  # three newer conversations push the first one out
        turn(t, {"messages": [{"role": "user", "content": f"other {i}"}]}, "b")
    assert len(t) == 2
    follow = [*first, {"role": "assistant", "content": "a"}, {"role": "user", "content": "again"}]
    assert turn(t, {"messages": follow}, "c") != s1
    assert t._pending == {}  # nothing left behind per request


async def test_sessions_through_the_proxy():
    sim = await start_sim()
    proxy = await start_proxy(str(sim.make_url("/v1")))
    try:
        async with aiohttp.ClientSession() as s:

            async def chat(messages, headers=None, **extra):
                body = {"model": "sim-gpt-4o", "messages": messages, **extra}
                async with s.post(proxy.url("/v1/chat/completions"), json=body, headers=headers) as r:
                    data = await r.json()
                    return r.headers["x-tokentail-request-id"], data["choices"][0]["message"]["content"]

            m1 = [SYSTEM, {"role": "user", "content": "Tell me a story."}]
            rid1, reply1 = await chat(m1)
            m2 = [*m1, {"role": "assistant", "content": reply1}, {"role": "user", "content": "Go on."}]
            rid2, _ = await chat(m2)
            rid3, _ = await chat([{"role": "user", "content": "Unrelated."}])
            rid4, _ = await chat([{"role": "user", "content": "x"}], headers={"X-Session-Id": "agent-run-7"})
            rid5, _ = await chat([{"role": "user", "content": "y"}], user="alice")

            async def session_of(rid):
                async with s.get(proxy.url(f"/api/requests/{rid}")) as r:
                    return (await r.json())["session_id"]

            s1 = await session_of(rid1)
            assert s1.startswith("s-") and await session_of(rid2) == s1
            assert await session_of(rid3) not in (s1, None)
            assert await session_of(rid4) == "agent-run-7"
            assert await session_of(rid5) == "user:alice"
            async with s.get(proxy.url("/api/requests"), params={"session": s1}) as r:
                assert {x["id"] for x in (await r.json())["requests"]} == {rid1, rid2}
        spans = {sp.attributes["tokentail.request.id"]: sp.attributes for sp in proxy.spans()}
        assert spans[rid2]["tokentail.session.id"] == spans[rid2]["gen_ai.conversation.id"] == s1
    finally:
        await proxy.close()
        await sim.close()


@pytest.mark.parametrize("n_messages", [2, 200])
def test_assign_costs_one_pass_over_the_messages(benchmark_free_timer, n_messages):
    t = SessionTracker()
    msgs = [{"role": "user" if i % 2 == 0 else "assistant", "content": "word " * 50} for i in range(n_messages)]
    rec = RequestRecord(id="x", variant="t", method="POST", endpoint="/chat/completions")
    per_call = benchmark_free_timer(lambda: t.assign(rec, {"messages": msgs}, {}), 200)
    t._pending.clear()
    assert per_call < 50e-6 + 5e-6 * n_messages  # measured ~5 µs + ~0.6 µs per message: generous for CI


@pytest.fixture
def benchmark_free_timer():
    import time

    def run(fn, n):
        # CPU time of this thread: what ``assign`` costs, not how a loaded machine shared its cores.
        best = float("inf")
        for _ in range(3):
            t0 = time.thread_time()
            for _ in range(n):
                fn()
            best = min(best, (time.thread_time() - t0) / n)
        return best

    return run
