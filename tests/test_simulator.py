"""The simulator (`tokentail simulate`): wire shapes checked with the real openai SDK,
pacing, fault injection, disconnect detection and the CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import aiohttp
import openai
import pytest
from aiohttp import web

from tests.helpers import until
from tokentail import serving
from tokentail.simulator import shapes, text
from tokentail.simulator.app import SimConfig, create_app

CHAT = [{"role": "user", "content": "Tell me about streaming proxies."}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location", "unit"],
        },
    },
}


@pytest.fixture
async def start_sim():
    """Start a simulator on 127.0.0.1:0 with web.AppRunner, as `tokentail.serving` does
    (handler cancellation off unless asked); returns its base URL."""
    runners: list[web.AppRunner] = []

    async def start(handler_cancellation: bool = False, **config) -> str:
        config = {"ttft": 0.0, "tokens_per_second": 0.0, **config}
        runner = web.AppRunner(
            create_app(SimConfig(**config)),
            handler_cancellation=handler_cancellation,
            access_log=None,
            shutdown_timeout=1.0,
        )
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{serving.bound_port(runner)}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def sim(start_sim):
    return await start_sim(length=12)


@pytest.fixture
async def client(sim):
    c = openai.AsyncOpenAI(base_url=sim + "/v1", api_key="sk-test", max_retries=0)
    yield c
    await c.close()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def sse_events(raw: bytes) -> list[tuple[str | None, str]]:
    """(event name, data) of each SSE event in a complete body."""
    out = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        out.append((name, "\n".join(data)))
    return out


async def stats(http: aiohttp.ClientSession, base: str) -> dict:
    async with http.get(base + "/_sim/stats") as r:
        return await r.json()


# --- pure parts ---------------------------------------------------------------------------


def test_text_is_deterministic_readable_and_exact_length():
    a, b, c = text.generate(7, 50), text.generate(7, 50), text.generate(8, 50)
    assert a == b and a != c
    assert len(a) == 50 and not a[0].startswith(" ")
    joined = "".join(a)
    assert joined[0].isupper() and "." in joined
    assert all(w.strip(".,\n").isalpha() for w in joined.split())


def test_template_renders_what_json_dumps_would():
    meta = shapes.Meta("chatcmpl-x", 1, 'model "quoted" é')
    tmpl = shapes.Template(shapes.chat_chunk(meta, {"content": shapes.hole(0)}, None, usage=None), 1)
    for tok in (" the", 'say "hi"', "\n\n", "naïve \\ 🚀"):
        rendered = tmpl.render(shapes.jstr(tok))
        assert rendered.startswith(b"data: ") and rendered.endswith(b"\n\n")
        assert json.loads(rendered[6:]) == shapes.chat_chunk(meta, {"content": tok}, None, usage=None)


def test_tool_arguments_follow_the_schema():
    args = text.tool_arguments(WEATHER_TOOL["function"]["parameters"], 3)
    assert set(args) == {"location", "unit"} and args["unit"] in ("celsius", "fahrenheit")
    pieces = text.fragments(json.dumps(args), 3)
    assert len(pieces) > 2 and json.loads("".join(pieces)) == args


# --- chat completions -----------------------------------------------------------------------


async def test_chat_non_streamed_and_streamed_agree_and_are_deterministic(client):
    r1 = await client.chat.completions.create(model="my-model", messages=CHAT)
    r2 = await client.chat.completions.create(model="my-model", messages=CHAT)
    content = r1.choices[0].message.content
    assert content and content == r2.choices[0].message.content
    assert r1.id.startswith("chatcmpl-") and r1.model == "my-model" and r1.choices[0].finish_reason == "stop"
    assert r1.usage.completion_tokens == 12 and r1.usage.prompt_tokens > 0
    assert r1.usage.prompt_tokens_details.cached_tokens == 0

    stream = await client.chat.completions.create(model="my-model", messages=CHAT, stream=True)
    chunks = [c async for c in stream]
    assert len(chunks) == 12
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks][-2:] == [None, "stop"]
    assert "".join(c.choices[0].delta.content for c in chunks) == content

    other = await client.chat.completions.create(model="my-model", messages=[{"role": "user", "content": "Other"}])
    assert other.choices[0].message.content != content


async def test_same_seed_same_text_across_servers(start_sim):
    texts = []
    for seed in (5, 5, 6):
        base = await start_sim(seed=seed)
        async with openai.AsyncOpenAI(base_url=base + "/v1", api_key="sk-test", max_retries=0) as c:
            r = await c.chat.completions.create(model="m", messages=CHAT)
        texts.append(r.choices[0].message.content)
    assert texts[0] == texts[1] != texts[2]


async def test_include_usage_adds_usage_chunk_and_nulls(sim, http):
    req = {"model": "m", "messages": CHAT, "stream": True}
    async with http.post(sim + "/v1/chat/completions", json={**req, "stream_options": {"include_usage": True}}) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        events = [d for _, d in sse_events(await r.read())]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(d) for d in events[:-1]]
    assert all("usage" in c and c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 12

    async with http.post(sim + "/v1/chat/completions", json=req) as r:
        events = [d for _, d in sse_events(await r.read())]
    assert events[-1] == "[DONE]" and len(events) == 13
    assert not any("usage" in json.loads(d) for d in events[:-1])

    headers = {"x-sim-no-usage": "1"}
    async with http.post(
        sim + "/v1/chat/completions", headers=headers, json={**req, "stream_options": {"include_usage": True}}
    ) as r:
        events = [d for _, d in sse_events(await r.read())]
    assert not any("usage" in json.loads(d) for d in events[:-1]) and len(events) == 13


async def test_max_tokens_caps_length(client):
    r = await client.chat.completions.create(model="m", messages=CHAT, max_completion_tokens=5)
    assert r.usage.completion_tokens == 5 and r.choices[0].finish_reason == "length"


def test_sentence_end_stops_after_a_full_stop_never_mid_word():
    for seed in range(20):
        n = text.sentence_end(seed, 30)
        toks = text.generate(seed, n)
        assert n >= 30 and toks[-1] == "." and len(toks) == n
        assert all(t != "." for t in text.generate(seed, n)[29:-1])  # the first full stop from token 30 on


@pytest.mark.parametrize("cap_key", ["max_tokens", "max_completion_tokens"])
async def test_whole_sentences_honour_max_tokens(start_sim, cap_key):
    base = await start_sim(length=30, whole_sentences=True)
    async with openai.AsyncOpenAI(base_url=base + "/v1", api_key="sk-test", max_retries=0) as c:
        free = await c.chat.completions.create(model="m", messages=CHAT)
        roomy = await c.chat.completions.create(model="m", messages=CHAT, **{cap_key: 1000})
        capped = await c.chat.completions.create(model="m", messages=CHAT, **{cap_key: 7})
        stream = await c.chat.completions.create(
            model="m", messages=CHAT, stream=True, stream_options={"include_usage": True}, **{cap_key: 7}
        )
        chunks = [ch async for ch in stream]
    for r in (free, roomy):  # stopped on its own: a finished sentence, about `length` tokens
        assert r.choices[0].finish_reason == "stop" and r.choices[0].message.content.endswith(".")
        assert r.usage.completion_tokens >= 30
    assert capped.choices[0].finish_reason == "length" and capped.usage.completion_tokens == 7
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finishes == ["length"] and chunks[-1].usage.completion_tokens == 7


async def test_tool_calls_stream_and_assemble(client):
    weather = [{"role": "user", "content": "What's the weather in Paris?"}]
    stream = await client.chat.completions.create(model="m", messages=weather, tools=[WEATHER_TOOL], stream=True)
    chunks = [c async for c in stream]
    first = chunks[0].choices[0].delta.tool_calls[0]
    assert first.id.startswith("call_") and first.type == "function"
    assert first.function.name == "get_weather" and first.function.arguments == ""
    args = "".join(c.choices[0].delta.tool_calls[0].function.arguments for c in chunks[1:-1])
    assert len(chunks) > 4 and set(json.loads(args)) == {"location", "unit"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    r = await client.chat.completions.create(model="m", messages=weather, tools=[WEATHER_TOOL])
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls" and json.loads(call.function.arguments)["location"]

    after = weather + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "18C"},
    ]
    r = await client.chat.completions.create(model="m", messages=after, tools=[WEATHER_TOOL])
    assert r.choices[0].finish_reason == "stop" and r.choices[0].message.content


# --- the other APIs ---------------------------------------------------------------------------


async def test_completions_streamed_and_not(client):
    r = await client.completions.create(model="m", prompt="Once upon a time")
    assert r.choices[0].text and r.usage.completion_tokens == 12
    stream = await client.completions.create(
        model="m", prompt="Once upon a time", stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == r.choices[0].text
    assert chunks[-1].usage.completion_tokens == 12 and chunks[-2].choices[0].finish_reason == "stop"


async def test_embeddings_deterministic_and_dimensions(client):
    r = await client.embeddings.create(model="e", input=["a", "b"])  # the SDK asks for base64
    assert [len(d.embedding) for d in r.data] == [8, 8] and r.usage.prompt_tokens == 2
    assert abs(sum(x * x for x in r.data[0].embedding) - 1.0) < 1e-5
    assert r.data[0].embedding != r.data[1].embedding
    again = await client.embeddings.create(model="e", input="a", encoding_format="float")
    assert again.data[0].embedding == r.data[0].embedding
    wide = await client.embeddings.create(model="e", input="a", dimensions=16)
    assert len(wide.data[0].embedding) == 16


async def test_responses_stream_parses_with_sdk_helpers(client):
    stream = await client.responses.create(model="m", input="Hello", stream=True)
    events = [e async for e in stream]
    types = [e.type for e in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[4:16] == ["response.output_text.delta"] * 12
    assert types[16:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
    async with client.responses.stream(model="m", input=messages) as helper:
        seen = [e.type async for e in helper]
        final = await helper.get_final_response()
    assert "response.completed" in seen and final.output_text
    usage = final.usage
    assert usage.output_tokens == 12 and usage.input_tokens > 0
    assert usage.total_tokens == usage.input_tokens + 12
    assert usage.input_tokens_details.cached_tokens == 0 and usage.output_tokens_details.reasoning_tokens == 0

    plain = await client.responses.create(model="m", input="Hello")
    assert plain.status == "completed" and plain.output_text == deltas and plain.usage.output_tokens == 12


async def test_messages_event_sequence(sim, http):
    body = {"model": "claude-x", "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    async with http.post(sim + "/v1/messages", json=body) as r:
        events = sse_events(await r.read())
    names = [n for n, _ in events]
    assert names == (
        ["message_start", "content_block_start", "ping"]
        + ["content_block_delta"] * 12
        + ["content_block_stop", "message_delta", "message_stop"]
    )
    data = [json.loads(d) for _, d in events]
    assert all(d["type"] == n for d, n in zip(data, names))
    assert data[0]["message"]["usage"]["input_tokens"] > 0 and data[0]["message"]["model"] == "claude-x"
    assert data[-2]["delta"]["stop_reason"] == "end_turn" and data[-2]["usage"]["output_tokens"] == 12
    streamed = "".join(d["delta"]["text"] for d in data if d["type"] == "content_block_delta")

    async with http.post(sim + "/v1/messages", json={**body, "stream": False, "max_tokens": 4}) as r:
        msg = await r.json()
    assert msg["type"] == "message" and msg["stop_reason"] == "max_tokens" and msg["usage"]["output_tokens"] == 4
    assert streamed.startswith(msg["content"][0]["text"])


async def test_models_and_errors_for_bad_requests(client, sim, http):
    ids = [m.id async for m in client.models.list()]
    assert "sim-gpt-4o" in ids and "sim-claude" in ids
    assert (await client.models.retrieve("anything-at-all")).id == "anything-at-all"

    async with http.post(sim + "/v1/chat/completions", data=b"{not json") as r:
        assert r.status == 400
        err = (await r.json())["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert (err["type"], err["param"], err["code"]) == ("invalid_request_error", None, None)
    async with http.post(sim + "/v1/nowhere", json={}) as r:
        assert r.status == 404 and (await r.json())["error"]["type"] == "invalid_request_error"
    async with http.get(sim + "/v1/chat/completions") as r:
        assert r.status == 405
    async with http.post(sim + "/v1/chat/completions", json={"model": "m"}) as r:
        assert r.status == 400 and (await r.json())["error"]["param"] == "messages"
    async with http.post(sim + "/v1/messages", data=b"[") as r:
        assert r.status == 400 and (await r.json())["type"] == "error"


# --- pacing ---------------------------------------------------------------------------------------


async def test_ttft_and_tokens_per_second_are_honoured(sim, http):
    headers = {"x-sim-ttft-ms": "100", "x-sim-tps": "100", "x-sim-tokens": "20"}
    t0 = time.monotonic()
    arrivals = []
    async with http.post(
        sim + "/v1/chat/completions", headers=headers, json={"model": "m", "messages": CHAT, "stream": True}
    ) as r:
        async for line in r.content:
            if line.startswith(b"data: {"):
                arrivals.append(time.monotonic() - t0)
    assert len(arrivals) == 20
    assert 0.09 <= arrivals[0] < 0.6
    assert arrivals[-1] - arrivals[0] >= 0.15  # 19 gaps of 10 ms
    assert arrivals[-1] < 2.0

    t0 = time.monotonic()  # tokens_per_second 0: no delay at all
    async with http.post(
        sim + "/v1/chat/completions",
        headers={"x-sim-tokens": "500"},
        json={"model": "m", "messages": CHAT, "stream": True},
    ) as r:
        body = await r.read()
    assert body.count(b"data: {") == 500 and time.monotonic() - t0 < 1.0


# --- fault injection ------------------------------------------------------------------------------


async def test_error_override_gives_rate_limit(client, sim, http):
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="m", messages=CHAT, extra_headers={"x-sim-error": "429"})
    assert info.value.response.headers["retry-after"] == "1"
    assert info.value.body["code"] == "rate_limit_exceeded"
    with pytest.raises(openai.InternalServerError) as info:
        await client.responses.create(model="m", input="x", extra_headers={"x-sim-error": "503"})
    assert info.value.status_code == 503
    async with http.post(
        sim + "/v1/messages", headers={"x-sim-error": "429"}, json={"model": "c", "max_tokens": 5, "messages": CHAT}
    ) as r:
        assert r.status == 429 and (await r.json())["error"]["type"] == "rate_limit_error"
    assert (await stats(http, sim))["errors_injected"] == 3


async def test_error_rate_alternates_429_and_500(start_sim, http):
    base = await start_sim(error_rate=1.0)
    statuses = []
    for _ in range(3):
        async with http.post(base + "/v1/chat/completions", json={"model": "m", "messages": CHAT}) as r:
            statuses.append((r.status, r.headers.get("Retry-After")))
    assert statuses == [(429, "1"), (500, "1"), (429, "1")]


async def _read_until_dropped(resp: aiohttp.ClientResponse) -> bytes:
    got = b""
    with pytest.raises(aiohttp.ClientPayloadError):
        async for chunk in resp.content.iter_any():
            got += chunk
    return got


async def test_disconnect_after_drops_the_stream(sim, http, client):
    async with http.post(
        sim + "/v1/chat/completions",
        headers={"x-sim-disconnect-after": "3"},
        json={"model": "m", "messages": CHAT, "stream": True},
    ) as r:
        got = await _read_until_dropped(r)
    assert got.count(b"data: {") == 3 and b"[DONE]" not in got
    s = await stats(http, sim)
    assert s["server_disconnects"] == 1 and s["streams_completed"] == 0 and s["client_disconnects"] == 0

    with pytest.raises(Exception):  # the SDK surfaces the broken stream
        stream = await client.chat.completions.create(
            model="m", messages=CHAT, stream=True, extra_headers={"x-sim-disconnect-after": "2"}
        )
        _ = [c async for c in stream]


async def test_disconnect_rate_drops_streams(start_sim, http):
    base = await start_sim(disconnect_rate=1.0, length=10)
    async with http.post(base + "/v1/chat/completions", json={"model": "m", "messages": CHAT, "stream": True}) as r:
        got = await _read_until_dropped(r)
    assert 1 <= got.count(b"data: {") <= 9 and b"[DONE]" not in got


# --- client disconnects ------------------------------------------------------------------------------


async def _wait_for_disconnect(http: aiohttp.ClientSession, base: str, count: int = 1) -> dict:
    s: dict = {}

    async def noticed() -> bool:
        s.update(await stats(http, base))
        return s["client_disconnects"] >= count

    await until(noticed, timeout=2.0, step=0.01, what="disconnect not noticed")
    return s


async def _wait_in_flight(http: aiohttp.ClientSession, base: str, count: int = 1) -> None:
    """Until ``count`` requests reached the simulator's handler."""

    async def arrived() -> bool:
        return (await stats(http, base))["in_flight"] >= count

    await until(arrived, timeout=2.0, step=0.01)


