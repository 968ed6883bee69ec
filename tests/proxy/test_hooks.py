"""The request hooks one by one, on hand-built contexts: no server, no socket."""

from __future__ import annotations

import json
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from yarl import URL

from tokentail.proxy.attribution import Fingerprinter
from tokentail.proxy.hooks import (
    AssignSession,
    Attribute,
    Change,
    InjectUsage,
    ParseBody,
    RequestContext,
    RequestHooks,
    Routing,
    TraceContext,
    UpstreamPlan,
    default_hooks,
    parse_json_object,
    prepare_off_loop,
)
from tokentail.proxy.record import RequestRecord
from tokentail.proxy.redact import Redactor
from tokentail.proxy.routes import RouteTable, parse_routes
from tokentail.proxy.sessions import SessionTracker

DEFAULT = URL("http://default.test/v1")


def context(
    body: Any = b"",
    *,
    path: str = "chat/completions",
    headers: dict[str, str] | None = None,
    query_string: str = "",
    **rec: Any,
) -> RequestContext:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    h = CIMultiDictProxy(CIMultiDict(headers or {}))
    record = RequestRecord(id="r1", variant="v", method="POST", endpoint="/" + path, **rec)
    q = dict(p.split("=", 1) for p in query_string.split("&")) if query_string else None
    return RequestContext("POST", path, query_string, h, raw, record, UpstreamPlan(DEFAULT), query=q)


def parsed(body: Any, **kw: Any) -> RequestContext:
    """A context after ParseBody ran, as the next hooks see it."""
    ctx = context(body, **kw)
    ctx.apply(ParseBody(Redactor()).request(ctx))
    return ctx


def routes(*entries: dict[str, Any], env: dict[str, str] | None = None) -> RouteTable:
    return parse_routes(list(entries), env or {})


# --- ParseBody ---------------------------------------------------------------------------


def test_parse_body_reads_model_stream_params_and_a_redacted_prompt():
    body = {
        "model": "gpt-4o",
        "stream": True,
        "temperature": 0.2,
        "user": "u-1",
        "messages": [{"role": "user", "content": "mail me at bob@example.com"}],
        "unrelated": 1,
    }
    change = ParseBody(Redactor()).request(context(body))
    assert change.obj == body
    rec = change.record
    assert rec["model"] == "gpt-4o" and rec["stream"] is True
    assert rec["params"] == {"temperature": 0.2}  # the user is attribution, not a parameter
    assert "bob@example.com" not in json.dumps(rec["prompt"]) and "REDACTED" in json.dumps(rec["prompt"])
    assert not change.body and not change.headers and change.upstream is None  # the upstream request is untouched


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[1, 2]", b'"text"', b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000],
    ids=["empty", "text", "list", "string", "bad-utf8", "too-deep"],
)
def test_parse_body_leaves_what_is_not_a_json_object_unparsed(body):
    change = ParseBody(Redactor()).request(context(body))
    assert change.record == {"parsed": False} and change.obj is None


def test_parse_body_model_of_the_wrong_type_is_no_model():
    change = ParseBody(Redactor()).request(context({"model": 5, "stream": "yes"}))
    assert change.record["model"] is None and change.record["stream"] is False


def test_parse_json_object():
    assert parse_json_object(b'{"a": 1}') == {"a": 1}
    assert parse_json_object(b"null") is None


# --- Attribute ---------------------------------------------------------------------------


def test_attribute_user_tags_and_key_fingerprint():
    fp = Fingerprinter("secret")
    ctx = parsed(
        {"model": "m", "user": "alice"},
        headers={"Authorization": "Bearer sk-abc", "X-Tokentail-Tags": "team-a, batch, team-a"},
    )
    change = Attribute(Redactor(), fp).request(ctx)
    assert change.record == {"user": "alice", "key_fingerprint": fp.of("sk-abc"), "tags": ["team-a", "batch"]}


def test_attribute_key_from_the_query_and_nothing_named():
    fp = Fingerprinter("secret")
    change = Attribute(Redactor(), fp).request(context(b"", query_string="key=gk-1"))
    assert change.record == {"user": None, "key_fingerprint": fp.of("gk-1")}
    assert Attribute(Redactor(), fp).request(context(b"")).record == {"user": None, "key_fingerprint": None}


# --- Routing -----------------------------------------------------------------------------


ROUTE = {"name": "claude", "prefix": "claude-", "upstream": "https://anthropic.test/v1"}


def test_routing_no_match_changes_nothing():
    ctx = parsed({"model": "gpt-4o"})
    assert Routing(lambda: routes(ROUTE)).request(ctx) is None
    assert Routing(lambda: RouteTable()).request(ctx) is None


