"""The OpenAI Responses API: the interpreter ``usage`` lists in its registry."""

from __future__ import annotations

from typing import Any

from ._usage_base import Extract, _meta, _str, _token_usage, error_message
from .record import Delta

_RESPONSES_USAGE = ("input_tokens", "output_tokens", "input_tokens_details", None)


def _responses_object(r: Any, st: Extract, final: bool) -> None:
    if type(r) is not dict:
        return
    _meta(r, st)
    if final and _str(r.get("status")):
        st.finish_reason = r["status"]
    _token_usage(r.get("usage"), st, _RESPONSES_USAGE)
    if r.get("error"):
        st.error = error_message(r)


# The events that end a stream (a failed response too: the stream is complete and says why).
RESPONSES_END = frozenset({"response.completed", "response.incomplete", "response.failed"})
_RESPONSES_META = frozenset({"response.created", "response.in_progress", "response.queued"})


def responses_event(obj: dict[str, Any], name: str | None, st: Extract) -> Delta | None:
    """One Responses API stream event (``type`` names it, as does the SSE ``event:``)."""
    t = obj.get("type") or name
    if t == "response.output_text.delta" or t == "response.refusal.delta":
        text = obj.get("delta")
        return Delta(text) if text and type(text) is str else None
    if t == "response.function_call_arguments.delta":
        frag, idx = obj.get("delta"), obj.get("output_index")
        if not frag or type(frag) is not str:
            return None
        st.tools.add(idx, args=frag)
        return Delta("", [{"index": idx, "function": {"arguments": frag}}])
    if t == "response.reasoning_summary_text.delta" or t == "response.reasoning_text.delta":
        text = obj.get("delta")
        return Delta("", None, text) if text and type(text) is str else None
    if t == "response.output_item.added" or t == "response.output_item.done":
        item, idx = obj.get("item"), obj.get("output_index")
        if type(item) is not dict or item.get("type") != "function_call":
            return None
        call_id, fname = item.get("call_id") or item.get("id"), item.get("name")
        if t == "response.output_item.done":
            st.tools.add(idx, call_id, fname)
            st.tools.set_arguments(idx, item.get("arguments"))
            return None
        st.tools.add(idx, call_id, fname, item.get("arguments"))
        return Delta(
            "",
            [
                {
                    "index": idx,
                    "id": call_id,
                    "type": "function",
                    "function": {"name": fname, "arguments": item.get("arguments") or ""},
                }
            ],
        )
    if t == "response.function_call_arguments.done":
        st.tools.set_arguments(obj.get("output_index"), obj.get("arguments"))
    elif t == "error":
        st.error = error_message(obj)
    elif t in RESPONSES_END:
        _responses_object(obj.get("response"), st, True)
    elif t in _RESPONSES_META:
        _responses_object(obj.get("response"), st, False)
    return None


def responses_body(obj: dict[str, Any], st: Extract) -> Delta | None:
    """A non-streamed ``response`` object."""
    _responses_object(obj, st, True)
    text, reasoning = [], []
    for item in obj.get("output") or ():
        if type(item) is not dict:
            continue
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if type(part) is dict:
                    text.append(_str(part.get("text")) or _str(part.get("refusal")) or "")
        elif kind == "function_call":
            st.tools.add_complete(
                item.get("call_id") or item.get("id"), item.get("name"), str(item.get("arguments") or "")
            )
        elif kind == "reasoning":
            for part in (item.get("summary") or []) + (item.get("content") or []):
                if type(part) is dict:
                    reasoning.append(_str(part.get("text")) or "")
    return Delta("".join(text), None, "".join(reasoning))
