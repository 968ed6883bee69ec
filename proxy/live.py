"""The live hub: recent requests in memory and the pub/sub behind ``GET /api/live``.

``LiveHub`` is an ``Observer``. For each request it keeps an entry (prompt, params,
the completion as streamed so far, outcome) that ``/api/requests`` lists, and it
publishes ``request.start`` / ``request.delta`` / ``request.end`` events, each
numbered by one hub-wide sequence; an event's SSE id is ``<boot_id>:<seq>``.

Everything here runs on the event loop, synchronously, and never waits:

- Events go into a bounded replay log and into each subscriber's bounded queue with
  ``put_nowait``. A subscriber whose queue is full is closed (its iterator ends,
  the HTTP layer ends the stream, the browser's EventSource reconnects with
  ``Last-Event-ID`` and is replayed what it missed) and counted via ``on_drop``.
- Entries are bounded by count (``max_requests``) and approximate bytes: finished
  ones are evicted oldest-finished first. Captured text per request stops at
  ``max_capture_bytes`` (UTF-8) and the request is marked ``truncated``.
- ``on_delta`` is O(1) per delta: feed the piece to the request's stream redactor
  (``live_entry.Streams``; a secret split across deltas is caught), append what it
  releases to a bytearray, build one small dict. No JSON encoding here: the HTTP layer
  encodes a small event once, for the first subscriber that writes it, and every other
  shares those bytes (``live_sse.Wire``); a large one is encoded in slices per reader.
- At most ``max_subscribers`` listen at once (each holds a queue and, on joining, a
  snapshot of the whole ring); ``subscribe`` beyond it raises ``TooManySubscribers``
  and counts ``on_drop("live_subscriber_refused")``.

Entries (``live_entry.Entry``) and the payloads built from them (``request.start`` /
``request.end`` data, snapshots, ``/api/requests`` summaries) are ``live_entry``'s: pure
functions. A listener is a ``live_subscription.Subscription``.

Replay on subscribe (``Last-Event-ID``):

- from this boot, and the log still holds every event after it: exactly those events;
- anything else (another boot, unknown, too old, or none): a *snapshot*. It starts
  with a ``snapshot`` event ``{boot_id, requests}`` (a client should drop what it
  shows and rebuild), then per request in start order: ``request.start``; one
  ``request.delta`` with ``snapshot: true`` holding all the text so far and ``seq``
  = number of deltas folded in; ``request.end`` if finished. All snapshot events
  carry the id ``<boot_id>:<head>`` (the hub's seq when it was taken), so a later
  reconnect resumes exactly after it. Live deltas then continue at ``seq + 1``.

Deltas carry only released text: the trailing characters that could still become a
secret are held until the next word boundary, and the last of them go out as one more
``request.delta`` just before ``request.end``. Everything the hub stores or replays is
released text, so no sink (live feed, replay, in-flight detail, previews) ever holds a
secret, however the upstream split it. ``request.end`` carries ``text`` only when the final
text differs from the deltas' concatenation (the text never came as deltas, or the handler
scrubbed a route's key from it): the client should replace what it built with it.
"""

from __future__ import annotations

import itertools
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from . import live_erase
from .live_entry import (
    Entry,
    Event,
    Streams,
    approx_size,
    cap_utf8,
    end_data,
    matches,
    snapshot_events,
    start_data,
    summary,
)
from .live_sse import SLICE_CHARS, Wire
from .live_subscription import Subscription, TooManySubscribers
from .record import Delta, RequestRecord
from .redact import Redactor

__all__ = ["DROP_SINK", "REFUSED_SINK", "LiveHub"]

