"""Per-provider reading of response JSON: text, tool calls, reasoning, finish reason, usage.

One ``Interpreter`` per endpoint family, all listed in ``INTERPRETERS`` and looked up with
``interpreter_for(endpoint)``. Each has two entry points, pure functions over parsed JSON:
``event(obj, event_name, st)`` reads one streamed event and returns the ``Delta`` it carries
(or None); ``body(obj, st)`` reads a whole non-streamed response and returns its completion
as one ``Delta``. Everything else they find (model, id, finish reason, token counts, tool
calls) goes into the ``Extract`` ``st``; the tap applies it to the ``RequestRecord``.

The interpreters live in private modules, one per provider: ``_usage_openai`` (chat,
completions, embeddings), ``_usage_responses``, ``_usage_anthropic``, on the shared types in
``_usage_base``. This module lists them and is the public surface: import from here.

Token counts follow DESIGN: input counts cached tokens included; ``None`` is unknown.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# The provider modules import the shared types from ``_usage_base``, never from here, so
# importing any of them first cannot cycle back into a half-built registry.
from ._usage_anthropic import MESSAGES_END, messages_body, messages_event
from ._usage_base import Extract, ToolCalls, error_message
from ._usage_openai import (
    chat_body,
    chat_event,
    completions_body,
    completions_event,
    embeddings_body,
    embeddings_event,
)
from ._usage_responses import RESPONSES_END, responses_body, responses_event
from .record import Delta

__all__ = [
    "GENERIC",
    "INTERPRETERS",
    "MESSAGES_END",
    "RESPONSES_END",
    "Extract",
    "Interpreter",
    "ToolCalls",
    "chat_body",
    "chat_event",
    "completions_body",
    "completions_event",
    "embeddings_body",
    "embeddings_event",
    "error_message",
    "estimate_input_tokens",
    "interpreter_for",
    "is_usage_chunk",
    "messages_body",
    "messages_event",
    "responses_body",
    "responses_event",
]


# --- the registry ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Interpreter:
    """How one endpoint family's responses read."""

    name: str
    event: Callable[[dict[str, Any], str | None, Extract], Delta | None]
    body: Callable[[dict[str, Any], Extract], Delta | None]
    usage_chunk: bool = False  # has OpenAI's usage-only chunk (stream_options.include_usage)
    has_output: bool = True  # False: output tokens are never estimated (embeddings)
    # How a complete stream ends: ``data: [DONE]`` (OpenAI chat and completions, and so vLLM,
    # llama.cpp, SGLang, Ollama's /v1), or an event of one of ``end_types`` (its ``type``, or
    # its SSE ``event:`` name). ``strict`` False: the protocol is not known, so only a stream
    # with no data event at all counts as incomplete.
    ends_with_done: bool = False
    end_types: frozenset[str] = frozenset()
    strict: bool = True

    def is_end(self, obj: dict[str, Any], event_name: str | None) -> bool:
        """True when this parsed event is one that completes the stream."""
        if not self.end_types:
            return False
        t = obj.get("type")
        return (t if type(t) is str else event_name) in self.end_types


def is_usage_chunk(obj: dict[str, Any]) -> bool:
    """OpenAI's usage-only chunk: ``{"choices": [], "usage": {...}}``."""
    return type(obj.get("usage")) is dict and not obj.get("choices")


_ANTHROPIC_TYPES = frozenset(
    {
        "message_start",
        "message_delta",
        "message_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message",
        "ping",
    }
)


def _sniff(obj: dict[str, Any]) -> Interpreter:
    t = obj.get("type")
    if obj.get("object") == "response" or (type(t) is str and t.startswith("response.")):
        return INTERPRETERS["/responses"]
    if t in _ANTHROPIC_TYPES:
        return INTERPRETERS["/messages"]
    choices = obj.get("choices")
    if type(choices) is list and choices and type(choices[0]) is dict and "text" in choices[0]:
        return INTERPRETERS["/completions"]
    if obj.get("object") == "list":
        return INTERPRETERS["/embeddings"]
    return INTERPRETERS["/chat/completions"]


INTERPRETERS: dict[str, Interpreter] = {
    # Order matters: lookup is by suffix, and "/chat/completions" ends with "/completions".
    "/chat/completions": Interpreter("chat", chat_event, chat_body, usage_chunk=True, ends_with_done=True),
    "/completions": Interpreter(
        "completions", completions_event, completions_body, usage_chunk=True, ends_with_done=True
    ),
    "/responses": Interpreter("responses", responses_event, responses_body, end_types=RESPONSES_END),
    "/messages": Interpreter("messages", messages_event, messages_body, end_types=MESSAGES_END),
    # Embeddings never stream: nothing to judge should one do so.
    "/embeddings": Interpreter("embeddings", embeddings_event, embeddings_body, has_output=False, strict=False),
}

# For any other endpoint: each object is read by the family its shape belongs to. Its
# protocol is unknown (audio and other streams end their own way), so any known terminator
# counts and only an empty stream is judged incomplete.
GENERIC = Interpreter(
    "generic",
    lambda o, n, st: _sniff(o).event(o, n, st),
    lambda o, st: _sniff(o).body(o, st),
    ends_with_done=True,
    end_types=RESPONSES_END | MESSAGES_END,
    strict=False,
)


def interpreter_for(endpoint: str) -> Interpreter:
    """The interpreter for an endpoint path below /v1 (``/chat/completions``...)."""
    path = endpoint.split("?", 1)[0].rstrip("/")
    for suffix, interp in INTERPRETERS.items():
        if path.endswith(suffix):
            return interp
    return GENERIC


# --- estimation when the upstream reports nothing -------------------------------------------

_TEXT_KEYS = ("text", "content", "arguments", "thinking", "input", "output", "tool_calls")


# Values an estimate walks (~3.5 ms on the event loop, at the tap's end; 4,096 took ~14 ms):
# past them, the rest of the list being walked counts at the average so far. A body of
# 140,000 one-word messages took ~0.4 s walked whole; an estimate needs no more than a sample.
_WALK_NODES = 1024


class _Walk:
    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left


def _chars(v: Any, walk: _Walk, depth: int = 0) -> int:
    """Characters of prompt text; token-id lists count 4 per id; media payloads count nothing."""
    if type(v) is str:
        return len(v)
    walk.left -= 1
    if depth > 32:
        return 0
    if type(v) is int:
        return 4
    if type(v) is list:
        n = 0
        for i, x in enumerate(v):
            if walk.left <= 0:  # out of nodes: the rest as many again per item as so far
                return n + n * (len(v) - i) // i if i else n
            n += _chars(x, walk, depth + 1)
        return n
    if type(v) is dict:
        n = sum(_chars(v[k], walk, depth + 1) for k in _TEXT_KEYS if k in v)
        fn = v.get("function")
        return n + (_chars(fn, walk, depth + 1) if type(fn) is dict else 0)
    return 0


def estimate_input_tokens(request_json: Any) -> int | None:
    """ceil(chars / 4) of the prompt (messages, system, instructions, prompt or input, tools);
    past ``_WALK_NODES`` values, the rest of a list is extrapolated from what was walked.

    None when the request holds no prompt text at all: unknown is never 0.
    """
    if type(request_json) is not dict:
        return None
    n = 0
    walk = _Walk(_WALK_NODES)
    for key in ("messages", "system", "instructions", "prompt", "input"):
        if key in request_json:
            n += _chars(request_json[key], walk)
    if n and request_json.get("tools"):
        try:
            n += len(json.dumps(request_json["tools"]))
        except (TypeError, ValueError, RecursionError):
            pass
    return (n + 3) // 4 if n else None
