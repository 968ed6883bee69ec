"""The Prometheus source's HTTP side: what it sends (form, auth), and every way it can fail.

A small recording HTTP server stands in for a Prometheus-compatible API here (headers and
failures a real one does not produce on demand); the figures are checked against Debian's
real Prometheus in test_metrics_source_e2e.py.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import closed_port_url
from tests.helpers.dashboard import walk
from tokentail.dashboard import callbacks, metrics_source
from tokentail.dashboard.app import create_app
from tokentail.dashboard.config import DashboardConfig, PrometheusConfig, parse_metrics_source
from tokentail.dashboard.metrics_source import PrometheusSource, for_config
from tokentail.dashboard.queries import Reader, SourceError

PASSWORD = "pr0m-p@ss:word"
TOKEN = "bearer-s3cret"
EMPTY_MATRIX = {"status": "success", "data": {"resultType": "matrix", "result": []}}
EMPTY_VECTOR = {"status": "success", "data": {"resultType": "vector", "result": []}}


class Recorder:
    """A loopback HTTP server that records every request and answers ``reply(path, form)``."""

    def __init__(self, reply) -> None:
        self.requests: list[dict] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                form = dict(urllib.parse.parse_qsl(body.decode()))
                recorder.requests.append({"path": self.path, "headers": dict(self.headers), "form": form})
                status, payload = reply(self.path, form)
                if isinstance(payload, (dict, list)):
                    payload = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except BrokenPipeError:
                    pass  # the client gave up (the timeout test)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder():
    servers: list[Recorder] = []

    def make(reply) -> Recorder:
        r = Recorder(reply)
        servers.append(r)
        return r

    yield make
    for r in servers:
        r.close()


def empty(path: str, form: dict) -> tuple[int, dict]:
    return 200, EMPTY_MATRIX if path.endswith("query_range") else EMPTY_VECTOR


def test_it_posts_the_queries_with_basic_auth_from_the_url(recorder):
    prom = recorder(empty)
    host = prom.url.removeprefix("http://")
    url = f"http://reader:{urllib.parse.quote(PASSWORD, safe='')}@{host}/prom/api/v1/"
    cfg = parse_metrics_source(f"prometheus={url}", interval=1.0)
    src = PrometheusSource(cfg, clock=lambda: 1_800_000_003.0)
    resp = src.metrics("15m", "model")
    assert resp["groups"] == [] and resp["step"] == 10 and resp["source"] == "prometheus"
    rng, inst = prom.requests
    assert rng["path"] == "/prom/api/v1/query_range" and inst["path"] == "/prom/api/v1/query"
    expected = "Basic " + base64.b64encode(f"reader:{PASSWORD}".encode()).decode()
    assert rng["headers"]["Authorization"] == inst["headers"]["Authorization"] == expected
    assert rng["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert rng["headers"]["Host"] == host  # no user info on the wire but in the header
    assert rng["form"]["step"] == "10s" and float(rng["form"]["end"]) == 1_800_000_000.0
    assert float(rng["form"]["start"]) == 1_800_000_000.0 - 88 * 10  # the end of bucket 0 (of 90)
    assert "sum by (model)" in rng["form"]["query"] and float(inst["form"]["time"]) == 1_800_000_003.0


def test_a_token_is_sent_as_bearer_and_a_variant_filter_is_never_needed(recorder):
    prom = recorder(empty)
    src = PrometheusSource(PrometheusConfig(prom.url, token=TOKEN, scrape_interval=15))
    src.metrics("5m")
    src.status()
    assert {r["headers"]["Authorization"] for r in prom.requests} == {f"Bearer {TOKEN}"}
    assert "up and on (job, instance)" in prom.requests[-1]["form"]["query"]


def test_the_scrape_interval_is_read_from_the_data_once(recorder):
    now = 1_800_000_003.0

    def reply(path, form):
        if form["query"] == "tokentail_in_flight_requests[10m]":
            values = [[now - 600 + 30 * i, "0"] for i in range(20)]
            result = [{"metric": {"__name__": "tokentail_in_flight_requests"}, "values": values}]
            return 200, {"status": "success", "data": {"resultType": "matrix", "result": result}}
        return empty(path, form)

    prom = recorder(reply)
    src = PrometheusSource(PrometheusConfig(prom.url), clock=lambda: now)
    first = src.metrics("5m")
    assert first["step"] == 30 and first["resolution"] == "30s" and len(first["timestamps"]) == 10
    src.metrics("15m", "model")
    probes = [r for r in prom.requests if "[10m]" in r["form"]["query"]]
    assert len(probes) == 1  # read once, kept for minutes


def test_a_prometheus_error_is_one_line_without_credentials(recorder):
    answer = {"status": "error", "errorType": "bad_data", "error": "1:1: parse error: unexpected character"}
    prom = recorder(lambda path, form: (400, answer))
    host = prom.url.removeprefix("http://")
    src = PrometheusSource(parse_metrics_source(f"prometheus=http://u:{PASSWORD}@{host}"))
    with pytest.raises(SourceError) as err:
        src.metrics("1h")
    assert str(err.value) == f"Prometheus at http://{host}: bad_data: 1:1: parse error: unexpected character"
    assert PASSWORD not in str(err.value)


@pytest.mark.parametrize(
    "status, payload, expected",
    [
        (401, b"Unauthorized", "answered 401"),
        (502, b"<html>bad gateway</html>", "answered 502"),
        (200, b"<html>not an API</html>", "did not answer JSON"),
        (200, {"status": "success", "data": {"resultType": "scalar", "result": [1, "1"]}}, "holds no matrix"),
    ],
)
def test_answers_that_are_not_an_api_say_so(recorder, status, payload, expected):
    prom = recorder(lambda path, form: (status, payload))
    host = prom.url.removeprefix("http://")
    src = PrometheusSource(parse_metrics_source(f"prometheus=http://u:{PASSWORD}@{host}"))
    with pytest.raises(SourceError, match=expected) as err:
        src.metrics("5m")
    assert PASSWORD not in str(err.value) and "\n" not in str(err.value)


def test_an_answer_too_large_is_refused(recorder, monkeypatch):
    monkeypatch.setattr(metrics_source, "_MAX_BODY", 1024)
    prom = recorder(lambda path, form: (200, b'{"status": "success", "pad": "' + b"x" * 4096 + b'"}'))
    with pytest.raises(SourceError, match="answered more than"):
        PrometheusSource(PrometheusConfig(prom.url)).status()


def test_a_slow_prometheus_times_out(recorder):
    def slow(path, form):
        time.sleep(2)
        return empty(path, form)

    prom = recorder(slow)
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="unreachable"):
        PrometheusSource(PrometheusConfig(prom.url, timeout=0.3)).metrics("5m")
    assert time.monotonic() - t0 < 1.5


def test_unreachable_prometheus_is_a_status_line_not_a_traceback():
    url = closed_port_url()
    cfg = DashboardConfig(prometheus=PrometheusConfig(url))
    src = for_config(cfg, Reader(cfg))
    assert isinstance(src, PrometheusSource)
    res = callbacks.overview(src, cfg, "5m", None)
    assert "figures" not in res and "unreachable" in res["error"] and url in res["error"]
    text = " ".join(str(n) for n in walk_texts(res["status"]))
    assert "Could not load metrics" in text


def walk_texts(children) -> list[str]:
    out: list[str] = []
    for c in children if isinstance(children, list) else [children]:
        if isinstance(c, str):
            out.append(c)
        elif c is not None:
            out += [n.children for n in walk(c) if isinstance(getattr(n, "children", None), str)]
    return out


def test_the_overview_callback_through_dash_with_prometheus_down():
    """No collector, Prometheus down: the Overview page exists, and its callback answers with why."""
    url = closed_port_url()
    app = create_app(DashboardConfig(prometheus=PrometheusConfig(url, scrape_interval=5)))
    client = app.server.test_client()
    page = client.get("/_dash-layout").get_data(as_text=True)
    assert '"ov-poll"' in page and "The Overview charts the collector" not in page and "Prometheus answers" in page
    assert url.split("//")[1] not in client.get("/").get_data(as_text=True)  # server-side only
    outputs = ["ov-grid.children", "ov-cards.children", "ov-models.children", "ov-status.children"]
    outputs += ["ov-empty.children", "ov-model.options"]
    body = {
        "output": ".." + "...".join(outputs) + "..",
        "outputs": [{"id": o.split(".")[0], "property": o.split(".")[1]} for o in outputs],
        "inputs": [
            {"id": "ov-poll", "property": "n_intervals", "value": 3},
            {"id": "ov-range", "property": "value", "value": "1h"},
            {"id": "ov-model", "property": "value", "value": None},
            {"id": "url", "property": "pathname", "value": "/"},
        ],
        "changedPropIds": ["ov-poll.n_intervals"],
        "state": [{"id": "ov-model", "property": "options", "value": []}],
    }
    resp = client.post("/_dash-update-component", json=body)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    status = json.dumps(resp.get_json()["response"]["ov-status"])
    assert "Could not load metrics" in status and "unreachable" in status and "Traceback" not in status


def test_the_collector_stays_the_default_source():
    cfg = DashboardConfig(collector="http://127.0.0.1:8788")
    reader = Reader(cfg)
    assert for_config(cfg, reader) is reader


def test_a_prometheus_without_tokentail_series_is_the_no_traffic_state(recorder):
    prom = recorder(empty)
    cfg = DashboardConfig(prometheus=PrometheusConfig(prom.url, scrape_interval=5))
    res = callbacks.overview(for_config(cfg, Reader(cfg)), cfg, "1h", None)
    assert "error" not in res and res["cards"] == [] and res["options"] == []
    assert "as Prometheus scrapes it" in " ".join(walk_texts(res["empty"]))
    assert len(prom.requests) == 5  # two groupings (range + instant each) and the status
