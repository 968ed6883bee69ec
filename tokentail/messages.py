"""One message model: content → text, previews, provider messages in one shape (pure).

Every part of tokentail that reads a prompt or a reply goes through here: the proxy's
live hub (list previews), its usage interpreters (a non-streamed reply's text), its session
tracker (continuation hashes), the dashboard (detail and list rows) and the simulator
(token counts, the user's question). No I/O, no state.

**Content → text**, one rule, whatever the API (OpenAI chat parts ``{"type": "text"}``,
Responses ``input_text`` / ``output_text`` / ``refusal``, Anthropic ``text`` blocks, bare
strings, Anthropic ``tool_result`` blocks holding content of their own):

- text parts are concatenated as they are, with no separator. That is how a streamed
  reply's pieces and blocks join into the completion the proxy captures, so a reply the
  client sends back as parts reads exactly as it was captured (sessions hash both sides);
- any other part stands on a line of its own: a tool result's text and, when
  ``placeholders`` is asked for (display), ``[image_url]``-style markers for images,
  audio, files and thinking blocks. Tool calls (``tool_use``) are never text: a message
  carries them as ``tool_calls``.

**One shape** for a message, whatever its source (``message``, ``message_from_parts``)::

    {"role": str, "text": str, "tool_calls": [{"id", "name", "arguments"}],
     "tool_call_id": str | None, "reasoning": str}

``role`` is ``system`` (also for OpenAI's ``developer``), ``user``, ``assistant`` or ``tool``.

**Previews**: ``prompt_text`` is the last user turn with text (else the last turn with
text) of a prompt as the client sent it; ``preview`` cuts text to ``n`` characters with an
ellipsis. The browser takes the proxy's ``prompt_preview`` from ``request.start`` instead of
computing its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = [
    "PREVIEW_CHARS",
    "Message",
    "args_text",
    "as_list",
    "content_text",
    "last_turn_text",
    "message",
    "message_from_parts",
    "messages_from_prompt",
    "parts_text",
    "preview",
    "prompt_preview",
    "prompt_text",
]

PREVIEW_CHARS = 200
ELLIPSIS = "…"

Message = dict[str, Any]  # the one shape above; a plain dict so JSON and callers take it as is

# Tool results nest content; a client's body is untrusted, and this runs on the request path.
_MAX_NESTING = 16
# Parts that are tool calls, carried as ``tool_calls`` and never as text.
_TOOL_CALL_PARTS = frozenset({"tool_use", "function_call", "tool_call"})


# --- content -> text ------------------------------------------------------------------------


class _Joiner:
    """The separator rule: text pieces concatenate; a block stands on a line of its own."""

    __slots__ = ("_after_block", "_out")

    def __init__(self) -> None:
        self._out: list[str] = []
        self._after_block = False

    def text(self, s: str) -> None:
        if not s:
            return
        if self._after_block:
            self._out.append("\n")
            self._after_block = False
        self._out.append(s)

    def block(self, s: str) -> None:
        if not s:
            return
        if self._out:
            self._out.append("\n")
        self._out.append(s)
        self._after_block = True

    def result(self) -> str:
        return "".join(self._out)


def _part_type(p: Mapping[str, Any]) -> str:
    t = p.get("type")
    return t if isinstance(t, str) and t else "part"


def content_text(content: Any, *, placeholders: bool = False, _depth: int = 0) -> str:
    """The text of a message ``content``: a string, or a list of parts (see the module docstring).

    ``placeholders=True`` (display) marks non-text parts as ``[type]`` and shows any other
    JSON value as JSON; without it they give no text.
    """
    if isinstance(content, str):
        return content
    if isinstance(content, list) and _depth < _MAX_NESTING:
        j = _Joiner()
        for p in content:
            if isinstance(p, str):
                j.text(p)
            elif not isinstance(p, dict):
                continue
            elif isinstance(p.get("text"), str):
                j.text(p["text"])
            elif p.get("type") == "refusal" and isinstance(p.get("refusal"), str):
                j.text(p["refusal"])
            elif p.get("type") == "tool_result":
                j.block(content_text(p.get("content"), placeholders=placeholders, _depth=_depth + 1))
            elif placeholders and _part_type(p) not in _TOOL_CALL_PARTS:
                j.block(f"[{_part_type(p)}]")
        return j.result()
    if content is None or not placeholders or isinstance(content, list):
        return ""
    return json.dumps(content, ensure_ascii=False, default=str)


def parts_text(parts: Iterable[Any] | None, kinds: tuple[str, ...] = ("text",)) -> str:
    """The text of GenAI parts (``{"type": "text", "content": ...}``, as spans store them), same rule."""
    j = _Joiner()
    for p in parts or ():
        if isinstance(p, str):
            j.text(p)
        elif isinstance(p, dict) and p.get("type") in kinds and isinstance(p.get("content"), str):
            j.text(p["content"])
    return j.result()


def preview(text: str, n: int = PREVIEW_CHARS) -> str:
    """``text`` cut to at most ``n`` characters, the last one an ellipsis when it was cut."""
    if len(text) <= n:
        return text
    return text[: max(0, n - 1)] + ELLIPSIS if n > 0 else ""


# --- small JSON helpers ---------------------------------------------------------------------


def as_list(v: Any) -> list[Any]:
    """A list, from a list or from JSON text holding one (spans store messages as JSON text)."""
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
    """Tool-call arguments as text: as sent when a string, else indented JSON."""
    if a is None:
        return ""
    return a if isinstance(a, str) else json.dumps(a, ensure_ascii=False, indent=2, default=str)


# --- provider messages -> one shape ---------------------------------------------------------


def _shape(role: str, text: str, tool_calls: list[dict[str, Any]] | None = None) -> Message:
    return {"role": role, "text": text, "tool_calls": tool_calls or [], "tool_call_id": None, "reasoning": ""}


def _role_text(m: dict[str, Any]) -> tuple[str, str]:
    kind = m.get("type")
    role = m.get("role") or ("tool" if kind == "function_call_output" else "assistant" if kind else "user")
    content = m.get("content")
    text = content_text(content, placeholders=True) if content is not None else args_text(m.get("output"))
    return ("system" if role == "developer" else str(role)), text


def message(m: Any) -> Message:
    """An OpenAI chat / Responses / Anthropic message, as the client sent it, in the one shape."""
    if not isinstance(m, dict):
        return _shape("user", str(m))
    tools: list[dict[str, Any]] = []
    calls = m.get("tool_calls")
    for tc in calls if isinstance(calls, list) else ():
        fn = tc.get("function") if isinstance(tc, dict) else None
        fn = fn if isinstance(fn, dict) else {}
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
    if m.get("type") == "function_call":  # a Responses API item
        tools.append({"id": m.get("call_id"), "name": m.get("name"), "arguments": args_text(m.get("arguments"))})
    role, text = _role_text(m)
    out = _shape(role, text, tools)
    if role == "tool":
        out["tool_call_id"] = m.get("tool_call_id") or m.get("call_id")
    return out


def message_from_parts(m: Any) -> Message:
    """A GenAI parts-based message (as stored in spans) in the one shape."""
    if not isinstance(m, dict):
        return _shape("user", str(m))
    parts = as_list(m.get("parts"))
    dicts = [p for p in parts if isinstance(p, dict)]
    tools = [
        {"id": p.get("id"), "name": p.get("name"), "arguments": args_text(p.get("arguments"))}
        for p in dicts
        if p.get("type") == "tool_call"
    ]
    responses = [p for p in dicts if p.get("type") == "tool_call_response"]
    text = parts_text(parts)
    if responses and not text:
        text = "\n".join(args_text(p.get("response")) for p in responses)
    others = [p for p in dicts if p.get("type") not in ("text", "reasoning", "tool_call", "tool_call_response")]
    if others and not text:
        text = "\n".join(f"[{_part_type(p)}]" for p in others)
    out = _shape(str(m.get("role") or "user"), text, tools)
    out["tool_call_id"] = responses[0].get("id") if responses else None
    out["reasoning"] = parts_text(parts, ("reasoning",))
    return out


def _reversed_items(prompt: Mapping[str, Any]) -> Iterator[Any]:
    """The prompt's messages as sent, last first (the system prompt last), none copied."""
    if isinstance(prompt.get("messages"), list):
        yield from reversed(prompt["messages"])
    elif prompt.get("input") is not None:
        inp = prompt["input"]
        if isinstance(inp, list):
            yield from reversed(inp)
        else:
            yield {"role": "user", "content": inp}
    elif prompt.get("prompt") is not None:  # Completions: a string or a batch of them
        p = prompt["prompt"]
        yield {"role": "user", "content": "\n".join(map(str, p if isinstance(p, list) else [p]))}
    system = prompt.get("system", prompt.get("instructions"))
    if system:
        yield {"role": "system", "content": system}


