"""The access policy's Flask adapter on the real dashboard: every page, /_tt/* and Dash's
callbacks answer only allowed host names; state changes only this page's own origin, as
JSON; strict security headers on every answer; the read token never in served HTML."""

from __future__ import annotations

import json

import pytest

from tokentail.dashboard.app import COOKIE, create_app
from tokentail.dashboard.config import DashboardConfig, parse_proxy

PROXIES = (parse_proxy("production=http://127.0.0.1:8787"), parse_proxy("canary=http://localhost:8789"))
LOOPBACK = {"REMOTE_ADDR": "127.0.0.1"}
TOKEN = "read-s3cret-token"


class FakePost:
    def __init__(self):
        self.calls = []

    def __call__(self, url, body, *, token, timeout):
        self.calls.append(url)
        return 200, {"ok": True}


def make(**cfg):
    fake = FakePost()
    config = DashboardConfig(collector="http://127.0.0.1:8788", proxies=PROXIES, **cfg)
    return create_app(config, post=fake).server.test_client(), fake


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/"),
        ("GET", "/live"),
        ("GET", "/request/abc"),
        ("GET", "/_tt/spans"),
        ("GET", "/_tt/token"),
        ("GET", "/_dash-layout"),
        ("POST", "/_dash-update-component"),
        ("POST", "/_tt/runs"),
        ("POST", "/_tt/cancel"),
        ("POST", "/_tt/admin"),
    ],
)
def test_every_page_and_route_answers_only_allowed_host_names(method, path):
    c, fake = make()
    kw = {"data": "{}", "content_type": "application/json"} if method == "POST" else {}
    resp = c.open(path, method=method, headers={"Host": "attacker.example:8050"}, environ_base=LOOPBACK, **kw)
    assert resp.status_code == 421 and resp.get_json()["error"]["code"] == "misdirected_request"
    assert fake.calls == []
    assert "attacker" not in resp.get_data(as_text=True).replace("attacker.example:8050", "")


def test_allowed_host_for_a_name_behind_a_load_balancer():
    c, _ = make(allowed_hosts=frozenset({"tokentail.example.com"}))
    assert c.get("/", headers={"Host": "tokentail.example.com"}).status_code == 200
    assert c.get("/", headers={"Host": "other.example.com"}).status_code == 421


@pytest.mark.parametrize(
    "headers, content_type, expected",
    [
        ({"Origin": "https://evil.example"}, "application/json", 403),
        ({"Origin": "http://localhost:9999"}, "application/json", 403),  # another port, another origin
        ({"Sec-Fetch-Site": "cross-site"}, "application/json", 403),
        ({}, "text/plain", 415),
        ({"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}, "application/json", 200),
    ],
)
def test_state_changes_only_from_this_dashboards_pages(headers, content_type, expected):
    c, fake = make()
    body = json.dumps({"id": "r-1"})
    resp = c.post("/_tt/cancel", data=body, content_type=content_type, headers=headers, environ_base=LOOPBACK)
    assert resp.status_code == expected
    assert fake.calls == ([] if expected != 200 else ["http://127.0.0.1:8787/api/requests/r-1/cancel"])


def test_dash_callbacks_are_reads_not_state_changes():
    # With an admin token configured, a callback (a read) still needs none; a foreign host still gets 421.
    c, _ = make(admin_token="adm")
    resp = c.post("/_dash-update-component", data="{}", content_type="application/json", environ_base=LOOPBACK)
    assert resp.status_code != 401 and resp.status_code != 403


def test_security_headers_on_every_answer():
    c, _ = make()
    for resp in (c.get("/"), c.get("/_tt/spans"), c.get("/_tt/healthz"), c.get("/assets/tokentail.js")):
        csp = resp.headers["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["default-src"] == "'self'"
        assert directives["img-src"] == "'self' data:"
        assert directives["frame-ancestors"] == "'none'"
        assert directives["connect-src"] == "'self' http://127.0.0.1:8787 http://localhost:8789 http://127.0.0.1:8788"
        assert "'unsafe-eval'" not in csp and "'unsafe-inline'" not in directives["script-src"]
        assert directives["script-src"].startswith("'self' 'sha256-")  # Dash's inline renderer script, by hash
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
    page = c.get("/")
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Cache-Control"] == "no-store"
    assert '<meta name="referrer" content="no-referrer">' in page.get_data(as_text=True)


def test_the_read_token_is_never_in_served_html_and_its_route_is_gated():
    c, _ = make(read_token=TOKEN)
    for path in ("/", "/live", "/runs", "/_dash-layout"):
        assert TOKEN not in c.get(path).get_data(as_text=True)
    token = c.get("/_tt/token")
    assert token.get_json() == {"token": TOKEN} and token.headers["Cache-Control"] == "no-store"
    # Off loopback the route wants the token like the page does (the cookie, once traded).
    off, _ = make(read_token=TOKEN, host="0.0.0.0")
    assert off.get("/_tt/token").status_code == 401
    assert off.get(f"/live?token={TOKEN}").status_code == 303
    assert off.get_cookie(COOKIE) is not None
    assert off.get("/_tt/token").get_json() == {"token": TOKEN}
    assert off.get("/_tt/token", headers={"Host": "attacker.example"}).status_code == 421
