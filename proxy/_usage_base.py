"""What the per-provider interpreters share: the ``Extract`` they fill, the ``ToolCalls``
assembler, the error-message reader and small JSON-reading helpers.

Private to ``usage`` and its ``_usage_*`` provider modules; import the public names from
``usage``. Kept apart from ``usage`` so the provider modules and the registry import it one
way only: ``_usage_base`` <- ``_usage_*`` <- ``usage``, with no cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tokentail.messages import content_text


class ToolCalls:
    """Assembles tool calls from fragments keyed by index, into OpenAI's complete shape.

    Argument text beyond ``budget`` characters is dropped (``truncated`` set) so a runaway
    tool call cannot grow memory without bound.
    """

    __slots__ = ("_budget", "_calls", "_last", "truncated")

    def __init__(self, budget: int = 1 << 20) -> None:
        self._calls: dict[Any, list[Any]] = {}  # index -> [id, name, [argument parts], final args | None]
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
        return [
            {
                "id": c[0],
                "type": "function",
                "function": {"name": c[1], "arguments": c[3] if c[3] is not None else "".join(c[2])},
            }
            for _, c in items
        ]


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


def _meta(obj: dict[str, Any], st: Extract) -> None:
    m = obj.get("model")
    if type(m) is str and m:
        st.model = m
    i = obj.get("id")
    if type(i) is str and i:
        st.id = i


def _content_text(c: Any) -> str:
    """Message content as text: the one rule of ``tokentail.messages`` (text parts concatenate)."""
    return c if type(c) is str else content_text(c)


def error_message(obj: dict[str, Any]) -> str:
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


def _token_usage(u: Any, st: Extract, keys: tuple[str, str, str, str | None]) -> None:
    """Token counts from an OpenAI-shaped ``usage``, named by ``keys``: (input, output,
    details holding ``cached_tokens``, a top-level cached-count fallback or None).

    Chat and Responses name the same counts differently (``_usage_openai._CHAT_USAGE``,
    ``_usage_responses._RESPONSES_USAGE``). A count absent or not a count leaves ``st`` as it was.
    """
    if type(u) is not dict:  # "usage": null on ordinary chat chunks
        return
    input_key, output_key, details_key, cached_key = keys
    i, o = _int(u.get(input_key)), _int(u.get(output_key))
    if i is not None:
        st.input_tokens = i
    if o is not None:
        st.output_tokens = o
    d = u.get(details_key)
    cached = _int(d.get("cached_tokens")) if type(d) is dict else None
    if cached is None and cached_key:
        cached = _int(u.get(cached_key))
    if cached is not None:
        st.cached_tokens = cached
