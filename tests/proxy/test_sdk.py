"""The real `openai` SDK through the proxy gives what it gets directly from the simulator."""

from __future__ import annotations

import asyncio

import openai
import pytest

KEY = "sk-test-0123456789abcdefghijklmnop"
MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me about tails."}]


def _sync_chat(base_url: str, stream: bool) -> tuple[str, object]:
    client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0)
    if not stream:
        r = client.chat.completions.create(model="sim-gpt-4o", messages=MSGS)
        return r.choices[0].message.content, r.usage.completion_tokens
    text = ""
    for chunk in client.chat.completions.create(model="sim-gpt-4o", messages=MSGS, stream=True):
        assert chunk.usage is None  # the client did not ask for usage: it must not see any
        for c in chunk.choices:
            text += c.delta.content or ""
    return text, None


@pytest.mark.parametrize("stream", [False, True])
async def test_sync_chat_same_through_proxy_as_direct(stack, stream):
    direct = await asyncio.to_thread(_sync_chat, stack.sim_url, stream)
    proxied = await asyncio.to_thread(_sync_chat, stack.base_url, stream)
    assert proxied == direct and direct[0]


@pytest.mark.parametrize("stream", [False, True])
async def test_async_chat_same_through_proxy_as_direct(stack, stream):
    async def run(base_url):
        client = openai.AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0)
        try:
            if not stream:
                r = await client.chat.completions.create(model="sim-gpt-4o", messages=MSGS)
                return r.choices[0].message.content, r.usage.prompt_tokens, r.usage.completion_tokens
            text, usage = "", None
            s = await client.chat.completions.create(
                model="sim-gpt-4o", messages=MSGS, stream=True, stream_options={"include_usage": True}
            )
            async for chunk in s:
                if chunk.usage:
                    usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for c in chunk.choices:
                    text += c.delta.content or ""
            return text, usage
        finally:
            await client.close()

    direct, proxied = await run(stack.sim_url), await run(stack.base_url)
    assert proxied == direct and direct[0]


async def test_responses_api_streamed_and_not(stack):
    async def run(base_url):
        client = openai.AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0)
        try:
            r = await client.responses.create(model="sim-gpt-4o", input="Say hello")
            text = ""
            final = None
            async with client.responses.stream(model="sim-gpt-4o", input="Say hello") as s:
                async for ev in s:
                    if ev.type == "response.output_text.delta":
                        text += ev.delta
                final = await s.get_final_response()
            return r.output_text, text, final.usage.output_tokens
        finally:
            await client.close()

    direct, proxied = await run(stack.sim_url), await run(stack.base_url)
    assert proxied == direct and direct[0] == direct[1]


async def test_proxy_records_what_the_sdk_saw(stack):
    from tokentail.proxy.state import HUB

    client = openai.AsyncOpenAI(base_url=stack.base_url, api_key=KEY, max_retries=0)
    try:
        raw = await client.chat.completions.with_raw_response.create(model="sim-gpt-4o", messages=MSGS, stream=True)
        text = ""
        async for chunk in raw.parse():
            for c in chunk.choices:
                text += c.delta.content or ""
        rid = raw.headers["x-tokentail-request-id"]
    finally:
        await client.close()
    rec = stack.app[HUB].get_request(rid)
    assert rec["status"] == "ok" and rec["text"] == text and rec["model"] == "sim-gpt-4o"
    assert rec["usage"]["source"] == "reported" and rec["usage"]["output_tokens"] > 0
    assert rec["ttft_ms"] is not None and rec["latency_ms"] >= rec["ttft_ms"]


async def test_rate_limit_passes_through_to_the_sdk(stack):
    client = openai.AsyncOpenAI(base_url=stack.base_url, api_key=KEY, max_retries=0)
    try:
        with pytest.raises(openai.RateLimitError) as exc:
            await client.chat.completions.create(
                model="sim-gpt-4o", messages=MSGS, extra_headers={"x-sim-error": "429"}
            )
        assert exc.value.response.headers.get("retry-after") == "1"
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(
                model="sim-gpt-4o", messages=MSGS, extra_headers={"x-sim-error": "500"}
            )
    finally:
        await client.close()
