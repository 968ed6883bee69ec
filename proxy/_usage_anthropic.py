"""Anthropic Messages: the interpreter ``usage`` lists in its registry."""

from __future__ import annotations

import json
from typing import Any

from ._usage_base import Extract, _int, _meta, _str, error_message
from .record import Delta

# The event that ends a complete stream.
MESSAGES_END = frozenset({"message_stop"})


def _anthropic_usage(u: Any, st: Extract, with_output: bool) -> None:
    """Input = input_tokens + cache reads + cache writes (DESIGN: cached included)."""
    if type(u) is not dict:
        return
    parts = st.parts
    for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
        v = _int(u.get(k))
        if v is not None:
            parts[k] = v
    if "input_tokens" in parts:
        st.input_tokens = (
            parts["input_tokens"]
            + parts.get("cache_read_input_tokens", 0)
            + parts.get("cache_creation_input_tokens", 0)
        )
    if "cache_read_input_tokens" in parts:
        st.cached_tokens = parts["cache_read_input_tokens"]
    # message_start's output_tokens is a placeholder (1 or so): only the final count is kept.
    if with_output and (o := _int(u.get("output_tokens"))) is not None:
        st.output_tokens = o


def _tool_fragment(idx: Any, block: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "index": idx,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": block.get("name"), "arguments": ""},
        }
    ]


def messages_event(obj: dict[str, Any], name: str | None, st: Extract) -> Delta | None:
    """One Anthropic Messages stream event."""
    t = obj.get("type") or name
    if t == "content_block_delta":
        d = obj.get("delta")
        if type(d) is not dict:
            return None
        dt = d.get("type")
        if dt == "text_delta":
            text = d.get("text")
            return Delta(text) if text and type(text) is str else None
        if dt == "input_json_delta":
            frag, idx = d.get("partial_json"), obj.get("index")
            if not frag or type(frag) is not str:
                return None  # Anthropic opens every tool input with an empty fragment
            st.tools.add(idx, args=frag)
            return Delta("", [{"index": idx, "function": {"arguments": frag}}])
        if dt == "thinking_delta":
            text = d.get("thinking")
            return Delta("", None, text) if text and type(text) is str else None
        return None  # signature_delta, citations_delta
    if t == "content_block_start":
        b, idx = obj.get("content_block"), obj.get("index")
        if type(b) is not dict:
            return None
        bt = b.get("type")
        if bt == "tool_use" or bt == "server_tool_use":
            st.tools.add(idx, b.get("id"), b.get("name"))
            if b.get("input"):  # normally {} with the input streamed as deltas
                st.tools.set_arguments(idx, json.dumps(b["input"], ensure_ascii=False))
            return Delta("", _tool_fragment(idx, b))
        if bt == "text" and _str(b.get("text")):
            return Delta(b["text"])
        if bt == "thinking" and _str(b.get("thinking")):
            return Delta("", None, b["thinking"])
        return None
    if t == "message_start":
        m = obj.get("message")
        if type(m) is dict:
            _meta(m, st)
            _anthropic_usage(m.get("usage"), st, False)
    elif t == "message_delta":
        d = obj.get("delta")
        if type(d) is dict and _str(d.get("stop_reason")):
            st.finish_reason = d["stop_reason"]
        _anthropic_usage(obj.get("usage"), st, True)
    elif t == "error":
        st.error = error_message(obj)
    return None


def messages_body(obj: dict[str, Any], st: Extract) -> Delta | None:
    """A non-streamed Anthropic ``message``."""
    _meta(obj, st)
    if _str(obj.get("stop_reason")):
        st.finish_reason = obj["stop_reason"]
    _anthropic_usage(obj.get("usage"), st, True)
    text, reasoning = [], []
    for b in obj.get("content") or ():
        if type(b) is not dict:
            continue
        bt = b.get("type")
        if bt == "text":
            text.append(_str(b.get("text")) or "")
        elif bt == "thinking":
            reasoning.append(_str(b.get("thinking")) or "")
        elif bt == "tool_use" or bt == "server_tool_use":
            st.tools.add_complete(b.get("id"), b.get("name"), json.dumps(b.get("input") or {}, ensure_ascii=False))
    return Delta("".join(text), None, "".join(reasoning))
