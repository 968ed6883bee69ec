"""Wire shapes of the simulated APIs: JSON bodies and SSE event streams (pure).

Bodies are plain dicts. Streams are generators of ``(phase, event_bytes)``: the
phase tells the server when to send the event (``HEAD`` right after the response
headers, ``LEAD`` once the first token is due, ``TOKEN`` paced one per generated
token, ``TAIL`` after the last token), so pacing and fault injection stay in the
app while the bytes are decided here. Streams are lazy, so a million-token stream
costs no more memory than a short one.

Per-token events are rendered from a ``Template``: the chunk is serialised once
with placeholders and each token is a string join, so the simulator is never the
bottleneck of the proxy benchmark it serves.
"""

from __future__ import annotations

import base64
import json
import random
import secrets
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

HEAD, LEAD, TOKEN, TAIL = 0, 1, 2, 3
Event = tuple[int, bytes]

FINGERPRINT = "fp_tokentail_sim"
DONE = b"data: [DONE]\n\n"
_NONCE = secrets.token_hex(4)  # placeholders a request cannot forge


def dumps(obj: Any) -> str:
    """Compact JSON as OpenAI sends it; non-ASCII stays UTF-8."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


@lru_cache(maxsize=8192)
def jstr(text: str) -> str:
    """A token as a JSON string literal (cached: the vocabulary is small)."""
    return json.dumps(text, ensure_ascii=False)


def sse(obj: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\ndata: " if event else "data: "
    return (head + dumps(obj) + "\n\n").encode()


def hole(i: int) -> str:
    return f"\ue000{_NONCE}{i}\ue001"


class Template:
    """An SSE event whose JSON has holes (string values ``hole(i)``), split once so that
    ``render`` is a string join; values are JSON literals (``jstr(tok)``, ``str(n)``)."""

    __slots__ = ("_parts",)

    def __init__(self, obj: Any, holes: int, event: str | None = None):
        text = dumps(obj)
        parts = [f"event: {event}\ndata: " if event else "data: "]
        for i in range(holes):
            before, found, text = text.partition(jstr(hole(i)))
            if not found:
                raise ValueError(f"template has no hole {i}")
            parts[-1] += before
            parts.append("")
        parts[-1] += text + "\n\n"
        self._parts = tuple(parts)

    def render(self, *values: str) -> bytes:
        p = self._parts
        if len(values) == 1:
            return (p[0] + values[0] + p[1]).encode()
        out = [p[0]]
        for value, part in zip(values, p[1:]):
            out.append(value)
            out.append(part)
        return "".join(out).encode()


@dataclass(frozen=True)
class Meta:
    id: str
    created: int
    model: str


# --- errors and models ----------------------------------------------------------------

_OPENAI_ERRORS = {
    400: ("invalid_request_error", None, "Bad request (simulated by tokentail)."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided (simulated by tokentail)."),
    403: (
        "invalid_request_error",
        "forbidden",
        "You are not allowed to access this resource (simulated by tokentail).",
    ),
    404: ("invalid_request_error", "model_not_found", "The model does not exist (simulated by tokentail)."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests (simulated by tokentail). Please try again in 1s.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that! (simulated by tokentail)",
    ),
    502: ("server_error", None, "Bad gateway (simulated by tokentail)."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later (simulated by tokentail)."),
    504: ("server_error", None, "Gateway timeout (simulated by tokentail)."),
}
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
    503: "overloaded_error",
}


def openai_error(
    message: str, type_: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def anthropic_error(message: str, type_: str = "invalid_request_error") -> dict:
    return {"type": "error", "error": {"type": type_, "message": message}}


def injected_error(status: int, anthropic: bool = False) -> dict:
    """The body of a simulated failure with this status, in the API's own error shape."""
    fallback = (
        "server_error" if status >= 500 else "invalid_request_error",
        None,
        f"Simulated error {status} (tokentail).",
    )
    type_, code, message = _OPENAI_ERRORS.get(status, fallback)
    if anthropic:
        default = "api_error" if status >= 500 else "invalid_request_error"
        return anthropic_error(message, _ANTHROPIC_ERRORS.get(status, default))
    return openai_error(message, type_, None, code)


def models_list(models: Iterable[str], created: int) -> dict:
    return {"object": "list", "data": [model_object(m, created) for m in models]}


def model_object(model: str, created: int) -> dict:
    return {"id": model, "object": "model", "created": created, "owned_by": "tokentail-simulator"}


# --- chat completions -------------------------------------------------------------------


def chat_usage(prompt: int, completion: int, cached: int = 0) -> dict:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


_NO_USAGE = object()


