"""Request hooks: what happens to a request between reading its body and calling the upstream.

The request side mirrors the response side (the tap and its per-provider interpreters):
small units, listed once, in order. Like mitmproxy's addons, a hook is a plain object with
hook-named methods, and ``default_hooks`` is the one ordered list. A request goes through
two events, each running the hooks that have its method, in list order:

- ``request(ctx)``: the body is read and nobody has been told of the request yet. Hooks
  parse the body, attribute it, route it (upstream, model rewrite, key), assign the session
  and ask for usage. What they put on the record is what the observers see at ``on_start``.
- ``upstream(ctx)``: the observers have been told (so our span exists); the last changes to
  the upstream request, i.e. the W3C trace context of our span, so a tracing upstream joins
  our trace. The span observer never writes that into the record for the handler to read.

A large body first goes through ``prepare(ctx)``, in the content worker thread while the
loop serves other requests: ``RequestHooks.prepare`` parses the body, then each hook with a
``prepare`` method does the CPU-bound part of its ``request`` there (ParseBody's caps,
AssignSession's hash) and returns it; ``request`` takes it from ``ctx.prepared``. A
``prepare`` reads the context and its hook's fixed settings only: it changes nothing.

A hook method reads the ``RequestContext`` and returns a ``Change`` (or None); it never
changes the context itself. ``RequestContext.apply`` merges each change before the next hook
runs, so later hooks see earlier ones (routing sees the parsed model). Everything here is
pure, no I/O and no aiohttp request: a test builds a context by hand and calls one hook.
``upstream.build`` turns the context's ``UpstreamPlan`` into the request to send.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from opentelemetry.trace import Span, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from yarl import URL

from tokentail.erasure import CAPTURE_HEADER, CAPTURE_LEVELS, lowest

from ._promptcap import DEFAULT_PROMPT_BYTES, cap_prompt
from .attribution import TAGS_HEADER, Fingerprinter, end_user, parse_tags
from .json_pieces import loads_object
from .record import RequestRecord
from .redact import Redactor, strip_media
from .routes import Route, RouteTable
from .sessions import NOT_PREPARED, SessionTracker

__all__ = [
    "PROMPT_KEYS",
    "AssignSession",
    "Attribute",
    "CaptureMode",
    "Change",
    "InjectUsage",
    "MarkReplay",
    "ParseBody",
    "RequestContext",
    "RequestHooks",
    "Routing",
    "TraceContext",
    "UpstreamPlan",
    "default_hooks",
    "prepare_off_loop",
]

# Request fields copied as parameters (the rest of the body is prompt or ignored).
_PARAMS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "n",
    "seed",
    "stop",
    "frequency_penalty",
    "presence_penalty",
    "top_k",
    "reasoning_effort",
    "response_format",
    "tool_choice",
    "parallel_tool_calls",
    "stream_options",
    "dimensions",
    "encoding_format",
)
# The body fields that are the prompt (``rec.prompt`` holds them capped and redacted).
PROMPT_KEYS = ("messages", "prompt", "input", "system", "instructions", "tools")
_TRACE_HEADERS = ("traceparent", "tracestate")
_PROPAGATOR = TraceContextTextMapPropagator()


_EMPTY: Mapping[str, Any] = MappingProxyType({})


class Change(NamedTuple):
    """What one hook changes. Empty fields change nothing.

    ``record``: ``RequestRecord`` fields to set (a misspelt name fails: the record has slots).
    ``obj``: the parsed JSON body. ``body``: top-level body fields to send upstream instead of
    the client's (the body is then serialised once, after every hook ran). ``upstream`` and
    ``route``: where the request goes and the route that sent it there (its key is injected
    and scrubbed from what comes back). ``headers``: headers to set on the upstream request.
    ``usage_injected``: tokentail asked for the usage chunk, so the client must not see it.

    A named tuple rather than a dataclass: immutable, cheap to build on every request, and
    its empty mappings can be one shared read-only instance.
    """

    record: Mapping[str, Any] = _EMPTY
    obj: dict[str, Any] | None = None
    body: Mapping[str, Any] = _EMPTY
    upstream: URL | None = None
    route: Route | None = None
    headers: Mapping[str, str] = _EMPTY
    usage_injected: bool = False


@dataclass(slots=True)
class UpstreamPlan:
    """The upstream request as the hooks have shaped it so far (see ``upstream.build``)."""

    base: URL  # the upstream's base URL: --upstream unless a route chose another
    route: Route | None = None
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    usage_injected: bool = False


@dataclass(slots=True)
class RequestContext:
    """One incoming request as the hooks see it. ``headers`` is case-insensitive (the
    client's ``CIMultiDictProxy``); ``query`` is None when there is no query string."""

    method: str
    path: str  # below /v1/, as the client sent it (still percent-encoded; no leading slash)
    query_string: str  # as the client sent it (still percent-encoded)
    headers: Mapping[str, str]
    body: bytes
    rec: RequestRecord
    plan: UpstreamPlan
    query: Mapping[str, str] | None = None
    obj: dict[str, Any] | None = None  # the JSON body, once ``ParseBody`` found one
    # The body already parsed (``parse_json_object``) off the event loop, for a large body
    # (``RequestHooks.prepare``); ``ParseBody`` then takes it instead of parsing again.
    preparsed: tuple[dict[str, Any] | None] | None = None
    # What each hook's ``prepare`` returned, by hook (``RequestHooks.prepare``).
    prepared: dict[object, Any] = field(default_factory=dict)

    def apply(self, change: Change | None) -> None:
        if change is None:
            return
        record, obj, body, upstream, route, headers, usage_injected = change
        rec = self.rec
        for name, value in record.items():
            setattr(rec, name, value)
        if obj is not None:
            self.obj = obj
        plan = self.plan
        if upstream is not None:
            plan.base = upstream
        if route is not None:
            plan.route = route
        if body:
            plan.body.update(body)
        if headers:
            plan.headers.update(headers)
        if usage_injected:
            plan.usage_injected = True


# A hook is any object with a ``request`` method, an ``upstream`` method, or both, each
# ``(ctx: RequestContext) -> Change | None`` (duck-typed, as mitmproxy's addons are).
HookFn = Callable[[RequestContext], "Change | None"]


class RequestHooks:
    """The hooks of one app, each event's bound methods listed once (as ``Observers`` does).

    Unlike an observer's, a hook's exception is not swallowed: a hook shapes the request,
    and a request shaped halfway must not be sent.
    """

    def __init__(self, hooks: Sequence[object]) -> None:
        self.all = tuple(hooks)
        self._request: list[HookFn] = [h.request for h in self.all if hasattr(h, "request")]
        self._upstream: list[HookFn] = [h.upstream for h in self.all if hasattr(h, "upstream")]
        self._prepare: list[tuple[object, Callable[[RequestContext], Any]]] = [
            (h, h.prepare) for h in self.all if hasattr(h, "prepare")
        ]

    def prepare(self, ctx: RequestContext) -> None:
        """The CPU-bound part of ``request`` for a large body, in a worker thread (the loop
        serves other requests meanwhile): parse the body, then each hook's ``prepare``.
        Runs before ``request``, while nothing else holds ``ctx``; touches nothing but
        ``ctx.preparsed`` and ``ctx.prepared``."""
        ctx.preparsed = (parse_json_object(ctx.body, in_pieces=True),)
        for hook, fn in self._prepare:
            ctx.prepared[hook] = fn(ctx)

    def request(self, ctx: RequestContext) -> None:
        for fn in self._request:
            change = fn(ctx)
            if change is not None:  # most hooks change nothing for most requests: no call then
                ctx.apply(change)

    def upstream(self, ctx: RequestContext) -> None:
        for fn in self._upstream:
            change = fn(ctx)
            if change is not None:
                ctx.apply(change)


def parse_json_object(body: bytes, *, in_pieces: bool = False) -> dict[str, Any] | None:
    """The body as a JSON object, or None (empty, not JSON, too deeply nested, not an object).
    ``in_pieces``: parsed value by value (``json_pieces``), for a worker thread: one
    ``json.loads`` call would hold the GIL, and so the event loop, for the whole parse."""
    if not body:
        return None
    try:
        obj = loads_object(body) if in_pieces else json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


# A body is prepared in the worker thread (``RequestHooks.prepare``) when it is big (the JSON
# parse: ~6 ms per MiB) or holds many values: walking them (caps, media, the session hash)
# costs the loop ~3.5 µs per one-word message whatever the bytes (140,000 of them in 4 MiB:
# 0.5 s). Commas count values at C speed (~0.1 ms per MiB); prose has one every 50-100
# characters, so a prompt of a few hundred kB of prose stays on the loop and waits for no
# thread (one of 0.5 MiB waits for the worker, which is what a MiB did before).
PREPARE_OFF_LOOP_BYTES = 1 << 20
PREPARE_OFF_LOOP_VALUES = 4096


def prepare_off_loop(body: bytes) -> bool:
    """Should ``RequestHooks.prepare`` run in the worker thread for this body?"""
    n = len(body)
    return n > PREPARE_OFF_LOOP_BYTES or (
        n > 2 * PREPARE_OFF_LOOP_VALUES and body.count(b",") > PREPARE_OFF_LOOP_VALUES
    )


# A capped prompt of at most this many bytes is redacted here, on the loop (well under a
# millisecond); a bigger one in a worker thread, while the request goes upstream.
INLINE_REDACT_BYTES = 16 << 10


class ParseBody:
    """The model, stream flag, parameters and (redacted) prompt from a JSON body; a body
    that is not a JSON object (or nested past what the parser takes) is forwarded as it
    came and the record flagged unparsed.

    The prompt is capped before anything else reads it (``_promptcap``; ``prompt_bytes``,
    marked ``truncated``); the upstream still gets the body unchanged. What remains is
    redacted here when small, else left on the record as ``prompt_pending`` for the
    handler to redact off the event loop (``prompt_ready`` False until then).
    """

    def __init__(
        self, redactor: Redactor, prompt_bytes: int = DEFAULT_PROMPT_BYTES, inline_bytes: int = INLINE_REDACT_BYTES
    ) -> None:
        self._redactor = redactor
        self._prompt_bytes = prompt_bytes
        self._inline_bytes = inline_bytes

    def prepare(self, ctx: RequestContext) -> Change:
        return self._change(ctx)

    def request(self, ctx: RequestContext) -> Change:
        prepared = ctx.prepared.get(self)
        return prepared if isinstance(prepared, Change) else self._change(ctx)

    def _change(self, ctx: RequestContext) -> Change:
        # Pure: runs in the worker thread for a large body. A list of a hundred thousand
        # small messages is ~0.2 s of walking (caps, media), whatever the bytes.
        obj = ctx.preparsed[0] if ctx.preparsed is not None else parse_json_object(ctx.body)
        if obj is None:
            return Change(record={"parsed": False})
        model = obj.get("model")
        record: dict[str, Any] = {
            "model": model if isinstance(model, str) else None,
            "stream": obj.get("stream") is True,
            "params": {k: obj[k] for k in _PARAMS if k in obj},
            "prompt": {},
        }
        prompt = {k: obj[k] for k in PROMPT_KEYS if k in obj}
        if prompt:
            # Bounded work from here on: cap (media kept whole), strip media, cap again.
            capped, cut1, _ = cap_prompt(prompt, self._prompt_bytes, keep_media=True)
            capped, cut, used = cap_prompt(strip_media(capped), self._prompt_bytes)
            if cut or cut1:
                record["truncated"] = True
            if used <= self._inline_bytes or not self._redactor.enabled:
                record["prompt"] = self._redactor.redact_json(capped)
            else:
                record["prompt_pending"], record["prompt_ready"] = capped, False
        return Change(obj=obj, record=record)


class Attribute:
    """Who sent it: the end user named in the body, ``X-Tokentail-Tags``, the key's fingerprint."""

    def __init__(self, redactor: Redactor, fingerprinter: Fingerprinter) -> None:
        self._redact = redactor.redact_text
        self._fingerprinter = fingerprinter

    def request(self, ctx: RequestContext) -> Change:
        record: dict[str, Any] = {
            "user": end_user(ctx.obj, self._redact),
            "key_fingerprint": self._fingerprinter.fingerprint(ctx.headers, ctx.query),
        }
        tags = ctx.headers.get(TAGS_HEADER)
        if tags:
            record["tags"] = parse_tags(tags, self._redact)
        return Change(record=record)


class Routing:
    """The route for the requested model: its upstream, model rewrite and key.

    ``table`` returns the routes in effect now (a reload swaps them between requests).
    """

    def __init__(self, table: Callable[[], RouteTable]) -> None:
        self._table = table

    def request(self, ctx: RequestContext) -> Change | None:
        rec = ctx.rec
        route = self._table().match(rec.model)
        if route is None:
            return None
        record: dict[str, Any] = {"route": route.name, "upstream_url": str(route.upstream)}
        body: dict[str, Any] = {}
        if route.model is not None and ctx.obj is not None and route.model != rec.model:
            record["upstream_model"] = body["model"] = route.model
        return Change(record=record, body=body, upstream=route.upstream, route=route)


class CaptureMode:
    """What may be captured of this request: the lowest of the proxy's ``--capture``, the
    route's ``capture``, the key's ``--capture-key`` and the request's own
    ``X-Tokentail-Capture`` (which can lower the level, never raise it; an unknown value is
    ignored; the header never goes upstream, ``upstream.TOKENTAIL_ONLY``).

    Below ``full``, the prompt leaves the record here, before any observer sees it, and only
    numeric parameters stay (``stop`` or a JSON schema can quote the prompt); the handler
    keeps the response's text off the record (``capture``)."""

    def __init__(self, default: str = "full", keys: Mapping[str, str] | None = None) -> None:
        self._default = default
        self._keys = dict(keys or {})

    def request(self, ctx: RequestContext) -> Change | None:
        rec, route = ctx.rec, ctx.plan.route
        asked = ctx.headers.get(CAPTURE_HEADER)
        if not asked and self._default == "full" and not self._keys and (route is None or route.capture is None):
            return None  # the common case: nothing lowers the level
        levels = [
            self._default,
            route.capture if route is not None else None,
            self._keys.get(rec.key_fingerprint) if rec.key_fingerprint else None,
            asked.strip().lower() if asked and asked.strip().lower() in CAPTURE_LEVELS else None,
        ]
        mode = lowest(levels)
        if mode == "full":
            return None
        params = {k: v for k, v in rec.params.items() if isinstance(v, (bool, int, float))}
        record = {"capture": mode, "prompt": {}, "prompt_pending": None, "prompt_ready": True, "params": params}
        return Change(record=record)


class AssignSession:
    """The conversation the request belongs to (see ``sessions``)."""

    def __init__(self, tracker: SessionTracker) -> None:
        self._tracker = tracker

    def prepare(self, ctx: RequestContext) -> Any:
        """The conversation's hash (one pass over every message: ~1.5 µs each), off the loop."""
        obj = ctx.preparsed[0] if ctx.preparsed is not None else None
        return self._tracker.prepare(ctx.rec.endpoint, obj) if obj is not None else None

    def request(self, ctx: RequestContext) -> Change:
        # ``assign`` also remembers the request, to key its session when it ends.
        prepared = ctx.prepared.get(self, NOT_PREPARED)
        sid = self._tracker.assign(ctx.rec, ctx.obj, ctx.headers, prepared)
        return Change(record={"session_id": sid})


class InjectUsage:
    """Ask for ``stream_options.include_usage`` on a streamed chat completion that did not,
    so usage is reported, not guessed; the tap then hides that chunk from the client."""

    ENDPOINT = "/chat/completions"  # the other APIs report usage unasked

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def request(self, ctx: RequestContext) -> Change | None:
        obj = ctx.obj
        if not self.enabled or obj is None or not ctx.rec.stream or ctx.rec.endpoint != self.ENDPOINT:
            return None
        opts = obj.get("stream_options")
        if opts is None or (isinstance(opts, dict) and not opts.get("include_usage")):
            return Change(body={"stream_options": {**(opts or {}), "include_usage": True}}, usage_injected=True)
        return None  # the client asked itself (or sent something we leave to the upstream to judge)


class MarkReplay:
    """A replay (``X-Tokentail-Replay-Of: <request id>``, sent by the dashboard's Replay):
    the record, live feed and span carry ``replay_of``. The header itself is tokentail's
    own and never goes upstream (``upstream.TOKENTAIL_ONLY``)."""

    HEADER = "X-Tokentail-Replay-Of"
    _MAX = 64  # request ids are UUIDs; anything longer or odd is ignored, not stored

    def request(self, ctx: RequestContext) -> Change | None:
        value = ctx.headers.get(self.HEADER)
        if not value:
            return None
        value = value.strip()
        if not value or len(value) > self._MAX or not all(c.isalnum() or c in "-_" for c in value):
            return None
        return Change(record={"replay_of": value})


class TraceContext:
    """W3C trace context: the client's (``request``: our span's parent, read by the span
    observer at ``on_start``) and ours (``upstream``: sent upstream in place of the client's).

    ``span_of`` finds our span of a request (``SpanObserver.span_of``); None when spans are
    off, and then the client's own ``traceparent`` passes through untouched.
    """

    def __init__(self, span_of: Callable[[str], Span | None] | None = None) -> None:
        self._span_of = span_of

    def request(self, ctx: RequestContext) -> Change | None:
        headers = ctx.headers
        incoming = {}
        for h in _TRACE_HEADERS:
            value = headers.get(h)
            if value is not None:
                incoming[h] = value
        return Change(record={"trace_headers": incoming}) if incoming else None

    def upstream(self, ctx: RequestContext) -> Change | None:
        span = self._span_of(ctx.rec.id) if self._span_of is not None else None
        if span is None:
            return None
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=set_span_in_context(span))
        return Change(headers=carrier)


def default_hooks(
    *,
    redactor: Redactor,
    fingerprinter: Fingerprinter,
    routes: Callable[[], RouteTable],
    sessions: SessionTracker,
    inject_usage: bool = True,
    span_of: Callable[[str], Span | None] | None = None,
    prompt_bytes: int = DEFAULT_PROMPT_BYTES,
    capture: str = "full",
    capture_keys: Mapping[str, str] | None = None,
) -> list[object]:
    """The request hooks in the order they run (each needs what the ones before it set)."""
    return [
        ParseBody(redactor, prompt_bytes),  # model, stream, params, prompt: everything below reads them
        Attribute(redactor, fingerprinter),  # the end user, named in the body
        Routing(routes),  # by the parsed model
        CaptureMode(capture, capture_keys),  # by the route and the key: before anyone sees the prompt
        AssignSession(sessions),  # falls back to the attributed user
        InjectUsage(inject_usage),  # by the parsed stream flag and endpoint
        MarkReplay(),  # replay_of from tokentail's own header
        TraceContext(span_of),  # request: before on_start (our span's parent); upstream: after it
    ]
