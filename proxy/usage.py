"""Per-provider reading of response JSON: text, tool calls, reasoning, finish reason, usage.

One ``Interpreter`` per endpoint family, all listed in ``INTERPRETERS`` and looked up with
``interpreter_for(endpoint)``. Each has two entry points, pure functions over parsed JSON:
``event(obj, event_name, st)`` reads one streamed event and returns the ``Delta`` it carries
(or None); ``body(obj, st)`` reads a whole non-streamed response and returns its completion
as one ``Delta``. Everything else they find (model, id, finish reason, token counts, tool
calls) goes into the ``Extract`` ``st``; the tap applies it to the ``RequestRecord``.

Token counts follow DESIGN: input counts cached tokens included; ``None`` is unknown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from .record import Delta

# --- shared state and helpers -------------------------------------------------------------


class ToolCalls:
    """Assembles tool calls from fragments keyed by index, into OpenAI's complete shape.

    Argument text beyond ``budget`` characters is dropped (``truncated`` set) so a runaway
    tool call cannot grow memory without bound.
    """

    __slots__ = ("_calls", "_budget", "truncated", "_last")

    def __init__(self, budget: int = 1 << 20) -> None:
        self._calls: dict[Any, list] = {}  # index -> [id, name, [argument parts], final args | None]
        self._budget = budget
        self._last: Any = None
        self.truncated = False

    def __len__(self) -> int:
        return len(self._calls)

    def add(self, index: Any, id: str | None = None, name: str | None = None, args: str | None = None) -> None:
        """Merge one fragment: the first id and name win, argument text is appended."""
        call = self._calls.get(index)
        if call is None:
            call = self._calls[index] = [None, None, [], None]
        self._last = index
        if id and call[0] is None:
            call[0] = id
        if name and call[1] is None:
            call[1] = name
        if args and type(args) is str:
            if len(args) > self._budget:
                args = args[: self._budget]
                self.truncated = True
            self._budget -= len(args)
            call[2].append(args)

    def add_openai(self, fragments: Any) -> None:
        """OpenAI chat ``delta.tool_calls`` fragments (also vLLM, llama.cpp, Ollama...)."""
        for f in fragments if type(fragments) is list else ():
            if type(f) is not dict:
                continue
            fn = f.get("function") or {}
            index = f.get("index")
            if index is None:  # some servers omit it: a new id starts a new call
                fid = f.get("id")
                new = self._last is None or (fid and fid != self._calls[self._last][0])
                index = len(self._calls) if new else self._last
            self.add(index, f.get("id"), fn.get("name"), fn.get("arguments"))

    def set_arguments(self, index: Any, args: Any) -> None:
        """The complete arguments, when the provider sends them at the end."""
        if index in self._calls and type(args) is str:
            self._calls[index][3] = args

    def add_complete(self, id: str | None, name: str | None, args: str) -> None:
        """A whole call from a non-streamed body."""
        index = len(self._calls)
        self.add(index, id, name)
        self.set_arguments(index, args)

    def result(self) -> list[dict[str, Any]]:
        """The calls in index order, as ``{"id","type":"function","function":{"name","arguments"}}``."""
        try:
            items = sorted(self._calls.items())
        except TypeError:  # mixed index types from a confused upstream: keep arrival order
            items = list(self._calls.items())
        return [{"id": c[0], "type": "function",
                 "function": {"name": c[1], "arguments": c[3] if c[3] is not None else "".join(c[2])}}
                for _, c in items]


@dataclass(slots=True)
class Extract:
    """What the interpreters found in one response, before the tap applies it."""

    model: str | None = None
    id: str | None = None
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    error: str | None = None
    timings: dict[str, Any] | None = None  # llama.cpp server ``timings``
    tools: ToolCalls = field(default_factory=ToolCalls)
    parts: dict[str, int] = field(default_factory=dict)  # Anthropic usage pieces seen so far


def _int(v: Any) -> int | None:
    """A token count, or None for anything else (bool, negative, string...)."""
    if type(v) is int:
        return v if v >= 0 else None
    if type(v) is float and v.is_integer() and v >= 0:
        return int(v)
    return None


def _str(v: Any) -> str | None:
    return v if type(v) is str and v else None


def _meta(obj: dict, st: Extract) -> None:
    m = obj.get("model")
    if type(m) is str and m:
        st.model = m
    i = obj.get("id")
    if type(i) is str and i:
        st.id = i


def _content_text(c: Any) -> str:
    """Message content as text: a string, or a list of parts with ``text``."""
    if type(c) is str:
        return c
    if type(c) is list:
        return "".join(p["text"] for p in c if type(p) is dict and type(p.get("text")) is str)
    return ""


def error_message(obj: dict) -> str:
    """A short human-readable message from an error object (OpenAI, Anthropic, vLLM shapes).

    The text is the upstream's own; the caller should pass it through redaction.
    """
    err = obj.get("error")
    if err is None or err is True:
        err = obj
    if type(err) is dict:
        msg, kind = err.get("message"), err.get("type")
        if kind is None or kind == "error":  # Responses/vLLM put the useful name in "code"
            kind = err.get("code")
        text = f"{kind}: {msg}" if kind and msg else str(msg or kind or "error")
    else:
        text = str(err)
    return text[:200]


# --- OpenAI chat completions (vLLM, SGLang, llama.cpp, Ollama, LM Studio, DeepSeek) -------


def _openai_usage(u: Any, st: Extract) -> None:
    if type(u) is not dict:  # "usage": null on ordinary chunks
        return
    p, c = _int(u.get("prompt_tokens")), _int(u.get("completion_tokens"))
    if p is not None:
        st.input_tokens = p
    if c is not None:
        st.output_tokens = c
    d = u.get("prompt_tokens_details")
    cached = _int(d.get("cached_tokens")) if type(d) is dict else None
    if cached is None:
        cached = _int(u.get("prompt_cache_hit_tokens"))  # DeepSeek
    if cached is not None:
        st.cached_tokens = cached


def _llamacpp_timings(obj: dict, st: Extract) -> None:
    t = obj.get("timings")
    if type(t) is dict:
        st.timings = t
        if st.cached_tokens is None:  # older llama.cpp reports the prompt cache only here
            st.cached_tokens = _int(t.get("cache_n"))


def _choice0(obj: dict, st: Extract) -> dict | None:
    """Choice index 0 (the record keeps one completion); sets the finish reason."""
    choices = obj.get("choices")
    if not choices or type(choices) is not list:
        return None
    ch = choices[0]
    if type(ch) is not dict or ch.get("index", 0) != 0:
        ch = next((c for c in choices if type(c) is dict and c.get("index", 0) == 0), None)
        if ch is None:
            return None
    fr = ch.get("finish_reason")
    if fr and type(fr) is str:
        st.finish_reason = fr
    return ch


def _reasoning(d: dict) -> str:
    r = d.get("reasoning_content") or d.get("reasoning")  # DeepSeek/vLLM/SGLang, Ollama/newer vLLM
    return r if type(r) is str else ""


def chat_event(obj: dict, name: str | None, st: Extract) -> Delta | None:
    """One ``chat.completion.chunk``."""
    if st.id is None or st.model is None:  # the same in every chunk
        _meta(obj, st)
    u = obj.get("usage")  # null on ordinary chunks; vLLM's continuous_usage_stats: on all
    if u:
        _openai_usage(u, st)
    if "timings" in obj:
        _llamacpp_timings(obj, st)
    ch = _choice0(obj, st)
    if ch is None:
        if obj.get("object") == "error":  # older vLLM streams its error object bare
            st.error = error_message(obj)
        return None
    d = ch.get("delta")
    if not d or type(d) is not dict:
        return None
    text = d.get("content")
    if text and type(text) is not str:
        text = _content_text(text)
    refusal = d.get("refusal")
    if refusal and type(refusal) is str:
        text = (text or "") + refusal
    reasoning = _reasoning(d)
    tools = d.get("tool_calls")
    if tools and type(tools) is not list:
        tools = None
    if not tools and "function_call" in d and type(d["function_call"]) is dict:  # deprecated form
        tools = [{"index": 0, "type": "function", "function": d["function_call"]}]
    if tools:
        st.tools.add_openai(tools)
    if text or reasoning or tools:
        return Delta(text or "", tools or None, reasoning)
    return None


def chat_body(obj: dict, st: Extract) -> Delta | None:
    """A non-streamed ``chat.completion``."""
    _meta(obj, st)
    _openai_usage(obj.get("usage"), st)
    _llamacpp_timings(obj, st)
    ch = _choice0(obj, st)
    msg = ch.get("message") if ch else None
    if type(msg) is not dict:
        return None
    text = _content_text(msg.get("content")) + (_str(msg.get("refusal")) or "")
    for tc in msg.get("tool_calls") or ():
        if type(tc) is dict and type(tc.get("function")) is dict:
            fn = tc["function"]
            args = fn.get("arguments")
            st.tools.add_complete(tc.get("id"), fn.get("name"),
                                  args if type(args) is str else json.dumps(args, ensure_ascii=False))
    fc = msg.get("function_call")
    if type(fc) is dict and not st.tools:
        st.tools.add_complete(None, fc.get("name"), str(fc.get("arguments") or ""))
    return Delta(text, None, _reasoning(msg))


# --- legacy text completions ------------------------------------------------------------


def completions_event(obj: dict, name: str | None, st: Extract) -> Delta | None:
    """One ``text_completion`` chunk."""
    _meta(obj, st)
    u = obj.get("usage")
    if u:
        _openai_usage(u, st)
    if "timings" in obj:
        _llamacpp_timings(obj, st)
    ch = _choice0(obj, st)
    if ch is None:
        if obj.get("object") == "error":
            st.error = error_message(obj)
        return None
    text = ch.get("text")
    return Delta(text) if text and type(text) is str else None


def completions_body(obj: dict, st: Extract) -> Delta | None:
    """A non-streamed ``text_completion``: same shape as its chunks."""
    return completions_event(obj, None, st)


# --- OpenAI Responses API -----------------------------------------------------------------


def _responses_object(r: Any, st: Extract, final: bool) -> None:
    if type(r) is not dict:
        return
    _meta(r, st)
    if final and _str(r.get("status")):
        st.finish_reason = r["status"]
    u = r.get("usage")
    if type(u) is dict:
        i, o = _int(u.get("input_tokens")), _int(u.get("output_tokens"))
        if i is not None:
            st.input_tokens = i
        if o is not None:
            st.output_tokens = o
        d = u.get("input_tokens_details")
        if type(d) is dict and (c := _int(d.get("cached_tokens"))) is not None:
            st.cached_tokens = c
    if r.get("error"):
        st.error = error_message(r)


_RESPONSES_FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
_RESPONSES_META = frozenset({"response.created", "response.in_progress", "response.queued"})


def responses_event(obj: dict, name: str | None, st: Extract) -> Delta | None:
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
        return Delta("", [{"index": idx, "id": call_id, "type": "function",
                           "function": {"name": fname, "arguments": item.get("arguments") or ""}}])
    if t == "response.function_call_arguments.done":
        st.tools.set_arguments(obj.get("output_index"), obj.get("arguments"))
    elif t == "error":
        st.error = error_message(obj)
    elif t in _RESPONSES_FINAL:
        _responses_object(obj.get("response"), st, True)
    elif t in _RESPONSES_META:
        _responses_object(obj.get("response"), st, False)
    return None


def responses_body(obj: dict, st: Extract) -> Delta | None:
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
            st.tools.add_complete(item.get("call_id") or item.get("id"), item.get("name"),
                                  str(item.get("arguments") or ""))
        elif kind == "reasoning":
            for part in (item.get("summary") or []) + (item.get("content") or []):
                if type(part) is dict:
                    reasoning.append(_str(part.get("text")) or "")
    return Delta("".join(text), None, "".join(reasoning))


# --- Anthropic Messages -------------------------------------------------------------------


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
        st.input_tokens = (parts["input_tokens"] + parts.get("cache_read_input_tokens", 0)
                           + parts.get("cache_creation_input_tokens", 0))
    if "cache_read_input_tokens" in parts:
        st.cached_tokens = parts["cache_read_input_tokens"]
    # message_start's output_tokens is a placeholder (1 or so): only the final count is kept.
    if with_output and (o := _int(u.get("output_tokens"))) is not None:
        st.output_tokens = o


def _tool_fragment(idx: Any, block: dict) -> list[dict]:
    return [{"index": idx, "id": block.get("id"), "type": "function",
             "function": {"name": block.get("name"), "arguments": ""}}]


def messages_event(obj: dict, name: str | None, st: Extract) -> Delta | None:
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


def messages_body(obj: dict, st: Extract) -> Delta | None:
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


# --- embeddings ---------------------------------------------------------------------------


def embeddings_event(obj: dict, name: str | None, st: Extract) -> Delta | None:
    return None  # embeddings never stream


def embeddings_body(obj: dict, st: Extract) -> Delta | None:
    """An embeddings list: input tokens only; no output, so a reported usage means output 0."""
    m = obj.get("model")
    if type(m) is str and m:
        st.model = m
    u = obj.get("usage")
    if type(u) is dict and (p := _int(u.get("prompt_tokens"))) is not None:
        st.input_tokens = p
        st.output_tokens = 0
    return None


# --- the registry ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Interpreter:
    """How one endpoint family's responses read."""

    name: str
    event: Callable[[dict, str | None, Extract], Delta | None]
    body: Callable[[dict, Extract], Delta | None]
    usage_chunk: bool = False  # has OpenAI's usage-only chunk (stream_options.include_usage)
    has_output: bool = True  # False: output tokens are never estimated (embeddings)


