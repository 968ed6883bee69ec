"""Replay (dashboard/replay.py): the body sent, refusals, the admin rule, the word diff, and end to end."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from tokentail.dashboard import replay, replay_run
from tokentail.dashboard.app import create_app
from tokentail.dashboard.config import DashboardConfig, parse_proxy
from tokentail.dashboard.queries import Reader, SourceError

ADMIN = "admin-s3cret-token"
PROXY = "http://127.0.0.1:8787"
COLLECTOR = "http://127.0.0.1:8788"
LOOPBACK = {"REMOTE_ADDR": "127.0.0.1"}
LIVE = {
    "id": "r1",
    "model": "sim-gpt-4o",
    "endpoint": "/chat/completions",
    "stream": True,
    "messages": [{"role": "user", "content": "my key is [REDACTED:api_key]"}],
    "params": {"temperature": 0.2, "stream_options": {"include_usage": True}},
    "truncated": False,
}


def test_from_live_sends_the_redacted_prompt_and_params():
    body = replay.from_live(LIVE)
    assert body == {"model": "sim-gpt-4o", "messages": LIVE["messages"], "temperature": 0.2}
    sent = replay.retarget(body, {"model": "other"}, "/chat/completions")
    assert sent["model"] == "other" and sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"truncated": True}, "truncated"),
        ({"messages": [{"role": "user", "content": "long…[truncated]"}]}, "truncated"),
        ({"messages": None}, "not captured"),
        ({"parsed": False}, "not JSON"),
    ],
)
def test_from_live_refuses_what_cannot_be_replayed(change, words):
    with pytest.raises(replay.Refused, match=words):
        replay.from_live({**LIVE, **change})


def test_from_span_turns_parts_back_into_chat_messages():
    span = {
        "model": "m",
        "endpoint": "/chat/completions",
        "input_messages": [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}],
        "system_instructions": [{"type": "text", "content": "be brief"}],
        "attributes": {"gen_ai.request.temperature": 0.5},
    }
    assert replay.from_span(span) == {
        "model": "m",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        "temperature": 0.5,
    }
    with pytest.raises(replay.Refused, match="truncated"):
        replay.from_span({**span, "attributes": {"tokentail.content.truncated": True}})
    with pytest.raises(replay.Refused, match="not captured"):
        replay.from_span({**span, "input_messages": None})
    with pytest.raises(replay.Refused, match="image"):
        replay.from_span({**span, "input_messages": [{"role": "user", "parts": [{"type": "image"}]}]})


def test_model_for_route():
    routes = [{"name": "fast", "match": "gpt-fast"}, {"name": "local", "prefix": "llama"}]
    assert replay.model_for_route(routes, "fast", "x") == "gpt-fast"
    assert replay.model_for_route(routes, "local", "llama-3") == "llama-3"
    with pytest.raises(replay.Refused):
        replay.model_for_route(routes, "local", "gpt")
    with pytest.raises(replay.Refused):
        replay.model_for_route(routes, "nope", "gpt")


def test_word_diff():
    assert replay.word_diff("the cat sat", "the dog sat") == [("=", "the "), ("-", "cat"), ("+", "dog"), ("=", " sat")]


@given(hs.text(alphabet="ab \n", max_size=40), hs.text(alphabet="ab \n", max_size=40))
def test_word_diff_gives_back_both_texts(a, b):
    d = replay.word_diff(a, b)
    assert "".join(t for op, t in d if op != "+") == a
    assert "".join(t for op, t in d if op != "-") == b


class FakeFetch:
    def __init__(self, answers):
        self.answers, self.calls = answers, []

    def __call__(self, url, *, token=None, timeout=3.0):
        self.calls.append(url)
        if url in self.answers:
            return self.answers[url]
        raise SourceError("not found", status=404)


def _client(answers, **cfg):
    config = DashboardConfig(collector=COLLECTOR, proxies=(parse_proxy(f"production={PROXY}"),), **cfg)
    fetch = FakeFetch(answers)
    return create_app(config, reader=Reader(config, fetch=fetch)).server.test_client(), fetch


def _post(c, body, **headers):
    data = json.dumps(body)
    return c.post("/_tt/replay", data=data, content_type="application/json", environ_base=LOOPBACK, headers=headers)


def test_a_truncated_capture_is_refused_with_a_clear_message():
    c, _ = _client({f"{PROXY}/api/requests/r1": {**LIVE, "truncated": True}})
    resp = _post(c, {"request_id": "r1", "target": {"variant": "production"}})
    assert resp.status_code == 409
    err = resp.get_json()["error"]
    assert err["code"] == "not_replayable" and "truncated" in err["message"]


def test_unknown_request_and_bad_targets():
    c, _ = _client({})
    assert _post(c, {"request_id": "nope", "target": {"model": "m"}}).status_code == 404
    assert _post(c, {"request_id": "r1", "target": {"variant": "nope"}}).status_code == 400
    assert _post(c, {"request_id": "r1", "target": {"colour": "x"}}).status_code == 400
    assert _post(c, {"target": {"model": "m"}}).status_code == 400


def test_the_admin_rule_applies():
    c, fetch = _client({f"{PROXY}/api/requests/r1": LIVE}, admin_token=ADMIN)
    resp = _post(c, {"request_id": "r1", "target": {"model": "m"}})
    assert resp.status_code == 401
    assert fetch.calls == []  # refused before anything is read or sent
    resp = _post(c, {"request_id": "r1", "target": {"model": "m"}}, Origin="http://evil.example")
    assert resp.status_code in (401, 403)


def _run_span(i: int, **extra) -> dict:
    return {
        "request_id": f"r{i}",
        "model": "m",
        "endpoint": "/chat/completions",
        "input_messages": [{"role": "user", "parts": [{"type": "text", "content": f"q{i}"}]}],
        "attributes": {},
        **extra,
    }


def test_replay_run_plan_skips_what_cannot_be_replayed():
    spans = [
        _run_span(1),
        _run_span(2, attributes={"tokentail.content.truncated": True}),
        _run_span(3, attributes={"tokentail.replay_of": "r1"}),
        _run_span(4, input_messages=None),
    ]
    todo, skipped = replay_run.plan(spans, {"model": "other"})
    assert [rid for rid, _ in todo] == ["r1"] and skipped == 3
    assert todo[0][1]["model"] == "other" and todo[0][1]["messages"] == [{"role": "user", "content": "q1"}]


def test_replay_run_starts_a_new_run_sends_each_request_and_ends_it(monkeypatch):
    config = DashboardConfig(collector=COLLECTOR, proxies=(parse_proxy(f"production={PROXY}"),))
    spans_url = f"{COLLECTOR}/api/spans?limit=1000&run=7&order=asc"
    fetch = FakeFetch({spans_url: {"spans": [_run_span(1), _run_span(2)]}})
    posted, sent = [], []

    def post(url, body, *, token, timeout):
        posted.append((url, body))
        return (201, {"id": 8, "status": "active"}) if url.endswith("/api/runs") else (200, {"id": 8})

    monkeypatch.setattr(
        replay_run, "send_one", lambda proxy, rid, chat, key, timeout: sent.append((rid, chat["model"]))
    )
    monkeypatch.setattr(replay_run, "start_background", lambda fn: fn())  # the work inline: the test sees it done
    c = create_app(config, reader=Reader(config, fetch=fetch), post=post).server.test_client()
    resp = c.post(
        "/_tt/replay-run",
        data=json.dumps({"run_id": 7, "target": {"model": "other"}}),
        content_type="application/json",
        environ_base=LOOPBACK,
    )
    assert resp.status_code == 202, resp.get_json()
    out = resp.get_json()
    assert out["run"] == 8 and out["requests"] == 2 and out["compare"] == "/compare?a=run:7&b=replays:7"
    assert sent == [("r1", "other"), ("r2", "other")]
    assert posted[0] == (f"{COLLECTOR}/api/runs", {"name": "replay of run 7 (model other)"})
    assert posted[-1][0] == f"{COLLECTOR}/api/runs/8/end"


def test_replay_run_needs_the_admin_token_when_configured():
    config = DashboardConfig(collector=COLLECTOR, proxies=(parse_proxy(f"production={PROXY}"),), admin_token=ADMIN)
    fetch = FakeFetch({})
    c = create_app(config, reader=Reader(config, fetch=fetch)).server.test_client()
    resp = c.post(
        "/_tt/replay-run",
        data=json.dumps({"run_id": 7, "target": {"model": "m"}}),
        content_type="application/json",
        environ_base=LOOPBACK,
    )
    assert resp.status_code == 401 and fetch.calls == []
