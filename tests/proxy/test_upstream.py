"""Building the upstream request from the hooks' plan (pure)."""

from __future__ import annotations

import json

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from tokentail.proxy import upstream
from tokentail.proxy.hooks import RequestContext, UpstreamPlan
from tokentail.proxy.record import RequestRecord
from tokentail.proxy.routes import parse_routes

BASE = URL("http://up.test/v1")


def ctx(
    headers: list[tuple[str, str]] | None = None,
    *,
    path: str = "chat/completions",
    query_string: str = "",
    body: bytes = b"",
    obj: dict | None = None,
    plan: UpstreamPlan | None = None,
) -> RequestContext:
    rec = RequestRecord(id="r", variant="v", method="POST", endpoint="/" + path)
    h = CIMultiDictProxy(CIMultiDict(headers or []))
    return RequestContext("POST", path, query_string, h, body, rec, plan or UpstreamPlan(BASE), obj=obj)


def keyed_route():
    (route,) = parse_routes(
        [
            {
                "name": "g",
                "match": "m",
                "upstream": "https://g.test/v1beta",
                "api_key_env": "K",
                "auth_header": "x-goog-api-key",
            }
        ],
        {"K": "route-key"},
    ).routes
    return route


def test_url_is_base_plus_path_and_the_query_as_sent():
    # The context holds the raw (still percent-encoded) path and query: sent byte for byte.
    out = upstream.build(ctx(path="files/a%20b", query_string="a=1&b=%2F&key=k"))
    assert str(out.url) == "http://up.test/v1/files/a%20b?a=1&b=%2F&key=k"
    out = upstream.build(ctx(path="models"))
    assert str(out.url) == "http://up.test/v1/models" and out.body is None


@pytest.mark.parametrize("path", ["../admin", "%2E%2E/admin", "a/../../admin", "..", "./x", "..%2Fadmin", "a/b/.."])
def test_a_path_with_a_dot_segment_is_refused(path):
    with pytest.raises(upstream.PathRefused):
        upstream.build(ctx(path=path))


def test_hop_by_hop_and_connection_named_headers_dropped_identity_asked():
    out = upstream.build(
        ctx(
            [
                ("Connection", "keep-alive, X-Private"),
                ("X-Private", "1"),
                ("Keep-Alive", "timeout=5"),
                ("Host", "proxy"),
                ("Accept-Encoding", "gzip"),
                ("Authorization", "Bearer client"),
                ("X-Multi", "a"),
                ("X-Multi", "b"),
            ]
        )
    )
    h = out.headers
    assert "X-Private" not in h and "Keep-Alive" not in h and "Host" not in h and "Connection" not in h
    assert h["Accept-Encoding"] == "identity"
    assert h["Authorization"] == "Bearer client"  # no route key: the client's credentials pass
    assert h.getall("X-Multi") == ["a", "b"]


def test_a_route_key_replaces_every_client_credential_and_the_key_param():
    route = keyed_route()
    plan = UpstreamPlan(route.upstream, route=route)
    out = upstream.build(
        ctx(
            [("Authorization", "Bearer client"), ("x-api-key", "c"), ("Cookie", "s=1"), ("X-Other", "ok")],
            query_string="alt=sse&key=client-key",
            plan=plan,
        )
    )
    assert str(out.url) == "https://g.test/v1beta/chat/completions?alt=sse"
    h = out.headers
    assert "Authorization" not in h and "x-api-key" not in h and "Cookie" not in h
    assert h["x-goog-api-key"] == "route-key" and h["X-Other"] == "ok"


def test_plan_headers_replace_the_clients():
    plan = UpstreamPlan(BASE, headers={"traceparent": "ours"})
    out = upstream.build(ctx([("traceparent", "theirs")], plan=plan))
    assert out.headers.getall("traceparent") == ["ours"]


def test_body_is_the_clients_bytes_unless_the_plan_changes_fields():
    raw = b'{"model": "a",  "stream": true}'
    out = upstream.build(ctx(body=raw, obj={"model": "a", "stream": True}))
    assert out.body == raw  # byte for byte, spacing included
    plan = UpstreamPlan(BASE, body={"model": "b", "stream_options": {"include_usage": True}})
    out = upstream.build(ctx(body=raw, obj={"model": "a", "stream": True}, plan=plan))
    assert out.obj == {"model": "b", "stream": True, "stream_options": {"include_usage": True}}
    assert list(json.loads(out.body)) == ["model", "stream", "stream_options"]  # the client's order kept


