"""The tap: reads a response as it passes through and fills in the request's record.

``StreamTap`` is pure (no I/O, no clock): the forward handler feeds it each chunk from
the upstream and writes what ``feed`` returns to the client. It decodes the SSE stream
(``sse``), reads each event with the endpoint family's interpreter (``usage``), and keeps
the record current: text and reasoning (capped), tool calls, finish reason, usage, flags.
It never raises on upstream bytes, however odd.

A 2xx stream must end with its protocol's terminator (``Interpreter.ends_with_done`` /
``end_types``). One that closes cleanly without it, or without any event at all, is an
error of its own kind, ``incomplete_stream``: ``finish`` marks the record so, and the client's
bytes stay as they were. A record that already ended otherwise (upstream disconnect,
timeout, cancel) keeps its reason.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import msgspec

from .raw_capture import RawCapture
from .record import ERR_INCOMPLETE, ERROR, IN_FLIGHT, Delta, RequestRecord
from .sse import SSEDecoder, SSEEvent
from .usage import Extract, ToolCalls, error_message, estimate_input_tokens, interpreter_for, is_usage_chunk

log = logging.getLogger("tokentail.proxy")

# One decoder for every stream: msgspec keeps integers of any size, as json does.
_decode = msgspec.json.Decoder().decode


def _loads(s: str) -> Any:
    """``json.loads`` for one SSE data value, about 3x faster on the hot path (msgspec); same results.

    What msgspec refuses and the standard parser takes (NaN, Infinity, lone surrogates, deep
    nesting) goes to ``json.loads``, which decides as it always did.
    """
    try:
        return _decode(s)
    except (msgspec.DecodeError, RecursionError):
        return json.loads(s)


_TAIL = 64 << 10  # end of an oversized body kept to find its usage (it comes last)
_EAGER = 16 << 10  # below this many characters the record's text is updated on every delta


class _Capture:
    """Text captured up to a UTF-8 byte cap; ``text`` stays current at linear total cost.

    Appending to one growing ``str`` copies it each time; past ``_EAGER`` characters the
    pieces are batched (joined once they reach 1/16 of the text) so 1 MiB stays cheap.
    """

    __slots__ = ("_bytes", "_cap", "_parts", "_pending", "text", "truncated")

    def __init__(self, cap: int) -> None:
        self.text = ""
        self._parts: list[str] = []
        self._pending = 0
        self._bytes = 0
        self._cap = cap
        self.truncated = False

    def add(self, s: str) -> bool:
        """Append ``s`` (cut at the cap); True when ``text`` changed."""
        if self.truncated:
            return False
        n = len(s) if s.isascii() else len(s.encode("utf-8", "replace"))
        if self._bytes + n > self._cap:
            s = s.encode("utf-8", "replace")[: self._cap - self._bytes].decode("utf-8", "ignore")
            n = len(s.encode("utf-8"))
            self.truncated = True
        self._bytes += n
        if len(self.text) < _EAGER:  # (pieces only start once past it)
            self.text += s
            return True
        self._parts.append(s)
        self._pending += len(s)
        if self.truncated or self._pending * 16 >= len(self.text):
            return self.flush()
        return False

    def flush(self) -> bool:
        if not self._parts:
            return False
        self.text += "".join(self._parts)
        self._parts.clear()
        self._pending = 0
        return True


class StreamTap:
    """Watches one response; see the module docstring.

    ``streaming``: the response is ``text/event-stream`` (else the body is read as JSON at
    ``finish``). ``strip_usage_chunk``: the proxy asked for usage on the client's behalf, so
    the usage-only chunk is removed from what goes to the client. ``max_capture_bytes`` caps
    each of text, reasoning and tool-call arguments; ``max_body_bytes`` caps a buffered
    non-streamed body; ``max_event_bytes`` caps one SSE event (bigger ones are skipped,
    flagged malformed).
    """

    __slots__ = (
        "_body",
        "_body_len",
        "_complete",
        "_dec",
        "_finished",
        "_held",
        "_interp",
        "_max_body",
        "_raw",
        "_reasoning",
        "_req",
        "_saw_data",
        "_st",
        "_streaming",
        "_strip",
        "_tail",
        "_text",
        "_tools_seen",
        "rec",
        "saw_done",
    )

    def __init__(
        self,
        rec: RequestRecord,
        request_json: dict[str, Any] | None,
        *,
        streaming: bool,
        strip_usage_chunk: bool = False,
        max_capture_bytes: int = 1 << 20,
        max_body_bytes: int = 32 << 20,
        max_event_bytes: int = 4 << 20,
    ) -> None:
        self.rec = rec
        self._req = request_json
        self._streaming = streaming
        self._interp = interpreter_for(rec.endpoint)
        self._strip = bool(strip_usage_chunk and streaming and self._interp.usage_chunk)
        self._st = Extract(tools=ToolCalls(max_capture_bytes))
        self._dec = SSEDecoder(max_event_bytes) if streaming else None
        self._text = _Capture(max_capture_bytes)
        self._reasoning = _Capture(max_capture_bytes)
        self._body: list[bytes] = []
        self._body_len = 0
        self._max_body = max_body_bytes
        self._tail: bytes | None = None  # set once the body went over max_body_bytes
        self._held = False  # strip mode: the decoder holds bytes not yet sent
        self._finished = False
        self._tools_seen = 0
        self.saw_done = False  # the stream ended with data: [DONE]
        self._complete = False  # the protocol's terminator was seen
        self._saw_data = False  # at least one event with data (or too big to parse)
        # The raw stream view (its one clock read per event is the arrival time).
        self._raw = rec.raw = RawCapture(rec.t0, max_capture_bytes, request_json)

    @property
    def complete(self) -> bool:
        """The protocol's terminator (``[DONE]``, ``message_stop``, ...) was seen."""
        return self._complete

    def feed(self, chunk: bytes) -> tuple[bytes, list[Delta]]:
        """Read one chunk; return (bytes for the client, deltas found in it)."""
        if self._finished or not chunk:
            return chunk, []
        if not self._streaming:
            self._add_body(chunk)
            return chunk, []
        deltas: list[Delta] = []
        assert self._dec is not None  # set whenever streaming
        events = self._dec.feed(chunk)
        if not self._strip:
            for ev in events:
                self._seen(ev, deltas)
            return chunk, deltas
        kept, stripped = [], False
        for ev in events:
            if self._seen(ev, deltas):
                stripped = True
            else:
                kept.append(ev.raw)
        held_before, self._held = self._held, self._dec.buffered > 0
        if not (stripped or held_before or self._held):
            return chunk, deltas  # the events are exactly this chunk
        return b"".join(kept), deltas

    def finish(self) -> bytes:
        """End of the response (also on error or cancel): return held-back bytes, finalise the record.

        Idempotent: a second call returns b"" and changes nothing.
        """
        if self._finished:
            return b""
        self._finished = True
        out = b""
        try:
            if self._streaming:
                assert self._dec is not None  # set whenever streaming
                kept = []
                for ev in self._dec.flush():
                    if not self._seen(ev, []) and self._strip:
                        kept.append(ev.raw)
                out = b"".join(kept)
            else:
                self._read_body()
            self._finalise()
        except Exception:  # a tap bug must not fail the request; the bytes still go out
            log.exception("tap finish failed for %s", self.rec.id)
            self.rec.malformed = True
        return out

    # -- streamed events --------------------------------------------------------------------

    def _seen(self, ev: SSEEvent, deltas: list[Delta]) -> bool:
        """``_event``, and the event kept for the raw view with the text it carried."""
        n = len(deltas)
        injected = self._event(ev, deltas)
        d = deltas[n] if len(deltas) > n else None
        self._raw.add(ev.raw, injected, d.text if d is not None else "", d.reasoning if d is not None else "")
        return injected

    def _event(self, ev: SSEEvent, deltas: list[Delta]) -> bool:
        """Apply one SSE event to the record; True when it is the usage-only chunk to strip."""
        data = ev.data
        if data is None:
            if ev.overflow:
                self.rec.malformed = True
                self._saw_data = True
            elif ev.raw.startswith(b"error:"):
                self._error_line(ev.raw)
            return False
        self._saw_data = True
        if data == "[DONE]":
            self.saw_done = True
            self._complete = self._complete or self._interp.ends_with_done
            return False
        try:
            obj = _loads(data)
        except (ValueError, RecursionError):
            self.rec.malformed = True
            if ev.event == "error" and self._st.error is None:
                self._st.error = data[:200]
            return False
        if type(obj) is not dict:
            self.rec.malformed = True
            return False
        st = self._st
        if not self._complete and self._interp.end_types and self._interp.is_end(obj, ev.event):
            self._complete = True
        if obj.get("error") or ev.event == "error":  # other error shapes: see the interpreters
            st.error = error_message(obj)
        try:
            d = self._interp.event(obj, ev.event, st)
        except Exception:  # an unexpected shape from the upstream: flag it, keep reading
            log.debug("tap could not read an event for %s", self.rec.id, exc_info=True)
            self.rec.malformed = True
            return False
        if d is not None:
            self._delta(d)
            deltas.append(d)
        return self._strip and is_usage_chunk(obj)

    def _error_line(self, raw: bytes) -> None:
        """llama.cpp's server streams its errors as ``error: {json}``, a field SSE ignores: keep
        the message (e.g. the prompt exceeds the context), the event still holds no data."""
        try:
            obj = _loads(raw[6:].decode("utf-8", "replace").strip())
        except (ValueError, RecursionError):
            return
        if type(obj) is dict and self._st.error is None:
            self._st.error = error_message(obj)

    def _delta(self, d: Delta) -> None:
        rec = self.rec
        rec.deltas += 1
        if d.text and self._text.add(d.text):
            rec.text = self._text.text
        if d.reasoning and self._reasoning.add(d.reasoning):
            rec.reasoning = self._reasoning.text
        if d.tool_calls:
            tools = self._st.tools
            if len(tools) != self._tools_seen:  # a new call: show it while in flight
                self._tools_seen = len(tools)
                rec.tool_calls = tools.result()

    # -- non-streamed body --------------------------------------------------------------------

    def _add_body(self, chunk: bytes) -> None:
        if self._tail is not None:
            self._tail = (self._tail + chunk)[-_TAIL:]
        elif self._body_len + len(chunk) > self._max_body:
            self._tail = (b"".join(self._body) + chunk)[-_TAIL:]
            self._body = []
            self.rec.truncated = self.rec.malformed = True
        else:
            self._body.append(chunk)
            self._body_len += len(chunk)

    def _read_body(self) -> None:
        if self._tail is not None:
            usage = _usage_from_tail(self._tail)
            if usage is not None:
                self._interp.body({"usage": usage}, self._st)
            return
        raw = b"".join(self._body)
        self._body = []
        if not raw.strip():
            return
        try:
            obj = json.loads(raw)  # bytes: invalid UTF-8 raises UnicodeDecodeError, a ValueError
        except (ValueError, RecursionError):
            self.rec.malformed = True
            return
        if type(obj) is not dict:
            self.rec.malformed = True
            return
        if obj.get("error") or obj.get("object") == "error":
            self._st.error = error_message(obj)
        try:
            d = self._interp.body(obj, self._st)
        except Exception:
            log.debug("tap could not read the body for %s", self.rec.id, exc_info=True)
            self.rec.malformed = True
            return
        if d is not None:
            self._text.add(d.text)
            self._reasoning.add(d.reasoning)

    # -- the end ------------------------------------------------------------------------------

    def _finalise(self) -> None:
        rec, st = self.rec, self._st
        self._text.flush()
        self._reasoning.flush()
        rec.text, rec.reasoning = self._text.text, self._reasoning.text
        if self._text.truncated or self._reasoning.truncated or st.tools.truncated:
            rec.truncated = True
        if st.tools:
            rec.tool_calls = st.tools.result()
        rec.response_model = st.model or rec.response_model
        rec.response_id = st.id or rec.response_id
        rec.finish_reason = st.finish_reason or rec.finish_reason
        if st.error and not rec.error_message:
            rec.error_message = st.error
        if st.timings is not None:
            rec.upstream_timings = st.timings
        if self._streaming:
            self._judge_end()
        self._usage()

    def _judge_end(self) -> None:
        """RELIABILITY case 32: a 2xx stream without its terminator is ``incomplete_stream``."""
        rec, interp = self.rec, self._interp
        if self._complete or rec.status != IN_FLIGHT or rec.error is not None:
            return  # complete, or already ended another way (disconnect, timeout, cancel)
        if rec.http_status is None or not 200 <= rec.http_status < 300:
            return  # an error status says it all
        if self._saw_data and not interp.strict:
            return  # an unknown protocol: only an empty stream is known to be incomplete
        rec.status = ERROR
        rec.error = ERR_INCOMPLETE
        if rec.error_message:
            return  # the upstream's own error event says more
        if not self._saw_data:
            # llama.cpp's server answers so when the prompt exceeds its context.
            rec.error_message = "the upstream ended the stream without sending any event"
        else:
            end = "data: [DONE]" if interp.ends_with_done else " or ".join(sorted(interp.end_types))
            rec.error_message = f"the upstream ended the stream without {end}"

    def _usage(self) -> None:
        """RELIABILITY case 9: reported counts as they are; missing ones estimated, never 0."""
        rec, st, u = self.rec, self._st, self.rec.usage
        inp, out = st.input_tokens, st.output_tokens
        reported = inp is not None or out is not None
        estimated = False
        failed = rec.http_status is not None and rec.http_status >= 400  # nothing was generated
        if rec.error == ERR_INCOMPLETE and not self._saw_data:
            failed = True  # nor here: the upstream said nothing at all (nor read the prompt, as far as we know)
        if inp is None and not failed:
            inp = estimate_input_tokens(self._req)
            estimated = inp is not None
        if out is None and not failed and self._interp.has_output:
            out = self._estimate_output()
            estimated = estimated or out is not None
        u.input_tokens, u.output_tokens, u.cached_input_tokens = inp, out, st.cached_tokens
        # "reported" only when everything known came from the upstream.
        u.source = "reported" if reported and not estimated else "estimated"

    def _estimate_output(self) -> int | None:
        if self._streaming:
            return self.rec.deltas or None  # about one token per streamed delta
        rec = self.rec
        chars = len(rec.text) + len(rec.reasoning) + sum(len(t["function"]["arguments"] or "") for t in rec.tool_calls)
        return (chars + 3) // 4 if chars else None


def _usage_from_tail(tail: bytes) -> Any:
    """The last ``"usage": {...}`` object in the end of a body too big to parse whole."""
    text = tail.decode("utf-8", "replace")
    i = text.rfind('"usage"')
    if i < 0:
        return None
    j = text.find("{", i)
    if j < 0:
        return None
    try:
        usage, _ = json.JSONDecoder().raw_decode(text, j)
    except ValueError:
        return None
    return usage if type(usage) is dict else None