def is_usage_chunk(obj: dict) -> bool:
    """OpenAI's usage-only chunk: ``{"choices": [], "usage": {...}}``."""
    return type(obj.get("usage")) is dict and not obj.get("choices")


_ANTHROPIC_TYPES = frozenset({"message_start", "message_delta", "message_stop", "content_block_start",
                              "content_block_delta", "content_block_stop", "message", "ping"})


def _sniff(obj: dict) -> Interpreter:
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
    "/chat/completions": Interpreter("chat", chat_event, chat_body, usage_chunk=True),
    "/completions": Interpreter("completions", completions_event, completions_body, usage_chunk=True),
    "/responses": Interpreter("responses", responses_event, responses_body),
    "/messages": Interpreter("messages", messages_event, messages_body),
    "/embeddings": Interpreter("embeddings", embeddings_event, embeddings_body, has_output=False),
}

# For any other endpoint: each object is read by the family its shape belongs to.
GENERIC = Interpreter("generic", lambda o, n, st: _sniff(o).event(o, n, st), lambda o, st: _sniff(o).body(o, st))


def interpreter_for(endpoint: str) -> Interpreter:
    """The interpreter for an endpoint path below /v1 (``/chat/completions``...)."""
    path = endpoint.split("?", 1)[0].rstrip("/")
    for suffix, interp in INTERPRETERS.items():
        if path.endswith(suffix):
            return interp
    return GENERIC


