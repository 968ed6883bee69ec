"""The dashboard's state-changing routes (dashboard/actions.py): who may, and what is sent where."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tokentail.dashboard import actions
from tokentail.dashboard.app import create_app
from tokentail.dashboard.config import DashboardConfig, parse_proxy

ADMIN = "admin-s3cret-token"
PROXIES = (parse_proxy("production=http://127.0.0.1:8787"), parse_proxy("canary=http://127.0.0.1:8789"))
LOOPBACK = {"REMOTE_ADDR": "127.0.0.1"}
REMOTE = {"REMOTE_ADDR": "10.0.0.7"}


class FakePost:
    """What the routes would send: answers from a table by URL (404 when absent)."""

    def __init__(self, answers=None):
        self.answers = answers or {}
        self.calls = []

    def __call__(self, url, body, *, token, timeout):
        self.calls.append((url, body, token))
        return self.answers.get(url, (404, {"error": {"message": "not here"}}))


def client(post=None, **cfg):
    config = DashboardConfig(collector="http://127.0.0.1:8788", proxies=PROXIES, **cfg)
    fake = post or FakePost()
    return create_app(config, post=fake).server.test_client(), fake


def post(c, path, body=None, env=LOOPBACK, **headers):
    return c.post(path, data=json.dumps(body or {}), content_type="application/json", environ_base=env, headers=headers)


def test_without_an_admin_token_only_loopback_clients_change_state():
    fake = FakePost({"http://127.0.0.1:8788/api/runs": (201, {"id": 1, "status": "active"})})
    c, _ = client(fake)
    resp = post(c, "/_tt/runs", {"name": "r"}, env=REMOTE)
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "forbidden"
    assert fake.calls == []  # refused before anything is sent
    resp = post(c, "/_tt/runs", {"name": "r"})
    assert resp.status_code == 201 and resp.get_json() == {"id": 1, "status": "active"}
    assert fake.calls == [("http://127.0.0.1:8788/api/runs", {"name": "r"}, None)]


def test_with_an_admin_token_every_caller_presents_it_and_the_server_forwards_it():
    fake = FakePost({"http://127.0.0.1:8788/api/runs/3/end": (200, {"id": 3, "status": "ended"})})
    c, _ = client(fake, admin_token=ADMIN)
    resp = post(c, "/_tt/runs/3/end")  # loopback is not enough once a token is configured
    assert resp.status_code == 401 and "admin token" in resp.get_json()["error"]["message"]
    assert post(c, "/_tt/runs/3/end", Authorization="Bearer wrong").status_code == 401
    resp = post(c, "/_tt/runs/3/end", env=REMOTE, Authorization=f"Bearer {ADMIN}")
    assert resp.status_code == 200 and resp.get_json()["status"] == "ended"
    assert fake.calls == [("http://127.0.0.1:8788/api/runs/3/end", {}, ADMIN)]  # server to collector


def test_unlock_trades_the_token_for_an_httponly_cookie():
    fake = FakePost({"http://127.0.0.1:8787/api/requests/r-1/cancel": (200, {"id": "r-1", "cancelled": True})})
    c, _ = client(fake, admin_token=ADMIN)
    assert post(c, "/_tt/admin", {"token": "wrong"}).status_code == 401
    assert post(c, "/_tt/admin", {"token": ADMIN}, Origin="http://evil.example").status_code == 403
    resp = post(c, "/_tt/admin", {"token": ADMIN})
    cookie = resp.headers["Set-Cookie"]
    assert resp.status_code == 200 and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    resp = post(c, "/_tt/cancel", {"id": "r-1", "proxy": "production"})  # the cookie now
    assert resp.status_code == 200 and resp.get_json() == {"id": "r-1", "cancelled": True}
    assert client(admin_token=None)[0].post("/_tt/admin", json={"token": "x"}).status_code == 409


@pytest.mark.parametrize(
    "headers, status",
    [
        ({"Origin": "http://evil.example"}, 403),  # another site's page
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Origin": "http://localhost"}, 200),  # this dashboard's own origin (the test client's host)
    ],
)
def test_only_this_dashboards_pages_may_ask(headers, status):
    fake = FakePost({"http://127.0.0.1:8788/api/runs": (201, {"id": 1})})
    c, _ = client(fake)
    want = 201 if status == 200 else status
    assert post(c, "/_tt/runs", {"name": "r"}, **headers).status_code == want


def test_a_rebound_host_name_on_loopback_is_refused():
    fake = FakePost({"http://127.0.0.1:8788/api/runs": (201, {"id": 1})})
    c, _ = client(fake)
    resp = post(c, "/_tt/runs", {"name": "r"}, Host="attacker.example:8050", Origin="http://attacker.example:8050")
    assert resp.status_code == 421 and "attacker.example" in resp.get_json()["error"]["message"]
    assert post(c, "/_tt/runs", {"name": "r"}, Host="127.0.0.1:8050").status_code == 201
    assert post(c, "/_tt/runs", {"name": "r"}, Host="[::1]:8050").status_code == 201
    assert fake.calls and len(fake.calls) == 2


def test_a_form_post_is_not_json_and_is_refused():
    c, fake = client()
    resp = c.post("/_tt/runs", data={"name": "r"}, environ_base=LOOPBACK)  # what a cross-site <form> can send
    assert resp.status_code == 415 and fake.calls == []


def test_cancel_asks_the_named_proxy_or_each_until_one_holds_it():
    fake = FakePost({"http://127.0.0.1:8789/api/requests/r%2F2/cancel": (409, {"error": {"message": "finished"}})})
    c, _ = client(fake)
    resp = post(c, "/_tt/cancel", {"id": "r/2"})
    assert resp.status_code == 409  # production said 404, canary holds it (finished)
    assert [u for u, _, _ in fake.calls] == [
        "http://127.0.0.1:8787/api/requests/r%2F2/cancel",
        "http://127.0.0.1:8789/api/requests/r%2F2/cancel",
    ]
    fake.calls.clear()
    assert post(c, "/_tt/cancel", {"id": "nope"}).status_code == 404
    assert post(c, "/_tt/cancel", {"id": "x", "proxy": "canary"}).status_code == 404
    assert [u for u, _, _ in fake.calls][-1].startswith("http://127.0.0.1:8789/")
    assert post(c, "/_tt/cancel", {}).status_code == 400


def test_run_routes_validate_before_calling_the_collector():
    c, fake = client()
    assert post(c, "/_tt/runs", {"label": "x"}).status_code == 400
    assert post(c, "/_tt/runs/1/explode").status_code == 400
    assert fake.calls == []
    no_collector = create_app(DashboardConfig(proxies=PROXIES), post=fake).server.test_client()
    resp = post(no_collector, "/_tt/runs", {"name": "x"})
    assert resp.status_code == 409 and "collector" in resp.get_json()["error"]["message"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"message": "hi"}, "model"),
        ({"model": "m"}, "message"),
        ({"model": "m", "message": "  "}, "message"),
        ({"model": "m", "message": "hi", "temperature": 3}, "temperature"),
        ({"model": "m", "message": "hi", "temperature": "warm"}, "temperature"),
    ],
)
def test_playground_request_validation(body, field):
    with pytest.raises(ValueError, match=field):
        actions.playground_request(body)


def test_playground_request_shape():
    chat = actions.playground_request({"model": " m ", "system": "Be brief.", "message": "hi", "temperature": "0.3"})
    assert chat == {
        "model": "m",
        "stream": True,
        "temperature": 0.3,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
    }
    assert actions.playground_request({"model": "m", "system": " ", "message": "hi"})["messages"] == [
        {"role": "user", "content": "hi"}
    ]


class _Proxy(BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Proxy.seen.append((self.path, dict(self.headers), body))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("x-tokentail-request-id", "req-42")
        self.end_headers()
        for piece in ("Hel", "lo"):
            self.wfile.write(f'data: {{"choices":[{{"delta":{{"content":"{piece}"}}}}]}}\n\n'.encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *args):
        pass


def test_playground_sends_through_the_proxy_with_the_servers_key_and_returns_the_request_id():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Proxy.seen = []
    try:
        proxy = parse_proxy(f"local=http://127.0.0.1:{server.server_port}")
        c = create_app(DashboardConfig(proxies=(proxy,), playground_key="sk-dash-key")).server.test_client()
        resp = post(c, "/_tt/playground", {"model": "m", "message": "hi", "proxy": "local"})
        assert resp.status_code == 200 and resp.get_json() == {"id": "req-42", "status": 200, "proxy": "local"}
        path, headers, body = _Proxy.seen[0]
        assert path == "/v1/chat/completions" and body["stream"] is True
        assert headers["Authorization"] == "Bearer sk-dash-key" and headers["X-Tokentail-Tags"] == "playground"
        page = c.get("/playground").get_data(as_text=True)
        assert "sk-dash-key" not in page  # the key stays on the server
    finally:
        server.shutdown()


def test_the_admin_token_never_reaches_the_page():
    app = create_app(DashboardConfig(collector="http://127.0.0.1:8788", proxies=PROXIES, admin_token=ADMIN))
    html = app.server.test_client().get("/runs").get_data(as_text=True)
    assert ADMIN not in html and '"adminTokenSet":true' in html


def test_model_ids_from_a_models_answer():
    body = {"object": "list", "data": [{"id": "text-embedding-3-small"}, {"id": "b-chat"}, {"id": "a-chat"}, {}]}
    assert actions.model_ids(body) == ["a-chat", "b-chat", "text-embedding-3-small"]
    assert actions.model_ids({"error": "x"}) == [] and actions.model_ids(None) == []


def test_the_playground_lists_the_models_of_the_proxys_upstream():
    class _Models(BaseHTTPRequestHandler):
        def do_GET(self):
            data = json.dumps({"object": "list", "data": [{"id": "sim-gpt-4o"}, {"id": "sim-claude"}]}).encode()
            self.send_response(200 if self.path == "/v1/models" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Models)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        proxy = parse_proxy(f"local=http://127.0.0.1:{server.server_port}")
        c = create_app(DashboardConfig(proxies=(proxy,))).server.test_client()
        resp = c.get("/_tt/models?proxy=local", environ_base=LOOPBACK)
        assert resp.get_json() == {"models": ["sim-claude", "sim-gpt-4o"]}
        none = create_app(DashboardConfig()).server.test_client().get("/_tt/models", environ_base=LOOPBACK)
        assert none.get_json() == {"models": []}
    finally:
        server.shutdown()


def test_the_requests_export_is_relayed_from_the_collector_with_the_read_token():
    class _Collector(BaseHTTPRequestHandler):
        seen: list = []

        def do_GET(self):
            _Collector.seen.append((self.path, self.headers.get("Authorization")))
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.end_headers()
            self.wfile.write(b"request_id,model\nr-1,m\n")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = DashboardConfig(collector=f"http://127.0.0.1:{server.server_port}", read_token="rt-1")
        c = create_app(cfg).server.test_client()
        resp = c.get("/_tt/requests/export?format=csv&status=error&evil=1", environ_base=LOOPBACK)
        assert resp.status_code == 200 and resp.get_data() == b"request_id,model\nr-1,m\n"
        assert "attachment" in resp.headers["Content-Disposition"]
        path, auth = _Collector.seen[0]
        assert path == "/api/requests/export?format=csv&status=error" and auth == "Bearer rt-1"
        assert c.get("/_tt/requests/export?format=xml", environ_base=LOOPBACK).status_code == 400
    finally:
        server.shutdown()


def test_a_run_starts_with_the_scope_forms_text_as_the_collectors_scope():
    fake = FakePost({"http://127.0.0.1:8788/api/runs": (201, {"id": 2, "status": "active"})})
    c, _ = client(fake)
    resp = post(c, "/_tt/runs", {"name": "r", "scope": {"tags": "eval, v2", "user": " bob ", "model": ""}})
    assert resp.status_code == 201
    assert fake.calls[-1][1] == {"name": "r", "scope": {"tags": ["eval", "v2"], "user": "bob"}}
    assert post(c, "/_tt/runs", {"name": "all", "scope": {"user": "  "}}).status_code == 201
    assert fake.calls[-1][1] == {"name": "all"}  # an empty form: a run of all traffic
    resp = post(c, "/_tt/runs", {"name": "r", "scope": {"team": "x"}})
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "invalid_scope"
    assert len(fake.calls) == 2  # refused here, never sent


def test_erase_asks_the_collector_and_every_proxy_with_the_servers_token():
    urls = ["http://127.0.0.1:8788/api/erase", *(p.url + "/api/erase" for p in PROXIES)]
    answers = {u: (200, {"erased": {"live": 1, "in_flight": 0, "raw": 0}}) for u in urls[1:]}
    answers[urls[0]] = (200, {"erased": 3})
    c, fake = client(FakePost(answers), admin_token=ADMIN)
    assert post(c, "/_tt/erase", {"session": "s1"}).status_code == 401  # the admin rule first
    assert fake.calls == []
    resp = post(c, "/_tt/erase", {"session": "s1"}, Authorization=f"Bearer {ADMIN}")
    assert resp.status_code == 200 and resp.get_json()["ok"] is True
    assert [(u, b, t) for u, b, t in fake.calls] == [(u, {"session": "s1"}, ADMIN) for u in urls]
    assert "erased the content of 3 stored spans" in resp.get_json()["results"][0]


def test_erase_names_the_server_that_did_not_and_validates_first():
    answers = {"http://127.0.0.1:8788/api/erase": (200, {"erased": 0})}
    answers[PROXIES[0].url + "/api/erase"] = (200, {"erased": {"live": 0, "in_flight": 0, "raw": 0}})
    c, fake = client(FakePost(answers))  # the canary proxy answers 404 here
    resp = post(c, "/_tt/erase", {"request": "r1"})
    assert resp.status_code == 502 and resp.get_json()["ok"] is False
    assert any("NOT erased" in line and "8789" in line for line in resp.get_json()["results"])
    calls = len(fake.calls)
    for bad in ({}, {"session": ""}, {"user": "u"}, {"session": "s", "request": "r"}, {"session": "x" * 201}):
        assert post(c, "/_tt/erase", bad).status_code == 400
    assert len(fake.calls) == calls