def messages_from_prompt(prompt: Mapping[str, Any]) -> list[Message]:
    """The prompt of a request as the client sent it (``messages`` | ``input`` | ``prompt``,
    with ``system`` or ``instructions``; a live ``request.start`` holds these keys), system first."""
    out = [message(m) for m in _reversed_items(prompt)]
    out.reverse()
    return out


def last_turn_text(reversed_messages: Iterable[Message]) -> str:
    """The last user turn with text, else the last turn with text; messages come last first."""
    fallback = None
    for m in reversed_messages:
        if not m.get("text"):
            continue
        if m.get("role") == "user":
            return str(m["text"])
        if fallback is None:
            fallback = str(m["text"])
    return fallback or ""


def prompt_text(prompt: Mapping[str, Any]) -> str:
    """What a list row shows of a prompt: its last user turn (see ``last_turn_text``).

    Runs on the proxy's request path: only role and text are read, message by message from
    the end, and it stops at the first user turn with text.
    """
    turns = (_role_text(m) if isinstance(m, dict) else ("user", str(m)) for m in _reversed_items(prompt))
    return last_turn_text({"role": role, "text": text} for role, text in turns)


def prompt_preview(prompt: Mapping[str, Any], n: int = PREVIEW_CHARS) -> str:
    """``prompt_text`` cut to ``n`` characters."""
    return preview(prompt_text(prompt), n)