def chat_chunk(meta: Meta, delta: dict, finish_reason: str | None = None, usage: Any = _NO_USAGE) -> dict:
    chunk = {
        "id": meta.id,
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    if usage is not _NO_USAGE:
        chunk["usage"] = usage
    return chunk


def _usage_tail(meta: Meta, obj: str, usage: dict | None, include_usage: bool) -> Iterator[Event]:
    if include_usage and usage is not None:
        yield (
            TAIL,
            sse(
                {
                    "id": meta.id,
                    "object": obj,
                    "created": meta.created,
                    "model": meta.model,
                    "service_tier": "default",
                    "system_fingerprint": FINGERPRINT,
                    "choices": [],
                    "usage": usage,
                }
            ),
        )
    yield TAIL, DONE


def chat_stream(
    meta: Meta, tokens: Iterable[str], n: int, finish_reason: str, usage: dict | None, include_usage: bool
) -> Iterator[Event]:
    """``n`` content chunks (the role on the first, ``finish_reason`` on the last), the
    usage chunk when asked (every other chunk then carries ``"usage": null``), ``[DONE]``."""
    extra = {"usage": None} if include_usage else {}
    tmpl = Template(chat_chunk(meta, {"content": hole(0)}, None, **extra), 1)
    last = n - 1
    for i, tok in enumerate(tokens):
        if i == 0 or i == last:
            delta = {"role": "assistant", "content": tok} if i == 0 else {"content": tok}
            yield TOKEN, sse(chat_chunk(meta, delta, finish_reason if i == last else None, **extra))
        else:
            yield TOKEN, tmpl.render(jstr(tok))
    yield from _usage_tail(meta, "chat.completion.chunk", usage, include_usage)


def chat_tool_stream(
    meta: Meta, call_id: str, name: str, pieces: list[str], usage: dict | None, include_usage: bool
) -> Iterator[Event]:
    """A tool call as OpenAI streams it: id, type and name with empty arguments first,
    then argument fragments, then an empty delta with ``finish_reason: tool_calls``."""
    extra = {"usage": None} if include_usage else {}
    first = {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "tool_calls": [{"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}],
    }
    yield TOKEN, sse(chat_chunk(meta, first, None, **extra))
    tmpl = Template(
        chat_chunk(meta, {"tool_calls": [{"index": 0, "function": {"arguments": hole(0)}}]}, None, **extra), 1
    )
    for piece in pieces:
        yield TOKEN, tmpl.render(jstr(piece))
    yield TAIL, sse(chat_chunk(meta, {}, "tool_calls", **extra))
    yield from _usage_tail(meta, "chat.completion.chunk", usage, include_usage)


def chat_completion(meta: Meta, message: dict, finish_reason: str, usage: dict | None) -> dict:
    body = {
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["usage"] = usage
    body["service_tier"] = "default"
    body["system_fingerprint"] = FINGERPRINT
    return body


def assistant_message(text: str) -> dict:
    return {"role": "assistant", "content": text, "refusal": None, "annotations": []}


def tool_call_message(call_id: str, name: str, arguments: str) -> dict:
    return {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "annotations": [],
        "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}],
    }


# --- legacy completions ------------------------------------------------------------------


def completion_chunk(meta: Meta, text: str, finish_reason: str | None = None, usage: Any = _NO_USAGE) -> dict:
    chunk = {
        "id": meta.id,
        "object": "text_completion",
        "created": meta.created,
        "model": meta.model,
        "system_fingerprint": FINGERPRINT,
        "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}],
    }
    if usage is not _NO_USAGE:
        chunk["usage"] = usage
    return chunk


def completion_stream(
    meta: Meta, tokens: Iterable[str], n: int, finish_reason: str, usage: dict | None, include_usage: bool
) -> Iterator[Event]:
    extra = {"usage": None} if include_usage else {}
    tmpl = Template(completion_chunk(meta, hole(0), None, **extra), 1)
    last = n - 1
    for i, tok in enumerate(tokens):
        if i == last:
            yield TOKEN, sse(completion_chunk(meta, tok, finish_reason, **extra))
        else:
            yield TOKEN, tmpl.render(jstr(tok))
    yield from _usage_tail(meta, "text_completion", usage, include_usage)


def completion(meta: Meta, text: str, finish_reason: str, usage: dict | None) -> dict:
    body = completion_chunk(meta, text, finish_reason)
    if usage is not None:
        body["usage"] = usage
    return body


# --- embeddings ----------------------------------------------------------------------------


def embedding_vector(seed: int, dimensions: int) -> list[float]:
    """A unit vector from the seed, rounded to float32 so the float and base64 forms agree."""
    rng = random.Random(seed)
    raw = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = sum(x * x for x in raw) ** 0.5 or 1.0
    return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *(x / norm for x in raw))))


def embeddings(model: str, vectors: list[list[float]], prompt_tokens: int | None, base64_format: bool) -> dict:
    data = []
    for i, vec in enumerate(vectors):
        value: Any = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode() if base64_format else vec
        data.append({"object": "embedding", "index": i, "embedding": value})
    body: dict[str, Any] = {"object": "list", "data": data, "model": model}
    if prompt_tokens is not None:
        body["usage"] = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    return body


# --- Responses API -------------------------------------------------------------------------


def responses_usage(input_tokens: int, output_tokens: int, cached: int = 0) -> dict:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def response_object(meta: Meta, status: str, output: list, usage: dict | None, params: dict) -> dict:
    """The Response object; ``params`` are the request's (only well-typed ones are echoed)."""
    instructions = params.get("instructions")
    max_out = params.get("max_output_tokens")
    temperature = params.get("temperature")
    return {
        "id": meta.id,
        "object": "response",
        "created_at": meta.created,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": instructions if isinstance(instructions, str) else None,
        "max_output_tokens": max_out if isinstance(max_out, int) else None,
        "model": meta.model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": temperature if isinstance(temperature, (int, float)) else 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def output_text_part(text: str) -> dict:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def output_message(item_id: str, status: str, content: list) -> dict:
    return {"id": item_id, "type": "message", "status": status, "content": content, "role": "assistant"}


def responses_stream(
    meta: Meta, item_id: str, tokens: Iterable[str], usage: dict | None, params: dict
) -> Iterator[Event]:
    """The Responses API event sequence; every event has ``type`` and ``sequence_number``."""
    seq = 0

    def ev(phase: int, kind: str, **fields: Any) -> Event:
        nonlocal seq
        event = (phase, sse({"type": kind, "sequence_number": seq, **fields}, kind))
        seq += 1
        return event

    yield ev(HEAD, "response.created", response=response_object(meta, "in_progress", [], None, params))
    yield ev(HEAD, "response.in_progress", response=response_object(meta, "in_progress", [], None, params))
    yield ev(LEAD, "response.output_item.added", output_index=0, item=output_message(item_id, "in_progress", []))
    yield ev(
        LEAD, "response.content_part.added", item_id=item_id, output_index=0, content_index=0, part=output_text_part("")
    )
    kind = "response.output_text.delta"
    tmpl = Template(
        {
            "type": kind,
            "sequence_number": hole(0),
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "delta": hole(1),
            "logprobs": [],
        },
        2,
        kind,
    )
    text = []
    for tok in tokens:
        text.append(tok)
        yield TOKEN, tmpl.render(str(seq), jstr(tok))
        seq += 1
    full = "".join(text)
    part = output_text_part(full)
    item = output_message(item_id, "completed", [part])
    yield ev(
        TAIL, "response.output_text.done", item_id=item_id, output_index=0, content_index=0, text=full, logprobs=[]
    )
    yield ev(TAIL, "response.content_part.done", item_id=item_id, output_index=0, content_index=0, part=part)
    yield ev(TAIL, "response.output_item.done", output_index=0, item=item)
    yield ev(TAIL, "response.completed", response=response_object(meta, "completed", [item], usage, params))


# --- Anthropic Messages -------------------------------------------------------------------


def anthropic_usage(input_tokens: int, output_tokens: int, cached: int = 0) -> dict:
    """Anthropic counts cache reads apart: ``input_tokens`` excludes them."""
    return {
        "input_tokens": input_tokens - cached,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": output_tokens,
    }


def anthropic_message(meta: Meta, content: list, stop_reason: str | None, usage: dict) -> dict:
    return {
        "id": meta.id,
        "type": "message",
        "role": "assistant",
        "model": meta.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


def messages_stream(meta: Meta, tokens: Iterable[str], stop_reason: str, usage: dict) -> Iterator[Event]:
    start_usage = dict(usage, output_tokens=1)
    yield (
        HEAD,
        sse({"type": "message_start", "message": anthropic_message(meta, [], None, start_usage)}, "message_start"),
    )
    yield (
        HEAD,
        sse(
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            "content_block_start",
        ),
    )
    yield HEAD, sse({"type": "ping"}, "ping")
    kind = "content_block_delta"
    tmpl = Template({"type": kind, "index": 0, "delta": {"type": "text_delta", "text": hole(0)}}, 1, kind)
    for tok in tokens:
        yield TOKEN, tmpl.render(jstr(tok))
    yield TAIL, sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
    yield (
        TAIL,
        sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]},
            },
            "message_delta",
        ),
    )
    yield TAIL, sse({"type": "message_stop"}, "message_stop")