# --- estimation when the upstream reports nothing -------------------------------------------

_TEXT_KEYS = ("text", "content", "arguments", "thinking", "input", "output", "tool_calls")


def _chars(v: Any, depth: int = 0) -> int:
    """Characters of prompt text; token-id lists count 4 per id; media payloads count nothing."""
    if type(v) is str:
        return len(v)
    if depth > 32:
        return 0
    if type(v) is int:
        return 4
    if type(v) is list:
        return sum(_chars(x, depth + 1) for x in v)
    if type(v) is dict:
        n = sum(_chars(v[k], depth + 1) for k in _TEXT_KEYS if k in v)
        fn = v.get("function")
        return n + (_chars(fn, depth + 1) if type(fn) is dict else 0)
    return 0


def estimate_input_tokens(request_json: Any) -> int | None:
    """ceil(chars / 4) of the prompt (messages, system, instructions, prompt or input, tools).

    None when the request holds no prompt text at all: unknown is never 0.
    """
    if type(request_json) is not dict:
        return None
    n = 0
    for key in ("messages", "system", "instructions", "prompt", "input"):
        if key in request_json:
            n += _chars(request_json[key])
    if n and request_json.get("tools"):
        try:
            n += len(json.dumps(request_json["tools"]))
        except (TypeError, ValueError, RecursionError):
            pass
    return (n + 3) // 4 if n else None
