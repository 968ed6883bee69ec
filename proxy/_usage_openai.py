"""OpenAI chat completions, legacy text completions and embeddings (also vLLM, SGLang,
llama.cpp, Ollama, LM Studio, DeepSeek): the interpreters ``usage`` lists in its registry."""

from __future__ import annotations

import json
from typing import Any

from ._usage_base import Extract, _content_text, _int, _meta, _str, _token_usage, error_message
from .record import Delta

# --- OpenAI chat completions (vLLM, SGLang, llama.cpp, Ollama, LM Studio, DeepSeek) -------

# (input, output, details with cached_tokens, DeepSeek's top-level cache-hit count)
_CHAT_USAGE = ("prompt_tokens", "completion_tokens", "prompt_tokens_details", "prompt_cache_hit_tokens")


def _llamacpp_timings(obj: dict[str, Any], st: Extract) -> None:
    t = obj.get("timings")
    if type(t) is dict:
        st.timings = t
        if st.cached_tokens is None:  # older llama.cpp reports the prompt cache only here
            st.cached_tokens = _int(t.get("cache_n"))


def _choice0(obj: dict[str, Any], st: Extract) -> dict[str, Any] | None:
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


def _reasoning(d: dict[str, Any]) -> str:
    r = d.get("reasoning_content") or d.get("reasoning")  # DeepSeek/vLLM/SGLang, Ollama/newer vLLM
    return r if type(r) is str else ""


def chat_event(obj: dict[str, Any], name: str | None, st: Extract) -> Delta | None:
    """One ``chat.completion.chunk``."""
    if st.id is None or st.model is None:  # the same in every chunk
        _meta(obj, st)
    u = obj.get("usage")  # null on ordinary chunks; vLLM's continuous_usage_stats: on all
    if u:
        _token_usage(u, st, _CHAT_USAGE)
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


def chat_body(obj: dict[str, Any], st: Extract) -> Delta | None:
    """A non-streamed ``chat.completion``."""
    _meta(obj, st)
    _token_usage(obj.get("usage"), st, _CHAT_USAGE)
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
            st.tools.add_complete(
                tc.get("id"), fn.get("name"), args if type(args) is str else json.dumps(args, ensure_ascii=False)
            )
    fc = msg.get("function_call")
    if type(fc) is dict and not st.tools:
        st.tools.add_complete(None, fc.get("name"), str(fc.get("arguments") or ""))
    return Delta(text, None, _reasoning(msg))


# --- legacy text completions ------------------------------------------------------------


def completions_event(obj: dict[str, Any], name: str | None, st: Extract) -> Delta | None:
    """One ``text_completion`` chunk."""
    _meta(obj, st)
    u = obj.get("usage")
    if u:
        _token_usage(u, st, _CHAT_USAGE)
    if "timings" in obj:
        _llamacpp_timings(obj, st)
    ch = _choice0(obj, st)
    if ch is None:
        if obj.get("object") == "error":
            st.error = error_message(obj)
        return None
    text = ch.get("text")
    return Delta(text) if text and type(text) is str else None


def completions_body(obj: dict[str, Any], st: Extract) -> Delta | None:
    """A non-streamed ``text_completion``: same shape as its chunks."""
    return completions_event(obj, None, st)


# --- embeddings ---------------------------------------------------------------------------


def embeddings_event(obj: dict[str, Any], name: str | None, st: Extract) -> Delta | None:
    return None  # embeddings never stream


def embeddings_body(obj: dict[str, Any], st: Extract) -> Delta | None:
    """An embeddings list: input tokens only; no output, so a reported usage means output 0."""
    m = obj.get("model")
    if type(m) is str and m:
        st.model = m
    u = obj.get("usage")
    if type(u) is dict and (p := _int(u.get("prompt_tokens"))) is not None:
        st.input_tokens = p
        st.output_tokens = 0
    return None
