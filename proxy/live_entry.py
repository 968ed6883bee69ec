"""One request in the live hub's ring, and the pure shapes built from it.

``Entry`` is what ``LiveHub`` keeps per request: the ``request.start`` data, the text as
streamed so far, the ``request.end`` data once finished, and the bytes accounted for it.
The functions here build the ``request.start`` and ``request.end`` payloads, the
``/api/requests`` summary, match a search needle, estimate a value's memory and cap text at
a UTF-8 byte budget. No state beyond the entry, no I/O, no asyncio: ``live.py`` keeps the
ring and the pub/sub and calls these; SSE encoding is ``live_sse``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tokentail.messages import PREVIEW_CHARS, preview, prompt_text

from ._redact_stream import StreamRedactor
from .record import CANCELLED, ERROR, IN_FLIGHT, OK, RequestRecord
from .redact import Redactor

__all__ = [
    "PREVIEW_CHARS",
    "Entry",
    "Event",
    "Streams",
    "approx_size",
    "cap_utf8",
    "end_data",
    "matches",
    "snapshot_events",
    "start_data",
    "summary",
]


# (hub seq, event name, data, approx bytes, its SSE bytes shared by all subscribers: a
# ``live_sse.Wire``, or None for a snapshot's own events)
Event = tuple[int, str, dict[str, Any], int, Any]


class Streams:
    """The stream redactors of one in-flight request (``_redact_stream``): its text, its
    reasoning and each tool call's arguments (by index), so a secret the model streams in
    pieces is redacted in every sink the live hub feeds. Only released text leaves here:
    the tail that could still grow into a secret waits for the next piece or ``flush``.
    ``tools`` is each tool call as released so far (the in-flight detail shows it)."""

    __slots__ = ("_args", "_red", "fed_text", "reasoning", "text", "tools")

    def __init__(self, red: Redactor) -> None:
        self._red = red
        self.text = red.stream()
        self.reasoning = red.stream()
        self._args: dict[Any, StreamRedactor] = {}
        self.tools: dict[Any, dict[str, Any]] = {}
        self.fed_text = False  # text came as deltas (else the final text is redacted whole)

    def tool_fragments(self, fragments: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Tool-call fragments as they may be published: names and ids redacted, arguments
        released through the call's own stream redactor. The input is not changed."""
        out: list[dict[str, Any]] = []
        for f in fragments:
            if not isinstance(f, dict):
                continue
            idx = f.get("index")
            key = idx if isinstance(idx, (int, str)) else 0
            frag = self._red.redact_json({k: v for k, v in f.items() if k != "function"})
            fn = f.get("function")
            args: Any = None
            if isinstance(fn, dict):
                out_fn = self._red.redact_json({k: v for k, v in fn.items() if k != "arguments"})
                args = fn.get("arguments")
                if isinstance(args, str):
                    args = self._arg_stream(key).feed(args)
                elif args is not None:
                    args = self._red.redact_json(args)
                if args is not None:
                    out_fn["arguments"] = args
                frag["function"] = out_fn
            self._assemble(key, frag, args if isinstance(args, str) else "")
            out.append(frag)
        return out

    def flush_tools(self) -> list[dict[str, Any]]:
        """The held tail of each tool call's arguments, as fragments (none when nothing was held)."""
        out: list[dict[str, Any]] = []
        for key, sr in self._args.items():
            tail = sr.flush()
            if tail:
                frag = {"index": key, "function": {"arguments": tail}}
                self._assemble(key, frag, tail)
                out.append(frag)
        return out

    def _arg_stream(self, key: Any) -> StreamRedactor:
        sr = self._args.get(key)
        if sr is None:
            sr = self._args[key] = self._red.stream()
        return sr

    def _assemble(self, key: Any, frag: dict[str, Any], args: str) -> None:
        call = self.tools.get(key)
        if call is None:
            call = self.tools[key] = {"id": None, "type": "function", "function": {"name": None, "arguments": ""}}
        if call["id"] is None and frag.get("id"):
            call["id"] = frag["id"]
        fn = frag.get("function")
        if isinstance(fn, dict) and call["function"]["name"] is None and fn.get("name"):
            call["function"]["name"] = fn["name"]
        call["function"]["arguments"] += args