async def test_client_disconnect_mid_stream_is_noticed(start_sim, http):
    base = await start_sim(tokens_per_second=20, length=1000)
    async with aiohttp.ClientSession() as leaving:
        r = await leaving.post(base + "/v1/chat/completions", json={"model": "m", "messages": CHAT, "stream": True})
        assert (await r.content.readline()).startswith(b"data: {")
        r.close()  # drops the connection
        closed_at = time.monotonic()
    s = await _wait_for_disconnect(http, base)
    assert s["streams_started"] == 1 and s["streams_completed"] == 0
    assert 0 <= s["last_disconnect_at"] - closed_at < 0.2


@pytest.mark.parametrize("handler_cancellation", [False, True])
@pytest.mark.parametrize("stream", [True, False])
async def test_client_disconnect_before_first_token_is_noticed(start_sim, http, handler_cancellation, stream):
    base = await start_sim(ttft=5.0, handler_cancellation=handler_cancellation)
    body = {"model": "m", "messages": CHAT, "stream": stream}
    async with aiohttp.ClientSession() as leaving:
        task = asyncio.create_task(leaving.post(base + "/v1/chat/completions", json=body))
        await _wait_in_flight(http, base)
        if stream:
            r = await task  # headers come at once, the first token after 5 s
            assert r.status == 200
            r.close()
        else:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        closed_at = time.monotonic()
    s = await _wait_for_disconnect(http, base)
    assert 0 <= s["last_disconnect_at"] - closed_at < 0.2
    assert s["in_flight"] == 0