def test_routing_picks_the_upstream_and_rewrites_the_model():
    table = routes({**ROUTE, "model": "claude-sonnet-4-5"})
    change = Routing(lambda: table).request(parsed({"model": "claude-x"}))
    assert change is not None
    assert change.upstream == URL("https://anthropic.test/v1") and change.route is table.routes[0]
    assert change.record == {
        "route": "claude",
        "upstream_url": "https://anthropic.test/v1",
        "upstream_model": "claude-sonnet-4-5",
    }
    assert change.body == {"model": "claude-sonnet-4-5"}


def test_routing_without_a_rewrite_leaves_the_body():
    table = routes({**ROUTE, "model": "claude-x"})  # already the model asked for
    change = Routing(lambda: table).request(parsed({"model": "claude-x"}))
    assert change is not None and change.body == {} and "upstream_model" not in change.record


def test_routing_reads_the_table_in_effect_per_request():
    current = [RouteTable()]
    hook = Routing(lambda: current[0])
    assert hook.request(parsed({"model": "claude-x"})) is None
    current[0] = routes(ROUTE)  # a reload swapped the table
    change = hook.request(parsed({"model": "claude-x"}))
    assert change is not None and change.record["route"] == "claude"


# --- AssignSession -----------------------------------------------------------------------


def test_assign_session_explicit_header_and_conversation():
    tracker = SessionTracker()
    ctx = parsed({"model": "m", "messages": []}, headers={"X-Session-Id": "s-given"})
    assert AssignSession(tracker).request(ctx).record == {"session_id": "s-given"}
    ctx = parsed({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    sid = AssignSession(tracker).request(ctx).record["session_id"]
    assert isinstance(sid, str) and sid.startswith("s-")


# --- InjectUsage -------------------------------------------------------------------------


def test_inject_usage_on_a_streamed_chat_completion():
    change = InjectUsage().request(parsed({"model": "m", "stream": True}))
    assert change is not None and change.usage_injected
    assert change.body == {"stream_options": {"include_usage": True}}
    change = InjectUsage().request(parsed({"model": "m", "stream": True, "stream_options": {"x": 1}}))
    assert change is not None and change.body == {"stream_options": {"x": 1, "include_usage": True}}


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"model": "m"}, "chat/completions"),  # not streamed
        ({"model": "m", "stream": True, "stream_options": {"include_usage": True}}, "chat/completions"),
        ({"model": "m", "stream": True, "stream_options": "odd"}, "chat/completions"),
        ({"model": "m", "stream": True}, "responses"),  # reports usage unasked
        ({"model": "m", "stream": True}, "completions"),
    ],
)
def test_inject_usage_only_when_needed(body, path):
    assert InjectUsage().request(parsed(body, path=path)) is None


def test_inject_usage_turned_off():
    assert InjectUsage(enabled=False).request(parsed({"model": "m", "stream": True})) is None


# --- TraceContext ------------------------------------------------------------------------

CLIENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_trace_context_records_the_clients_context():
    ctx = context(b"", headers={"traceparent": CLIENT, "tracestate": "v=1"})
    change = TraceContext().request(ctx)
    assert change is not None and change.record == {"trace_headers": {"traceparent": CLIENT, "tracestate": "v=1"}}
    assert TraceContext().request(context(b"")) is None


def test_trace_context_sends_our_span_upstream():
    span = NonRecordingSpan(
        SpanContext(
            trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
            span_id=0x1111111111111111,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
            trace_state=TraceState([("v", "1")]),
        )
    )
    hook = TraceContext({"r1": span}.get)
    change = hook.upstream(context(b""))
    assert change is not None
    assert change.headers == {
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01",
        "tracestate": "v=1",
    }
    assert TraceContext({}.get).upstream(context(b"")) is None  # no span (ended, or not sampled in)
    assert TraceContext(None).upstream(context(b"")) is None  # spans off: the client's header passes


# --- RequestHooks and the default order ---------------------------------------------------


def test_hooks_run_per_event_in_list_order_and_see_earlier_changes():
    seen: list[str] = []

    class A:
        def request(self, ctx: RequestContext) -> Change:
            seen.append("A.request")
            return Change(record={"model": "from-a"})

    class B:
        def request(self, ctx: RequestContext) -> Change | None:
            seen.append(f"B.request saw {ctx.rec.model}")
            return None

        def upstream(self, ctx: RequestContext) -> Change:
            seen.append("B.upstream")
            return Change(headers={"x-b": "1"})

    hooks = RequestHooks([A(), B()])
    ctx = context(b"")
    hooks.request(ctx)
    assert seen == ["A.request", "B.request saw from-a"] and ctx.plan.headers == {}
    hooks.upstream(ctx)
    assert seen[-1] == "B.upstream" and ctx.plan.headers == {"x-b": "1"}