@dataclass(slots=True, eq=False)
class Entry:
    """One request of the ring. ``rec`` is set while in flight (tool calls are read from it
    on query) and cleared when it finishes or is evicted (its later deltas are then ignored)."""

    start: dict[str, Any]  # the request.start data (prompt already redacted)
    prompt_keys: tuple[str, ...]  # which keys of ``start`` are the prompt
    rec: RequestRecord | None
    buf: bytearray = field(default_factory=bytearray)  # text as released (redacted) so far
    rbuf: bytearray = field(default_factory=bytearray)  # reasoning, likewise
    streams: Streams | None = None  # in flight: the stream redactors of its fields
    # Events held back while the prompt is redacted off the loop (request.start not out yet).
    held: list[tuple[str, dict[str, Any], int]] | None = None
    text: str | None = None  # once finished: the whole text, redacted
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    deltas: int = 0
    truncated: bool = False
    ttft_ms: float | None = None
    end: dict[str, Any] | None = None  # the request.end data once finished
    size: int = 0  # bytes accounted for this entry
    # Raw (not yet redacted) text and reasoning of deltas batched while nobody listens (see
    # ``LiveHub.on_delta``): at most ``BATCH_CHARS`` characters, never read but to redact.
    pending: tuple[list[str], list[str]] | None = None
    pending_chars: int = 0

    @property
    def id(self) -> str:
        return str(self.start["id"])

    @property
    def status(self) -> str:
        return str(self.end["status"]) if self.end is not None else IN_FLIGHT

    def current_text(self) -> str:
        return self.text if self.text is not None else self.buf.decode("utf-8", "ignore")

    def current_reasoning(self) -> str:
        return self.reasoning if self.reasoning is not None else self.rbuf.decode("utf-8", "ignore")


