"""Prompts and completions in one shape, whatever API they came from (pure).

The proxy's live feed keeps a request's prompt as the client sent it (OpenAI chat,
Responses, Completions, Anthropic Messages); the collector stores the GenAI parts-based
messages of its span. The detail page and the list rows read both as
``{role, text, tool_calls: [{id, name, arguments}], tool_call_id, reasoning}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def parts_text(parts: Iterable[Any], kinds: tuple[str, ...] = ("text",)) -> str:
    out = []
    for p in parts or ():
        if isinstance(p, str):
            out.append(p)
        elif isinstance(p, dict) and p.get("type") in kinds and isinstance(p.get("content"), str):
            out.append(p["content"])
    return "".join(out) if kinds == ("reasoning",) else "\n".join(out)


def as_list(v: Any) -> list:
    if isinstance(v, list):
        return v
    if isinstance(v, str):
        try:
            parsed = json.loads(v)
        except ValueError:
            return [v]
        return parsed if isinstance(parsed, list) else [parsed]
    return []


def args_text(a: Any) -> str:
    if a is None:
        return ""
    return a if isinstance(a, str) else json.dumps(a, ensure_ascii=False, indent=2)


def message_from_parts(m: Any) -> dict[str, Any]:
    """A GenAI parts-based message (as stored in spans) in the dashboard's shape."""
    if not isinstance(m, dict):
        return {"role": "user", "text": str(m), "tool_calls": [], "tool_call_id": None, "reasoning": ""}
    parts = as_list(m.get("parts"))
    tools = [
        {"id": p.get("id"), "name": p.get("name"), "arguments": args_text(p.get("arguments"))}
        for p in parts
        if isinstance(p, dict) and p.get("type") == "tool_call"
    ]
    responses = [p for p in parts if isinstance(p, dict) and p.get("type") == "tool_call_response"]
    text = parts_text(parts)
    if responses and not text:
        text = "\n".join(args_text(p.get("response")) for p in responses)
    others = [
        p
        for p in parts
        if isinstance(p, dict) and p.get("type") not in ("text", "reasoning", "tool_call", "tool_call_response")
    ]
    if others and not text:
        text = ", ".join(f"[{p.get('type')}]" for p in others)
    return {
        "role": str(m.get("role") or "user"),
        "text": text,
        "tool_calls": tools,
        "tool_call_id": responses[0].get("id") if responses else None,
        "reasoning": parts_text(parts, ("reasoning",)),
    }


def content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for p in content:
            if isinstance(p, str):
                out.append(p)
            elif isinstance(p, dict):
                if isinstance(p.get("text"), str):
                    out.append(p["text"])
                elif p.get("type") == "tool_result":
                    out.append(content_text(p.get("content")))
                elif p.get("type") not in ("tool_use",):
                    out.append(f"[{p.get('type', 'part')}]")
        return "\n".join(o for o in out if o)
    if content is None:
        return ""
    return json.dumps(content, ensure_ascii=False)


def message_from_openai(m: Any) -> dict[str, Any]:
    """An OpenAI chat / Responses / Anthropic message as captured by the proxy."""
    if not isinstance(m, dict):
        return {"role": "user", "text": str(m), "tool_calls": [], "tool_call_id": None, "reasoning": ""}
    tools = []
    for tc in m.get("tool_calls") or []:
        fn = (tc.get("function") or {}) if isinstance(tc, dict) else {}
        tools.append(
            {
                "id": tc.get("id") if isinstance(tc, dict) else None,
                "name": fn.get("name"),
                "arguments": args_text(fn.get("arguments")),
            }
        )
    content = m.get("content")
    if isinstance(content, list):  # Anthropic tool_use blocks
        tools += [
            {"id": b.get("id"), "name": b.get("name"), "arguments": args_text(b.get("input"))}
            for b in content
            if isinstance(b, dict) and b.get("type") == "tool_use"
        ]
    kind = m.get("type")
    if kind == "function_call":  # Responses API items
        tools.append({"id": m.get("call_id"), "name": m.get("name"), "arguments": args_text(m.get("arguments"))})
    role = m.get("role") or ("tool" if kind == "function_call_output" else "assistant" if kind else "user")
    text = content_text(content) if content is not None else args_text(m.get("output"))
    return {
        "role": "system" if role == "developer" else str(role),
        "text": text,
        "tool_calls": tools,
        "tool_call_id": m.get("tool_call_id") or m.get("call_id") if role == "tool" else None,
        "reasoning": "",
    }


def messages_from_prompt(start: dict[str, Any]) -> list[dict[str, Any]]:
    """The prompt of a live ``request.start`` (or ``/api/requests/{id}``), system first."""
    out: list[dict[str, Any]] = []
    system = start.get("system", start.get("instructions"))
    if system:
        out.append(
            {"role": "system", "text": content_text(system), "tool_calls": [], "tool_call_id": None, "reasoning": ""}
        )
    if isinstance(start.get("messages"), list):
        out += [message_from_openai(m) for m in start["messages"]]
    elif "input" in start and start["input"] is not None:
        inp = start["input"]
        out += (
            [message_from_openai(m) for m in inp]
            if isinstance(inp, list)
            else [message_from_openai({"role": "user", "content": inp})]
        )
    elif start.get("prompt") is not None:
        p = start["prompt"]
        texts = p if isinstance(p, list) else [p]
        out.append(message_from_openai({"role": "user", "content": "\n".join(map(str, texts))}))
    return out


def prompt_preview(messages: list[dict[str, Any]]) -> str:
    """The last user turn, else the last message: what a list row shows of the prompt."""
    users = [m for m in messages if m.get("role") == "user" and m.get("text")]
    pick = users[-1] if users else next((m for m in reversed(messages) if m.get("text")), None)
    return pick["text"] if pick else ""