def test_a_change_naming_no_record_field_fails():
    with pytest.raises(AttributeError):
        context(b"").apply(Change(record={"modle": "typo"}))


def test_default_hooks_end_to_end_on_a_routed_streamed_chat():
    table = routes({**ROUTE, "model": "claude-sonnet-4-5", "api_key_env": "K"}, env={"K": "sk-route"})
    hooks = RequestHooks(
        default_hooks(
            redactor=Redactor(),
            fingerprinter=Fingerprinter("s"),
            routes=lambda: table,
            sessions=SessionTracker(),
        )
    )
    assert [type(h).__name__ for h in hooks.all] == [
        "ParseBody",
        "Attribute",
        "Routing",
        "CaptureMode",
        "AssignSession",
        "InjectUsage",
        "MarkReplay",
        "TraceContext",
    ]
    ctx = context({"model": "claude-x", "stream": True, "user": "bob", "messages": []})
    hooks.request(ctx)
    hooks.upstream(ctx)
    rec, plan = ctx.rec, ctx.plan
    assert (rec.model, rec.route, rec.upstream_model, rec.user, rec.session_id) == (
        "claude-x",
        "claude",
        "claude-sonnet-4-5",
        "bob",
        "user:bob",
    )
    assert plan.base == URL("https://anthropic.test/v1") and plan.route is table.routes[0]
    assert plan.body == {"model": "claude-sonnet-4-5", "stream_options": {"include_usage": True}}
    assert plan.usage_injected and plan.headers == {}


# --- prepare: the CPU-bound part in the worker thread, for a large or value-dense body -------


def _record_fields(rec: RequestRecord) -> dict[str, Any]:
    names = ("model", "stream", "params", "prompt", "prompt_pending", "prompt_ready", "truncated", "parsed", "user")
    return {n: getattr(rec, n) for n in names}


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi jane@example.com"}]},
        {"model": "m", "messages": [{"role": "user", "content": "x"} for _ in range(20_000)]},  # value-dense
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": "a." * (1 << 20) + "@"}]},  # 2 MiB
        {"model": "m", "input": "hi", "instructions": "be brief"},
        [1, 2, 3],  # not an object: unparsed either way
        b"{not json",
    ],
)
def test_prepare_then_request_gives_what_request_alone_gives(body):
    def run(prepare: bool) -> tuple[RequestContext, SessionTracker]:
        tracker = SessionTracker()
        tracker._key = b"k" * 32  # the same key in both runs: session ids comparable
        hooks = RequestHooks(
            default_hooks(
                redactor=Redactor(), fingerprinter=Fingerprinter("s"), routes=lambda: routes(), sessions=tracker
            )
        )
        ctx = context(body)
        if prepare:
            before = _record_fields(ctx.rec)
            hooks.prepare(ctx)
            assert _record_fields(ctx.rec) == before and ctx.obj is None  # prepare changed nothing
            assert set(ctx.prepared) == {h for h in hooks.all if type(h).__name__ in ("ParseBody", "AssignSession")}
        hooks.request(ctx)
        ctx.rec.status, ctx.rec.text = "ok", "reply"
        tracker.on_end(ctx.rec)
        return ctx, tracker

    (alone, t1), (prepared, t2) = run(False), run(True)
    assert _record_fields(prepared.rec) == _record_fields(alone.rec)
    assert prepared.obj == alone.obj and prepared.plan.body == alone.plan.body
    assert (prepared.rec.session_id is None) == (alone.rec.session_id is None)
    assert list(t1._known) == list(t2._known)  # the same continuation key: the hash is the same


def test_prepare_off_loop_for_a_big_or_value_dense_body():
    sentence = "The quick brown fox jumps over the lazy dog, then rests a while by the river. "
    prose = json.dumps({"messages": [{"role": "user", "content": sentence * 3000}]}).encode()
    assert len(prose) > 200 << 10 and not prepare_off_loop(prose)  # a prompt of a few hundred kB of prose: on the loop
    assert prepare_off_loop(json.dumps({"messages": [{"role": "user", "content": sentence * 6000}]}).encode())
    assert prepare_off_loop(json.dumps({"messages": [{"role": "user", "content": "x" * (1 << 20)}]}).encode())
    dense = json.dumps({"messages": [{"role": "user", "content": "x"} for _ in range(3000)]}).encode()
    assert len(dense) < 100 << 10 and prepare_off_loop(dense)
    assert prepare_off_loop(json.dumps({"input": list(range(5000))}).encode())  # a list of numbers counts too
    assert not prepare_off_loop(b"," * 8192)  # tiny: on the loop whatever it holds
