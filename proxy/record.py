"""What one proxied request records, and the hooks that observe it.

The forward handler owns a ``RequestRecord`` per request and fills it in as the
request proceeds. Observers (the live hub, the metrics, the span exporter) are
told at three moments: ``on_start`` (request parsed, before the upstream call),
``on_delta`` (each text/tool-call delta from the upstream's stream) and
``on_end`` (once, whatever the outcome); ``on_prompt`` tells that a prompt redacted
off the event loop is now on the record (between ``on_start`` and ``on_end``, only for
such prompts; see ``RequestRecord.prompt_ready``). Observers run on the event loop inside
the request path, so they must be quick, must never await, and must never raise:
``Observers`` shields the request from an observer that does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger("tokentail.proxy")

# Status of a request as the live feed and the spans show it.
IN_FLIGHT = "in_flight"
OK = "ok"
ERROR = "error"
CANCELLED = "cancelled"

# Why a request failed (record.error / error.type / upstream_errors_total{reason}).
ERR_CONNECT = "connect"  # upstream refused / DNS / TLS
ERR_TIMEOUT = "timeout"  # idle timeout (time to first byte included)
ERR_DISCONNECT = "upstream_disconnect"  # upstream closed mid-response
ERR_STATUS = "status"  # upstream answered 4xx/5xx
# A 2xx stream that closed cleanly without its protocol's terminator ([DONE], message_stop,
# response.completed...) or without any event (llama.cpp's empty 200 when the prompt overflows).
ERR_INCOMPLETE = "incomplete_stream"
ERR_OPERATOR = "cancelled_by_operator"  # POST /api/requests/{id}/cancel (status cancelled)


@dataclass(slots=True)
class Usage:
    """Token counts of one request. ``None`` means unknown, never zero."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    source: str = "reported"  # "reported" by the upstream | "estimated" by tokentail

    def as_dict(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "source": self.source,
        }


@dataclass(slots=True)
class Delta:
    """One increment of the completion as the upstream streamed it."""

    text: str = ""
    tool_calls: list[dict[str, Any]] | None = None
    # Reasoning/thinking text where the provider separates it (Anthropic thinking,
    # DeepSeek/vLLM reasoning_content). Kept apart from the answer text.
    reasoning: str = ""


