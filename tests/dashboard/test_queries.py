"""The dashboard's data (dashboard/queries.py): pure reshaping, and the Reader against fakes."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tests.helpers.dashboard import SPAN, T0, metrics_response
from tokentail.dashboard import queries as q
from tokentail.dashboard.config import DashboardConfig, parse_proxy


def test_series_per_group_keeps_gaps_and_scales():
    resp = metrics_response(
        {
            "production": {"metrics": {"error_rate": [0.1, None, 0.0]}},
            "canary": {"metrics": {"error_rate": [None, 0.5, 0.25]}},
        }
    )
    out = q.series(resp, "error_rate", scale=100)
    assert [s.name for s in out] == ["production", "canary"]
    assert out[0].y == [10.0, None, 0.0]
    assert out[1].y == [None, 50.0, 25.0]
    assert len(out[0].x) == 3 and out[0].x[1].timestamp() == T0 + 5


def test_has_data_and_window():
    empty = metrics_response({"production": {"summary": {"requests": 0}}})
    busy = metrics_response({"production": {"summary": {"requests": 0}}, "canary": {"summary": {"requests": 2}}})
    assert not q.has_data(empty) and not q.has_data(None)
    assert q.has_data(busy)
    start, end = q.window(busy)
    assert (end - start).total_seconds() == 15


def test_variant_cards_merge_range_summary_with_live_status():
    metrics = metrics_response(
        {
            "canary": {"summary": {"requests": 4, "request_rate": 0.2, "in_flight": 0.4, "latency_p95_ms": 900}},
            "production": {"summary": {"requests": 10, "request_rate": 0.5}},
        }
    )
    status = {
        "variants": [
            {"name": "production", "up": True, "targets_up": 1, "targets": 1, "current": {"in_flight": 3}},
            {"name": "canary", "up": False, "targets_up": 0, "targets": 1, "current": {"in_flight": None}},
            {"name": "staging", "up": True, "targets_up": 1, "targets": 1, "current": None},
        ]
    }
    cards = q.variant_cards(metrics, status)
    assert [c["name"] for c in cards] == ["production", "canary", "staging"]  # production first
    prod, canary, staging = cards
    assert prod["values"]["in_flight"] == 3  # now, from the live status
    assert canary["values"]["in_flight"] == 0.4  # no live value: the range's
    assert canary["up"] is False and canary["targets"] == "0/1"
    assert staging["requests"] is None and staging["values"]["request_rate"] is None
    assert q.variant_cards(metrics, None)[0]["up"] is None


def test_model_rows_busiest_first_without_idle_models():
    resp = metrics_response(
        {
            "b-model": {"summary": {"requests": 3, "error_rate": 0.0}},
            "a-model": {"summary": {"requests": 3}},
            "idle": {"summary": {"requests": 0}},
            "big": {"summary": {"requests": 30, "latency_p95_ms": 1200}},
        }
    )
    rows = q.model_rows(resp)
    assert [r["name"] for r in rows] == ["big", "a-model", "b-model"]
    assert rows[0]["latency_p95_ms"] == 1200
    assert q.models_in(resp) == ["a-model", "b-model", "big", "idle"]


def test_span_row_is_a_live_list_row():
    row = q.span_row(SPAN)
    assert row["id"] == "r-1" and row["time"] == T0
    assert row["prompt_preview"] == "What is a ring buffer?"
    assert row["text_preview"] == "A fixed-size queue."
    assert row["usage"] == {"input_tokens": 12, "output_tokens": 34, "cached_input_tokens": 0, "source": "reported"}
    assert row["finish_reason"] == "stop"
    long = dict(
        SPAN, output_messages=json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "x" * 5000}]}])
    )  # stored as JSON text: parsed too
    assert len(q.span_row(long)["text_preview"]) == q.PREVIEW_CHARS
    assert q.history_rows([SPAN, {"request_id": None}, "junk"]) == [row]


def test_messages_from_live_prompts_of_each_api():
    chat = q.messages_from_prompt(
        {
            "messages": [
                {"role": "developer", "content": "Rules."},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "Look:"}, {"type": "image_url", "image_url": {}}],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "42"},
            ]
        }
    )
    assert [m["role"] for m in chat] == ["system", "user", "assistant", "tool"]
    assert chat[1]["text"] == "Look:\n[image_url]"
    assert chat[2]["tool_calls"] == [{"id": "c1", "name": "f", "arguments": '{"a": 1}'}]
    assert chat[3]["tool_call_id"] == "c1" and chat[3]["text"] == "42"

    anthropic = q.messages_from_prompt(
        {
            "system": "Be kind.",
            "messages": [
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "g", "input": {"x": 1}}]}
            ],
        }
    )
    assert anthropic[0] == {
        "role": "system",
        "text": "Be kind.",
        "tool_calls": [],
        "tool_call_id": None,
        "reasoning": "",
    }
    assert anthropic[1]["tool_calls"][0]["name"] == "g"

    responses = q.messages_from_prompt(
        {
            "input": [
                {"role": "user", "content": "hi"},
                {"type": "function_call", "name": "h", "arguments": "{}", "call_id": "k"},
            ]
        }
    )
    assert responses[0]["text"] == "hi" and responses[1]["tool_calls"][0]["id"] == "k"
    assert q.messages_from_prompt({"prompt": ["once", "upon"]})[0]["text"] == "once\nupon"
    assert q.prompt_preview(chat) == "Look:\n[image_url]"


def test_request_view_prefers_the_live_copy_and_fills_from_storage():
    live = {
        "id": "r-1",
        "time": T0,
        "variant": "canary",
        "model": "gpt-x",
        "status": "in_flight",
        "messages": [{"role": "user", "content": "What is a ring buffer?"}],
        "params": {"max_tokens": 50},
        "text": "A fixed-si",
        "tool_calls": [],
        "usage": None,
        "ttft_ms": 200.0,
        "trace_id": None,
    }
    v = q.request_view(live, None)
    assert v["in_flight"] and v["in_memory"] and not v["stored"]
    assert v["completion"] == "A fixed-si"
    assert v["request_json"] == {"model": "gpt-x", "messages": live["messages"], "max_tokens": 50}

    both = q.request_view(dict(live, status="ok", text="A fixed-size queue."), SPAN)
    assert both["stored"] and both["status"] == "ok" and not both["in_flight"]
    assert both["trace_id"] == SPAN["trace_id"]  # memory had none: storage fills it
    assert both["usage"]["output_tokens"] == 34

    stored = q.request_view(None, SPAN)
    assert stored["completion"] == "A fixed-size queue." and stored["reasoning"] == "think"
    assert [m["role"] for m in stored["messages"]] == ["system", "user"]
    assert stored["tool_calls"] == [{"id": "call_1", "name": "lookup", "arguments": '{\n  "q": "ring"\n}'}]
    assert "input_messages" not in stored["response_json"]
    assert not q.request_view(None, None)["found"]


class _Fake(BaseHTTPRequestHandler):
    seen: list = []

    def do_GET(self):
        _Fake.seen.append((self.path, self.headers.get("Authorization")))
        if self.path.startswith("/api/spans/missing") or self.path.startswith("/api/requests/"):
            self._send(404, {"error": {"message": "not here"}})
        elif self.path.startswith("/api/metrics"):
            self._send(400, {"error": {"message": "range='9y' is not allowed"}})
        elif self.path.startswith("/api/spans"):
            self._send(200, {"spans": [SPAN]})
        else:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"not json")

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_source():
    server = HTTPServer(("127.0.0.1", 0), _Fake)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    _Fake.seen = []
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_reader_sends_the_token_as_a_header_and_explains_failures(fake_source):
    cfg = DashboardConfig(collector=fake_source, proxies=(parse_proxy(f"p={fake_source}"),), read_token="s3cret")
    r = q.Reader(cfg)
    assert r.spans(since=T0, limit=5) == [SPAN]
    path, auth = _Fake.seen[-1]
    assert path == f"/api/spans?since={T0}&limit=5" and auth == "Bearer s3cret"  # never in the URL
    assert r.span("missing") is None
    assert r.live_request("nope") == (None, [])  # 404 everywhere: not an error worth showing
    with pytest.raises(q.SourceError, match=r"answered 400: range='9y' is not allowed"):
        r.metrics("9y")
    with pytest.raises(q.SourceError, match="did not answer JSON"):
        r.status()


def test_reader_unreachable_and_unconfigured():
    r = q.Reader(DashboardConfig(collector="http://127.0.0.1:9", timeout=1.0))
    with pytest.raises(q.SourceError, match=r"http://127.0.0.1:9/api/status is unreachable"):
        r.status()
    with pytest.raises(q.SourceError, match="no collector configured"):
        q.Reader(DashboardConfig()).status()


def test_a_fresh_stack_charts_the_range_that_has_data():
    n = 180  # 15 minutes of 5 s steps; data only in the last minute
    ys = [None] * (n - 12) + [1.0] * 12
    resp = dict(metrics_response({"production": {"metrics": {"request_rate": ys}}}, n=n), range=q.DEFAULT_RANGE)
    assert q.data_window(dict(resp, range="1h")) == q.window(resp)  # a range the user picked is shown whole
    start, end = q.data_window(resp)
    assert end.timestamp() == resp["end"]
    first = resp["timestamps"][n - 12]
    assert first - 120 <= start.timestamp() <= first  # not squeezed at the right edge of 15 minutes
    assert end.timestamp() - start.timestamp() >= 120
    full = metrics_response({"production": {"metrics": {"request_rate": [1.0] * n}}}, n=n)
    assert q.data_window(full) == q.window(full)  # data from the start: the requested range
    empty = metrics_response({"production": {"metrics": {"request_rate": [None] * n}}}, n=n)
    assert q.data_window(empty) == q.window(empty)