def test_plan_body_on_an_unparsed_body_is_ignored():
    out = upstream.build(ctx(body=b"not json", plan=UpstreamPlan(BASE, body={"model": "b"})))
    assert out.body == b"not json" and out.obj is None


def test_dump_json_keeps_a_lone_surrogate_escaped():
    obj = json.loads('{"t": "\\ud800"}')
    assert upstream.dump_json(obj) == b'{"t":"\\ud800"}'
    assert upstream.dump_json({"t": "é"}) == '{"t":"é"}'.encode()


# --- fields the client did not send are spliced into its bytes ------------------------------

USAGE = {"stream_options": {"include_usage": True}}
SPLICED = b'"stream_options":{"include_usage":true}'


def sent(raw: bytes, fields: dict = USAGE) -> upstream.UpstreamRequest:
    return upstream.build(ctx(body=raw, obj=json.loads(raw), plan=UpstreamPlan(BASE, body=dict(fields))))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "a",  "stream": true}',
        b'{"model":"a","stream":true,"model":"b"}',  # a duplicate key: still the client's last one wins
        b' \r\n\t{"stream": true}\n',  # JSON whitespace before the object and after it
        b"{}",
        b"{ \n }",
        '{"model": "modèle", "messages": [{"role": "user", "content": "こんにちは \\ud83d\\ude00 😀"}]}'.encode(),
        b'{"t": "\\ud800", "n": 1e400, "x": -0.0}',  # what a re-serialisation would respell
        b'{"a": {"stream_options": 1}, "b": ["stream_options"]}',  # the key only nested or as a value
    ],
)
def test_a_field_the_client_did_not_send_is_spliced_in_after_the_opening_brace(raw):
    out = sent(raw)
    start = len(raw) - len(raw.lstrip())
    assert out.body is not None and out.body.startswith(raw[: start + 1] + SPLICED)
    rest = out.body[start + 1 + len(SPLICED) :]
    assert rest == (b"," if json.loads(raw) else b"") + raw[start + 1 :]  # every other byte as sent
    today = {**json.loads(raw), **USAGE}  # what re-serialising the merged object sends
    assert json.loads(out.body) == json.loads(upstream.dump_json(today)) == out.obj
    assert list(out.obj) == list(json.loads(out.body))  # the record's object in the order sent


def test_a_four_mib_body_is_spliced_not_serialised_again():
    raw = json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "x" * (4 << 20)}]})
    out = sent(raw.encode())
    assert out.body == b"{" + SPLICED + b"," + raw.encode()[1:]


@pytest.mark.parametrize(
    ("raw", "fields"),
    [
        (b'{"stream_options": {"include_usage": false}}', USAGE),  # the client's own key: merged
        (b'{"stream_options": null, "model": "a"}', USAGE),
        (b'{"model": "a"}', {"model": "b"}),  # a route's model rewrite
        (b'{"model": "a"}', {"model": "b", **USAGE}),
        (b'\xef\xbb\xbf{"model": "a"}', USAGE),  # a byte order mark
        ('{"model": "a"}'.encode("utf-16-le"), USAGE),
        ('{"model": "a"}'.encode("utf-32"), USAGE),
    ],
)
def test_a_field_the_client_sent_or_an_odd_encoding_serialises_the_object_again(raw, fields):
    obj = json.loads(raw)
    assert upstream.splice_fields(raw, obj, fields) is None
    out = sent(raw, fields)
    assert out.body == upstream.dump_json({**obj, **fields}) and out.obj == {**obj, **fields}
    assert list(out.obj) == list(obj) + [k for k in fields if k not in obj]  # the client's order kept


def test_splice_refuses_what_is_not_an_object():
    assert upstream.splice_fields(b"[1, 2]", {}, USAGE) is None
    assert upstream.splice_fields(b"  ", {}, USAGE) is None
    assert upstream.splice_fields(b"{}", {}, {}) is None