async def test_hang_sends_nothing_and_notices_the_client_leaving(sim, http):
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(
            sim + "/v1/chat/completions",
            headers={"x-sim-hang": "1"},
            json={"model": "m", "messages": CHAT, "stream": True},
            timeout=aiohttp.ClientTimeout(sock_read=0.3),
        ):
            pass
    gave_up = time.monotonic()
    s = await _wait_for_disconnect(http, sim)
    assert s["streams_started"] == 0 and s["last_disconnect_at"] - gave_up < 0.2


# --- test hooks and CLI -------------------------------------------------------------------------------


async def test_last_request_and_reset(sim, http):
    async with http.post(
        sim + "/v1/chat/completions?trace=1",
        headers={"Authorization": "Bearer sk-test"},
        json={"model": "m", "messages": CHAT},
    ) as r:
        assert r.status == 200
    async with http.get(sim + "/_sim/last") as r:
        last = await r.json()
    assert last["method"] == "POST" and last["path"] == "/v1/chat/completions" and last["query"] == "trace=1"
    assert last["headers"]["authorization"] == "Bearer sk-test"
    assert ["Authorization", "Bearer sk-test"] in last["raw_headers"]
    assert last["json"]["messages"] == CHAT
    assert (await stats(http, sim))["requests"] == 1

    async with http.post(sim + "/_sim/reset") as r:
        assert r.status == 200
    async with http.get(sim + "/_sim/last") as r:
        assert await r.json() is None
    assert (await stats(http, sim))["requests"] == 0