def start_data(rec: RequestRecord, variant: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The ``request.start`` data of ``rec`` (its prompt already redacted), and its prompt keys.

    ``prompt_preview`` is computed here, once per request, so neither the summaries nor the
    browser compute their own.
    """
    start: dict[str, Any] = {
        "id": rec.id,
        "time": rec.started_at,
        "variant": rec.variant or variant,
        "model": rec.model,
        "endpoint": rec.endpoint,
        "stream": rec.stream,
        "params": dict(rec.params),
        "session_id": rec.session_id,
        "trace_id": rec.trace_id,
        "user": rec.user,
        "tags": list(rec.tags),
        "key_fingerprint": rec.key_fingerprint,
        "route": rec.route,
        "upstream_model": rec.upstream_model,
        "replay_of": rec.replay_of,
        "parsed": rec.parsed,  # False: the body was not JSON (forwarded as-is)
        "capture": rec.capture,  # metadata: no prompt or completion text, sizes and timings only
    }
    keys = tuple(k for k in rec.prompt if k not in start)  # messages | prompt | input (+ system)
    start.update((k, rec.prompt[k]) for k in keys)
    try:
        start["prompt_preview"] = preview(prompt_text(rec.prompt))
    except RecursionError:  # odd content nested past what json.dumps takes: no preview, no failure
        start["prompt_preview"] = ""
    return start, keys


def end_data(rec: RequestRecord, red: Redactor) -> dict[str, Any]:
    status = rec.status
    if status not in (OK, ERROR, CANCELLED):  # on_end means the request is over
        status = ERROR if rec.error else OK
    return {
        "id": rec.id,
        "status": status,
        "usage": rec.usage.as_dict(),
        "latency_ms": rec.latency_ms,
        "ttft_ms": rec.ttft_ms,
        "output_tps": rec.output_tps,
        "finish_reason": rec.finish_reason,
        "error": rec.error,
        # An upstream error body may echo the key: redact it like any text.
        "error_message": red.redact_text(rec.error_message) if rec.error_message else None,
        "http_status": rec.http_status,
        "response_model": rec.response_model,
        "truncated": rec.truncated,
        "malformed": rec.malformed,  # the response had something the tap could not parse
        "cost_usd": rec.cost_usd,  # null: unknown (no price for the model, or usage unknown)
    }


def summary(e: Entry) -> dict[str, Any]:
    st, end = e.start, e.end or {}
    if e.text is not None:
        text = e.text
    else:  # in flight: decode only the head of the buffer
        text = bytes(e.buf[: PREVIEW_CHARS * 4]).decode("utf-8", "ignore")
    return {
        "id": st["id"],
        "time": st["time"],
        "variant": st["variant"],
        "model": st["model"],
        "endpoint": st["endpoint"],
        "stream": st["stream"],
        "status": e.status,
        "usage": end.get("usage"),
        "latency_ms": end.get("latency_ms"),
        "ttft_ms": e.ttft_ms,
        "output_tps": end.get("output_tps"),
        "finish_reason": end.get("finish_reason"),
        "error": end.get("error"),
        "truncated": e.truncated,
        "session_id": st["session_id"],
        "user": st["user"],
        "tags": st["tags"],
        "key_fingerprint": st["key_fingerprint"],
        "route": st["route"],
        "replay_of": st.get("replay_of"),
        "cost_usd": end.get("cost_usd"),
        "text_preview": preview(text),
        "prompt_preview": st["prompt_preview"],
    }


def _strings(obj: Any) -> Iterator[str]:
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, str):
            yield o
        elif isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, (list, tuple)):
            stack.extend(o)


def matches(e: Entry, needle: str) -> bool:
    if needle in e.current_text().casefold():
        return True
    return any(needle in s.casefold() for s in _strings([e.start[k] for k in e.prompt_keys]))


def approx_size(obj: Any) -> int:
    """Rough memory of a JSON-like value: string lengths plus a little per node."""
    total = 0
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, str):
            total += len(o) + 50
        elif isinstance(o, dict):
            total += 100
            stack.extend(o.values())
        elif isinstance(o, (list, tuple)):
            total += 60
            stack.extend(o)
        else:
            total += 24
    return total


def cap_utf8(s: str, limit: int) -> tuple[str, bool]:
    """``s`` cut to at most ``limit`` UTF-8 bytes, and whether it was cut."""
    if len(s) * 4 <= limit:  # cheap: cannot be over
        return s, False
    if limit <= 0:
        return "", True
    raw = s.encode("utf-8", "replace")
    if len(raw) <= limit:
        return s, False
    return raw[:limit].decode("utf-8", "ignore"), True


def snapshot_events(
    boot_id: str, head: int, entries: Iterable[Entry], tools: Callable[[Entry], list[dict[str, Any]]]
) -> list[Event]:
    """A snapshot of ``entries`` at hub seq ``head`` (see ``live``'s docstring): a ``snapshot``
    marker, then per entry ``request.start``, one ``request.delta`` holding everything so far
    (``tools(e)``: its tool calls, redacted) and ``request.end`` once finished."""
    entries = list(entries)
    out: list[Event] = [(head, "snapshot", {"boot_id": boot_id, "requests": len(entries)}, 0, None)]
    for e in entries:
        out.append((head, "request.start", e.start, 0, None))
        text, reasoning, calls = e.current_text(), e.current_reasoning(), tools(e)
        if text or reasoning or calls:
            d: dict[str, Any] = {"id": e.id, "seq": e.deltas, "text": text, "snapshot": True}
            if reasoning:
                d["reasoning"] = reasoning
            if calls:
                d["tool_calls"] = calls
            if e.ttft_ms is not None:
                d["ttft_ms"] = e.ttft_ms
            out.append((head, "request.delta", d, 0, None))
        if e.end is not None:
            out.append((head, "request.end", e.end, 0, None))
    return out