@dataclass(slots=True, eq=False)
class RequestRecord:
    id: str
    variant: str
    method: str
    endpoint: str  # path below /v1, e.g. "/chat/completions"
    started_at: float = field(default_factory=time.time)  # wall clock, epoch seconds
    t0: float = field(default_factory=time.perf_counter)  # monotonic start

    # From the request body (redacted before it is stored here).
    model: str | None = None
    stream: bool = False
    parsed: bool = True  # False when the body was not JSON (forwarded as-is)
    prompt: dict[str, Any] = field(default_factory=dict)  # {"messages": [...]} / {"prompt": ...} / {"input": ...}
    # A large prompt is redacted off the event loop (see ``forward``): until then ``prompt`` is
    # empty and ``prompt_ready`` False (the live hub holds ``request.start`` back), and
    # ``prompt_pending`` holds the capped, not yet redacted prompt for the handler to hand to
    # a worker thread. Observers never read ``prompt_pending``.
    prompt_ready: bool = True
    prompt_pending: dict[str, Any] | None = None
    # ``live_entry.approx_size`` of ``prompt`` when it was measured off the loop with its
    # redaction (a capped prompt of 20,000 small messages takes ~25 ms to walk); None: not yet.
    prompt_size: int | None = None
    params: dict[str, Any] = field(default_factory=dict)  # temperature, max_tokens, ...
    session_id: str | None = None
    # Attribution (see ``attribution``): the end user (OpenAI ``user`` field, redacted, capped),
    # tags from ``X-Tokentail-Tags``, and a keyed, truncated hash of the client's API key.
    user: str | None = None
    tags: list[str] = field(default_factory=list)
    key_fingerprint: str | None = None
    # Routing (see ``routes``): the route taken (None: the default --upstream), the model name
    # sent upstream when the route rewrote it, and the route's upstream base URL.
    route: str | None = None
    upstream_model: str | None = None
    upstream_url: str | None = None
    replay_of: str | None = None  # the request this one replays (``MarkReplay`` hook)
    # What may be captured (``CaptureMode`` hook, ``capture``): full | metadata (no prompt or
    # completion text anywhere) | none (forwarded and counted in metrics only).
    capture: str = "full"
    trace_id: str | None = None  # hex trace id of our span (set by the span observer)
    # W3C trace context: the client's incoming ``traceparent``/``tracestate`` (set by the
    # ``TraceContext`` request hook; the span observer makes it our span's parent).
    trace_headers: dict[str, str] = field(default_factory=dict)

    # From the response, filled in as it streams.
    status: str = IN_FLIGHT
    http_status: int | None = None
    response_model: str | None = None
    response_id: str | None = None
    text: str = ""
    reasoning: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False  # captured text hit the per-request cap
    deltas: int = 0  # number of deltas seen (the live feed's seq)
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    ttft_ms: float | None = None
    latency_ms: float | None = None
    output_tps: float | None = None
    cost_usd: float | None = None  # None: unknown (no price for the model, or usage unknown), never 0
    error: str | None = None  # reason code, see ERR_*
    error_message: str | None = None  # human-readable, secrets removed
    malformed: bool = False  # the tap met something it could not parse
    # llama.cpp server's ``timings`` object as reported (prompt_ms, predicted_per_second, cache_n...).
    upstream_timings: dict[str, Any] | None = None
    # Per-chunk timing for gen_ai time_per_output_chunk: monotonic time of the last delta.
    last_delta_at: float | None = None
    first_delta_at: float | None = None
    # The raw stream view (``raw_capture.RawCapture``, set by the tap; taken by its store at the end).
    raw: Any = None

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.t0) * 1000.0


class Observer(Protocol):
    """A sink that watches requests. Every method must return quickly and not raise."""

    def on_start(self, rec: RequestRecord) -> None: ...

    def on_delta(self, rec: RequestRecord, delta: Delta) -> None: ...

    def on_end(self, rec: RequestRecord) -> None: ...


class Observers:
    """The observers of one app, with each hook's bound methods listed once (the
    delta hook runs per token chunk, so no per-call attribute lookups)."""

    def __init__(self, observers: list[object]) -> None:  # each has any of the Observer hooks
        self.all = list(observers)
        self._hooks = {
            h: [getattr(o, h) for o in self.all if hasattr(o, h)]
            for h in ("on_start", "on_delta", "on_end", "on_prompt")
        }

    def start(self, rec: RequestRecord) -> None:
        _call(self._hooks["on_start"], rec)

    def delta(self, rec: RequestRecord, delta: Delta) -> None:
        _call(self._hooks["on_delta"], rec, delta)

    def end(self, rec: RequestRecord) -> None:
        _call(self._hooks["on_end"], rec)

    def prompt(self, rec: RequestRecord) -> None:
        _call(self._hooks["on_prompt"], rec)


def _call(fns: list[Callable[..., None]], *args: Any) -> None:
    for fn in fns:
        try:
            fn(*args)
        except Exception:  # an observer bug must never fail a proxied request
            log.exception("observer %s failed", getattr(fn, "__qualname__", fn))


def merge_deltas(deltas: list[Delta]) -> Delta:
    """Deltas that arrived in one read, as one: observers then run once per read, not
    once per event (an upstream that bursts costs no more than one that trickles)."""
    if len(deltas) == 1:
        return deltas[0]
    tools = [t for d in deltas if d.tool_calls for t in d.tool_calls]
    return Delta(
        text="".join(d.text for d in deltas), tool_calls=tools or None, reasoning="".join(d.reasoning for d in deltas)
    )