def test_cli_help_lists_options_with_env_names():
    out = subprocess.run(
        [sys.executable, "-m", "tokentail", "simulate", "--help"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    for name in ("port", "host", "tokens_per_second", "ttft", "length", "error_rate", "disconnect_rate", "seed"):
        assert "--" + name.replace("_", "-") in out.stdout
        assert f"TOKENTAIL_SIMULATE_{name.upper()}" in out.stdout.replace("\n", "").replace(" ", "")
    bad = subprocess.run(
        [sys.executable, "-m", "tokentail", "simulate", "--error-rate", "2"], capture_output=True, text=True, timeout=30
    )
    assert bad.returncode == 2 and "--error-rate" in bad.stderr


async def test_shutdown_ends_paced_streams_and_hangs_quickly(http):
    runner = web.AppRunner(
        create_app(SimConfig(ttft=0.0, tokens_per_second=5, length=100)), access_log=None, shutdown_timeout=20.0
    )
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{serving.bound_port(runner)}"
    body = {"model": "m", "messages": CHAT, "stream": True}
    stream = await http.post(base + "/v1/chat/completions", json=body)  # would take 20 s
    hung = asyncio.create_task(http.post(base + "/v1/chat/completions", json=body, headers={"x-sim-hang": "1"}))
    await _wait_in_flight(http, base, 2)
    t0 = time.monotonic()
    await runner.cleanup()
    assert time.monotonic() - t0 < 2.0
    assert (await stream.read()).endswith(b"data: [DONE]\n\n")
    with pytest.raises(aiohttp.ClientError):
        await hung


async def test_cached_tokens_and_bad_override_headers(client, sim, http):
    r = await client.chat.completions.create(model="m", messages=CHAT, extra_headers={"x-sim-cached-tokens": "4"})
    assert r.usage.prompt_tokens_details.cached_tokens == 4
    long_prompt = [{"role": "user", "content": "word " * 2000}]
    r = await client.chat.completions.create(model="m", messages=long_prompt)
    cached = r.usage.prompt_tokens_details.cached_tokens
    assert r.usage.prompt_tokens > 2000 and cached > 0 and cached % 128 == 0
    async with http.post(
        sim + "/v1/chat/completions", headers={"x-sim-tokens": "lots"}, json={"model": "m", "messages": CHAT}
    ) as resp:
        assert resp.status == 400 and "x-sim-tokens" in (await resp.json())["error"]["message"]