DROP_SINK = "live_subscriber"  # a subscriber closed for lagging behind
REFUSED_SINK = "live_subscriber_refused"  # a subscription refused: the cap was reached
_ENTRY_OVERHEAD = 2048  # dicts, usage, small fields of one entry (approximate)
_EVENT_OVERHEAD = 300  # tuple + data dict of one event (approximate)
# Text is cut this far past the capture cap *before* redaction (bounding its cost on a
# huge body), then cut at the cap after it: a secret straddling the first cut lies past
# the second one.
_CUT_MARGIN = 4096
# Characters of text and reasoning a request's deltas are batched to while nobody listens.
BATCH_CHARS = 4096
# A delta whose text and reasoning are shorter than this is one SSE slice (its other fields are
# our own id, seq and ttft: a few dozen characters).
_SMALL_DELTA = SLICE_CHARS - 1024
_ROUTE_LABEL = "[REDACTED:route_key]"  # the forward handler's scrub of a route's key


class LiveHub:
    """In-flight and recent requests in memory, and their live event feed.

    ``time`` in events is epoch seconds (float). ``redactor=None`` redacts with the
    default ``Redactor()``; pass ``Redactor(enabled=False)`` to turn it off. The
    byte budget is split: 3/4 for request entries, 1/4 for the replay log, which is
    also capped at ``max_events`` events. In-flight entries are evicted only when
    more than ``max_requests`` are in flight at once (their later deltas are then
    not captured; their end is still published).
    """

    def __init__(
        self,
        boot_id: str | None = None,
        variant: str = "production",
        max_requests: int = 1000,
        max_bytes: int = 64 << 20,
        max_capture_bytes: int = 1 << 20,
        subscriber_queue: int = 1000,
        redactor: Redactor | None = None,
        on_drop: Callable[[str], None] | None = None,
        max_events: int = 100_000,
        max_subscribers: int = 64,
    ) -> None:
        self.boot_id = boot_id or uuid.uuid4().hex[:12]
        self.variant = variant
        self.max_requests = max(1, max_requests)
        self.max_capture_bytes = max(0, max_capture_bytes)
        self.subscriber_queue = max(1, subscriber_queue)
        self.max_subscribers = max(0, max_subscribers)
        self.redactor = redactor if redactor is not None else Redactor()
        self._on_drop = on_drop
        self._entry_budget = max_bytes - max_bytes // 4
        self._log_budget = max_bytes // 4
        self._max_events = max(1, max_events)
        self._entries: dict[str, Entry] = {}  # start order
        self._finished: OrderedDict[str, None] = OrderedDict()  # finish order
        self._entry_bytes = 0
        self._log: deque[Event] = deque()
        self._log_bytes = 0
        self._seq = 0
        self._subs: list[Subscription] = []
        self._sinks: list[Callable[[Event], None]] = []
        self._batching: dict[str, Entry] = {}  # entries holding raw deltas (``pending``)

    # --- Observer hooks ------------------------------------------------------------

    def on_start(self, rec: RequestRecord) -> None:
        """Record a new request (its prompt is already redacted) and publish ``request.start``."""
        old = self._entries.pop(rec.id, None)
        if old is not None:
            self._forget(old)
        start, keys = start_data(rec, self.variant)
        payload = approx_size(start)  # the prompt and params, and the rest of what is published
        e = Entry(start, keys, rec, size=_ENTRY_OVERHEAD + payload)
        self._entries[rec.id] = e
        self._entry_bytes += e.size
        self._trim()
        if not rec.prompt_ready:  # redacted off the loop: request.start waits for on_prompt
            e.held = []
            return
        self._publish("request.start", start, payload, small=payload < SLICE_CHARS)

    def on_prompt(self, rec: RequestRecord) -> None:
        """The prompt, redacted off the loop, is on the record: publish ``request.start``,
        then the deltas held back meanwhile, in their order."""
        e = self._entries.get(rec.id)
        if e is None or e.held is None:
            return
        start, keys = start_data(rec, self.variant)
        payload = approx_size(rec.prompt) if rec.prompt_size is None else rec.prompt_size
        e.start, e.prompt_keys = start, keys
        e.size += payload
        self._entry_bytes += payload
        self._release(e, payload)
        self._trim()

    def _release(self, e: Entry, prompt_size: int = 0) -> None:
        held, e.held = e.held, None
        self._publish("request.start", e.start, prompt_size + approx_size(e.rec.params if e.rec else None))
        for name, data, payload in held or ():
            self._publish(name, data, payload)

    def on_delta(self, rec: RequestRecord, delta: Delta) -> None:
        """Capture one delta (what its stream redactors release, within the cap) and publish
        ``request.delta``; nothing is published while everything is held back.

        While no subscriber nor sink listens, text and reasoning after a request's first
        delta are batched raw (up to ``BATCH_CHARS``) and redacted, captured and published
        as one delta: the streaming redactor per delta was a quarter of tokentail's own CPU
        per relayed chunk. Whatever reads the entries (a subscriber joining, the in-flight
        API, erasure, the end) takes the batch first (``_flush``), so nothing reads stale text.
        (With a listener each delta goes out at once: a timed batch of 8 ms saved ~15 % of the
        CPU per token, but it doubled what the browser test's token-to-screen probe measures,
        p99 12-19 -> 27-40 ms quiet and 19-35 -> 43-74 ms with two CPU hogs; 2026-12-03.)
        """
        e = self._entries.get(rec.id)
        if e is None or e.rec is None or e.truncated:
            return  # evicted while in flight, already finished, or over the capture cap
        text, reasoning, tools = delta.text or "", delta.reasoning or "", delta.tool_calls
        if not (text or reasoning or tools):
            return
        if not tools and e.deltas and not self._subs and not self._sinks:
            if e.pending is None:
                e.pending = ([], [])
                self._batching[rec.id] = e
            if text:
                e.pending[0].append(text)
            if reasoning:
                e.pending[1].append(reasoning)
            e.pending_chars += len(text) + len(reasoning)
            if e.pending_chars < BATCH_CHARS:
                return
            text, reasoning = self._take_pending(e)
        elif e.pending is not None:
            held_text, held_reasoning = self._take_pending(e)
            text, reasoning = held_text + text, held_reasoning + reasoning
        self._feed(rec, e, text, reasoning, tools)

    def _take_pending(self, e: Entry) -> tuple[str, str]:
        assert e.pending is not None
        (texts, reasonings), e.pending, e.pending_chars = e.pending, None, 0
        self._batching.pop(e.id, None)
        return "".join(texts), "".join(reasonings)

    def _flush(self, e: Entry | None = None) -> None:
        """Redact, capture and publish the batched deltas of ``e`` (None: of every entry)."""
        for b in [e] if e is not None else list(self._batching.values()):
            if b.pending is None:
                continue
            text, reasoning = self._take_pending(b)
            if b.rec is not None and not b.truncated:
                self._feed(b.rec, b, text, reasoning, None)

    def _feed(
        self, rec: RequestRecord, e: Entry, text: str, reasoning: str, tools: list[dict[str, Any]] | None
    ) -> None:
        st = self._streams(e)
        if text:
            st.fed_text = True
            text = st.text.feed(self._precut(e, text))
        if reasoning:
            reasoning = st.reasoning.feed(self._precut(e, reasoning))
        self._publish_delta(rec, e, text, reasoning, st.tool_fragments(tools) if tools else None)

    def on_end(self, rec: RequestRecord) -> None:
        """Release what the stream redactors held (one last delta), finish the entry (text
        redacted, capped) and publish ``request.end``."""
        red = self.redactor
        end = end_data(rec, red)
        e = self._entries.get(rec.id)
        if e is None or e.rec is None:  # evicted in flight (or never started): publish only
            self._publish("request.end", end, 0)
            return
        if e.pending is not None:
            self._flush(e)
        if e.held is not None:  # ended before its prompt was ready (the handler waits; others may not)
            self._release(e)
        st = e.streams
        fed_text = False
        if st is not None:
            fed_text = st.fed_text
            if not e.truncated:
                tools = st.flush_tools()
                self._publish_delta(rec, e, st.text.flush(), st.reasoning.flush(), tools or None)
            e.streams = None
        streamed = e.buf.decode("utf-8", "ignore")
        captured = len(e.buf) + len(e.rbuf)
        limit = self.max_capture_bytes + _CUT_MARGIN
        # The text as released is the text redacted whole (``_redact_stream``); redact it
        # again only when it did not come as deltas, or the handler scrubbed a route key.
        if rec.text and (not fed_text or _ROUTE_LABEL in rec.text):
            text = red.redact_text(rec.text[:limit])
        else:
            text = streamed
        reasoning = e.rbuf.decode("utf-8", "ignore")
        if rec.reasoning and not reasoning:
            reasoning = red.redact_text(rec.reasoning[:limit])
        text, cut1 = cap_utf8(text, self.max_capture_bytes)
        reasoning, cut2 = cap_utf8(reasoning, self.max_capture_bytes - len(text.encode("utf-8", "replace")))
        e.text, e.reasoning, e.buf, e.rbuf, e.rec = text, reasoning, bytearray(), bytearray(), None
        e.tool_calls = red.redact_json(rec.tool_calls) if rec.tool_calls else []
        e.truncated = e.truncated or cut1 or cut2 or rec.truncated
        if rec.ttft_ms is not None:
            e.ttft_ms = rec.ttft_ms
        end.update(ttft_ms=e.ttft_ms, truncated=e.truncated)
        e.end = end
        new_size = e.size - captured + len(text) + len(reasoning) + approx_size(e.tool_calls)
        self._entry_bytes += new_size - e.size
        e.size = new_size
        self._finished[rec.id] = None
        if text != streamed:  # the client replaces what it built from deltas (if any)
            end = {**end, "text": text}
        self._publish("request.end", end, len(end.get("text", "")))
        self._trim()

    def add_sink(self, sink: Callable[[Event], None]) -> None:
        """Also hand every published event to ``sink`` (e.g. ``live_redis``), synchronously,
        in order; it must not wait nor raise, and must treat the data as read-only."""
        self._flush()
        self._sinks.append(sink)

    # --- subscribers ---------------------------------------------------------------

    def subscribe(self, last_event_id: str | None = None, snapshot: bool = True) -> Subscription:
        """Register a listener; replay what it missed (see the module docstring).

        ``snapshot=False`` with no usable ``last_event_id`` gives live events only. At
        ``max_subscribers`` it raises ``TooManySubscribers`` and counts the refusal
        (``on_drop(REFUSED_SINK)``): each subscriber costs a queue and, on joining, a
        snapshot of the whole ring.
        """
        if len(self._subs) >= self.max_subscribers:
            self._dropped(REFUSED_SINK)
            raise TooManySubscribers(self.max_subscribers)
        self._flush()  # the text batched while nobody listened: into the log and the entries
        backlog = self._replay(last_event_id)
        if backlog is None:
            backlog = self._snapshot() if snapshot else []
        sub = Subscription(self.boot_id, backlog, self.subscriber_queue)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop feeding ``sub`` and end its iteration (idempotent)."""
        if sub in self._subs:
            self._subs.remove(sub)
        if not sub.closed:
            sub.close()

    def close_all(self) -> None:
        """End every subscription (at shutdown, so the SSE handlers return)."""
        for sub in self._subs:
            sub.close()
        self._subs.clear()

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    @property
    def head(self) -> int:
        """The seq of the last published event (0 before the first), batched deltas included."""
        self._flush()
        return self._seq

    # --- queries for /api/requests -------------------------------------------------

    def list_requests(
        self,
        model: str | None = None,
        status: str | None = None,
        q: str | None = None,
        variant: str | None = None,
        limit: int = 100,
        session: str | None = None,
        user: str | None = None,
        tag: str | None = None,
        key: str | None = None,
    ) -> list[dict[str, Any]]:
        """Summaries of in-flight and recent requests, newest first.

        ``status`` is ``in_flight`` | ``ok`` | ``error`` | ``cancelled``; ``q`` matches
        case-insensitively in the (redacted) prompt and completion text; ``session``,
        ``user`` and ``key`` (a key fingerprint) match exactly, ``tag`` is one of the tags.
        """
        self._flush()
        needle = q.casefold() if q else None
        limit = max(0, limit)
        out: list[dict[str, Any]] = []
        for e in reversed(self._entries.values()):
            if len(out) >= limit:
                break
            st = e.start
            if (
                (model is None or st["model"] == model)
                and (status is None or e.status == status)
                and (variant is None or st["variant"] == variant)
                and (session is None or st["session_id"] == session)
                and (user is None or st["user"] == user)
                and (key is None or st["key_fingerprint"] == key)
                and (tag is None or tag in st["tags"])
                and (not needle or matches(e, needle))
            ):
                out.append(summary(e))
        return out

    def get_request(self, request_id: str) -> dict[str, Any] | None:
        """Full detail of one request (completion as streamed so far), or None.

        The summary fields, plus the prompt key(s), ``params``, ``session_id``,
        ``trace_id``, ``text``, ``reasoning``, ``tool_calls``, ``deltas`` and, once
        finished, ``http_status``, ``error_message`` and ``response_model``.
        """
        e = self._entries.get(request_id)
        if e is None:
            return None
        if e.pending is not None:
            self._flush(e)
        d = {**e.start, **(e.end or {}), **summary(e)}
        d.update(text=e.current_text(), reasoning=e.current_reasoning(), tool_calls=self._tools(e), deltas=e.deltas)
        return d

    def erase(self, match: Callable[[dict[str, Any]], bool]) -> list[str]:
        """Erase the captured content of the requests whose start data ``match`` selects (``live_erase``)."""
        self._flush()
        ids, freed = live_erase.erase(self._entries, self._log, match)
        self._entry_bytes -= freed
        return ids

    # --- internals -----------------------------------------------------------------

    def _streams(self, e: Entry) -> Streams:
        st = e.streams
        if st is None:
            st = e.streams = Streams(self.redactor)
        return st

    def _publish_delta(
        self, rec: RequestRecord, e: Entry, text: str, reasoning: str, tools: list[dict[str, Any]] | None
    ) -> None:
        """Capture released text within the cap and publish it as one ``request.delta``."""
        if text:
            text = self._capture(e, e.buf, text)
        if reasoning:
            reasoning = self._capture(e, e.rbuf, reasoning)
        if not (text or reasoning or tools):
            return  # all held back (or over the cap): nothing to tell yet
        e.deltas += 1
        data: dict[str, Any] = {"id": rec.id, "seq": e.deltas, "text": text}
        if reasoning:
            data["reasoning"] = reasoning
        if tools:
            data["tool_calls"] = tools
        if e.deltas == 1:
            e.ttft_ms = rec.ttft_ms if rec.ttft_ms is not None else round(rec.elapsed_ms(), 3)
            data["ttft_ms"] = e.ttft_ms
        if e.held is not None:
            e.held.append(("request.delta", data, len(text) + len(reasoning)))
            return
        size = len(text) + len(reasoning)
        self._publish("request.delta", data, size, small=not tools and size < _SMALL_DELTA)

    def _precut(self, e: Entry, piece: str) -> str:
        """Cut a huge piece before redacting it: what lies past the cap is dropped anyway."""
        limit = self.max_capture_bytes - len(e.buf) - len(e.rbuf) + _CUT_MARGIN
        return piece if len(piece) <= limit else piece[: max(0, limit)]

    def _capture(self, e: Entry, buf: bytearray, piece: str) -> str:
        """Append ``piece`` to ``buf`` within the per-request cap; return what was kept."""
        raw = piece.encode("utf-8", "replace")
        room = self.max_capture_bytes - len(e.buf) - len(e.rbuf)
        if len(raw) > room:
            raw = raw[: max(0, room)]
            piece = raw.decode("utf-8", "ignore")  # drop a character cut in half
            raw = piece.encode("utf-8")
            e.truncated = True
        buf += raw
        e.size += len(raw)
        self._entry_bytes += len(raw)
        if self._entry_bytes > self._entry_budget and self._finished:
            self._trim()
        return piece

    def _publish(self, name: str, data: dict[str, Any], payload: int, small: bool = False) -> None:
        """``small``: the caller knows ``data`` is one slice of SSE (``live_sse.Wire``)."""
        self._seq += 1
        # One Wire per event: its SSE bytes are encoded by the first subscriber to write it
        # and shared by the others (and by a replay from the log), never once per subscriber.
        ev: Event = (self._seq, name, data, payload + _EVENT_OVERHEAD, Wire(small))
        log = self._log
        log.append(ev)
        self._log_bytes += ev[3]
        while len(log) > self._max_events or (self._log_bytes > self._log_budget and len(log) > 1):
            self._log_bytes -= log.popleft()[3]
        for sink in self._sinks:
            sink(ev)
        dropped = [sub for sub in self._subs if not sub.push(ev)]
        for sub in dropped:
            self._subs.remove(sub)
            sub.close(lagged=True)
            self._dropped(DROP_SINK)

    def _dropped(self, sink: str) -> None:
        if self._on_drop is not None:
            try:
                self._on_drop(sink)
            except Exception:  # a metrics bug must not fail the request path
                pass

    def _trim(self) -> None:
        """Evict finished entries (oldest finished first), then in-flight ones over the count."""
        while self._finished and (len(self._entries) > self.max_requests or self._entry_bytes > self._entry_budget):
            rid, _ = self._finished.popitem(last=False)
            e = self._entries.pop(rid, None)
            if e is not None:
                self._forget(e)
        while len(self._entries) > self.max_requests:
            self._forget(self._entries.pop(next(iter(self._entries))))

    def _forget(self, e: Entry) -> None:
        self._entry_bytes -= e.size
        self._finished.pop(e.id, None)
        e.rec = None  # its later deltas are ignored
        if e.pending is not None:  # evicted in flight: its batch goes too
            e.pending, e.pending_chars = None, 0
            self._batching.pop(e.id, None)

    def _replay(self, last_event_id: str | None) -> list[Event] | None:
        """Events after ``last_event_id`` if this boot's log still holds all of them."""
        if not last_event_id:
            return None
        boot, _, seq_s = last_event_id.strip().rpartition(":")
        if boot != self.boot_id or not seq_s.isdigit():
            return None
        seq = int(seq_s)
        if seq > self._seq:
            return None  # from the future: not ours after all
        if seq == self._seq:
            return []
        if not self._log or self._log[0][0] > seq + 1:
            return None  # the gap was evicted: snapshot instead
        return list(itertools.islice(self._log, seq + 1 - self._log[0][0], None))

    def _snapshot(self) -> list[Event]:
        # A request whose start is held back is announced live, once its prompt is ready.
        entries = (e for e in self._entries.values() if e.held is None)
        return snapshot_events(self.boot_id, self._seq, entries, self._tools)

    def _tools(self, e: Entry) -> list[dict[str, Any]]:
        if e.rec is not None:  # in flight: as released so far (else what the tap assembled, redacted now)
            if e.streams is not None and e.streams.tools:
                return [dict(c, function=dict(c["function"])) for c in e.streams.tools.values()]
            return self.redactor.redact_json(e.rec.tool_calls) if e.rec.tool_calls else []
        return e.tool_calls
