"""Synthetic traffic for `tokentail up --demo`: a mix of models, endpoints and outcomes."""

from __future__ import annotations

import asyncio
import json
import logging
import random

import aiohttp

log = logging.getLogger("tokentail.traffic")

MODELS = ("sim-gpt-4o", "sim-gpt-4o-mini", "sim-llama-3-8b")
PROMPTS = (
    "Summarise the plot of Hamlet in three sentences.",
    "Write a haiku about observability.",
    "What's the weather in Lisbon tomorrow?",
    "Explain backpressure in streaming proxies.",
    "Translate 'good morning' into French, German and Japanese.",
    "List three uses of a ring buffer.",
)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def make_request(rng: random.Random) -> tuple[str, dict, dict]:
    """(path, body, headers) of one plausible request."""
    model = rng.choice(MODELS)
    prompt = rng.choice(PROMPTS)
    headers = {"Authorization": "Bearer sk-demo-not-a-real-key", "x-sim-tps": str(rng.choice((20, 40, 80)))}
    roll = rng.random()
    if roll < 0.04:
        headers["x-sim-error"] = rng.choice(("429", "500"))
    elif roll < 0.06:
        headers["x-sim-disconnect-after"] = "5"
    if rng.random() < 0.1:
        return "/embeddings", {"model": "sim-embed", "input": prompt}, headers
    body = {
        "model": model,
        "stream": rng.random() < 0.85,
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": prompt},
        ],
        "max_tokens": rng.choice((30, 60, 120)),
    }
    if "weather" in prompt:
        body["tools"] = [WEATHER_TOOL]
    return "/chat/completions", body, headers


async def _one(session: aiohttp.ClientSession, base: str, rng: random.Random) -> None:
    path, body, headers = make_request(rng)
    try:
        async with session.post(
            base + path, data=json.dumps(body), headers={**headers, "Content-Type": "application/json"}
        ) as r:
            async for _ in r.content.iter_any():
                pass
    except (TimeoutError, aiohttp.ClientError) as exc:
        log.debug("demo request failed: %s", exc)


async def generate(base_urls: list[str], rps: float, stop: asyncio.Event, seed: int = 0) -> None:
    """Send about ``rps`` requests per second to each base URL until ``stop`` is set."""
    rng = random.Random(seed)
    tasks: set[asyncio.Task] = set()
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while not stop.is_set():
            for base in base_urls:
                if len(tasks) < 64:  # bounded: never pile up if the stack is slow
                    t = asyncio.create_task(_one(session, base, rng))
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
            try:
                await asyncio.wait_for(stop.wait(), rng.expovariate(rps) if rps > 0 else 1.0)
            except TimeoutError:
                pass
        for t in list(tasks):
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
