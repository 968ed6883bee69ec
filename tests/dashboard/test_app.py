"""The Dash app without a browser: page config, routes, access, callbacks' data path."""

from __future__ import annotations

import json
import re

import pytest

from tests.helpers.dashboard import FakeReader, walk
from tokentail.dashboard import callbacks, layout
from tokentail.dashboard.app import COOKIE, create_app, page_config
from tokentail.dashboard.config import DashboardConfig, parse_proxy

TOKEN = "read-s3cret-token"
PROXIES = (parse_proxy("production=http://127.0.0.1:8787"), parse_proxy("canary=http://127.0.0.1:8789"))


def config(**kw):
    return DashboardConfig(collector="http://127.0.0.1:8788", proxies=PROXIES, **kw)


def page_json(html: str) -> dict:
    m = re.search(r'<script id="tt-config" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


def test_page_carries_the_config_but_never_the_read_token():
    app = create_app(config(read_token=TOKEN))
    client = app.server.test_client()
    resp = client.get("/live")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    cfg = page_json(html)
    assert [p["live"] for p in cfg["proxies"]] == ["http://127.0.0.1:8787/api/live", "http://127.0.0.1:8789/api/live"]
    assert cfg["collector"]["events"] == "http://127.0.0.1:8788/api/events"
    assert "token" not in cfg and cfg["tokenUrl"] == "/_tt/token"  # the page fetches it, same-origin
    assert TOKEN not in html  # never written into served HTML
    assert TOKEN not in json.dumps(app.layout.to_plotly_json(), default=str)  # never rendered
    assert client.get("/_tt/token").get_json() == {"token": TOKEN}
    assert client.get("/_tt/token", headers={"Host": "attacker.example"}).status_code == 421
    assert "token" not in page_config(config()) and "tokenUrl" not in page_config(config())


def test_config_script_cannot_be_closed_by_a_url():
    cfg = DashboardConfig(proxies=(parse_proxy("x=http://h:1/</script><b>"),))
    html = create_app(cfg).server.test_client().get("/").get_data(as_text=True)
    assert "</script><b>" not in html
    assert page_json(html)["proxies"][0]["url"] == "http://h:1/</script><b>"


def test_spans_route_returns_live_list_rows():
    cfg = config()
    reader = FakeReader(cfg)
    client = create_app(cfg, reader).server.test_client()
    body = client.get("/_tt/spans?since=1700000000&limit=5000").get_json()
    assert body["rows"][0]["id"] == "r-1" and body["rows"][0]["prompt_preview"] == "What is a ring buffer?"
    assert reader.calls[-1] == ("/api/spans", {"since": 1700000000.0, "limit": 1000})  # capped
    assert client.get("/_tt/spans?since=nan").status_code == 400
    down = create_app(cfg, FakeReader(cfg, down=True)).server.test_client().get("/_tt/spans")
    assert down.status_code == 502 and "unreachable" in down.get_json()["error"]
    none = create_app(DashboardConfig()).server.test_client().get("/_tt/spans").get_json()
    assert none == {"configured": False, "rows": []}


def test_spans_route_pages_history_by_receipt_and_asks_an_older_collector_by_start():
    cfg = config()
    reader = FakeReader(cfg)
    client = create_app(cfg, reader).server.test_client()
    first = client.get("/_tt/spans?limit=200").get_json()
    assert first["received_before"] == 1700000100.25  # the page's cursor from the first load on
    body = client.get("/_tt/spans?received_since=1700000100.25&limit=500").get_json()
    assert reader.calls[-1] == ("/api/spans", {"received_since": 1700000100.25, "limit": 500})
    assert body["received_before"] == 1700000100.25 and body["rows"][0]["id"] == "r-1"
    assert "received_at" in body["rows"][0]
    assert client.get("/_tt/spans?received_since=inf").status_code == 400
    assert client.get("/_tt/spans?received_since=-1").status_code == 400
    assert client.get("/_tt/spans?received_since=" + "9" * 100_000).status_code == 400  # 1e100000: inf
    old = FakeReader(cfg, legacy=True)
    body = create_app(cfg, old).server.test_client().get("/_tt/spans?received_since=1700000100&limit=500").get_json()
    assert old.calls[-1] == ("/api/spans", {"since": 1700000070.0, "limit": 500})  # by start time, as before
    assert body["received_before"] is None and body["rows"][0]["id"] == "r-1"


def test_off_loopback_the_page_needs_the_token_once_then_a_cookie():
    app = create_app(DashboardConfig(host="0.0.0.0", read_token=TOKEN, proxies=PROXIES))
    client = app.server.test_client()
    denied = client.get("/")
    assert denied.status_code == 401 and TOKEN not in denied.get_data(as_text=True)
    assert client.get("/_tt/spans").status_code == 401
    assert client.get("/?token=wrong").status_code == 401
    swap = client.get(f"/live?token={TOKEN}&x=1")
    assert swap.status_code == 303 and swap.headers["Location"].endswith("/live?x=1")
    assert "HttpOnly" in swap.headers["Set-Cookie"] and COOKIE in swap.headers["Set-Cookie"]
    assert client.get("/live").status_code == 200  # the cookie now
    bearer = app.server.test_client().get("/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status_code == 200


def test_overview_data_path_and_collector_down():
    cfg = config()
    res = callbacks.overview(FakeReader(cfg), cfg, "5m", None)
    assert set(res["figures"]) == set(callbacks.CHART_IDS)
    assert res["empty"] is None
    assert [o["value"] for o in res["options"]] == ["canary", "production"]  # the fake answers groups by name
    prod = next(c for c in res["cards"] if getattr(c, "data-variant") == "production")
    in_flight = [n for n in walk(prod) if getattr(n, "data-metric", None) == "in_flight"]
    assert in_flight[0].children == "2"  # the live status's current value, not the range's
    down = callbacks.overview(FakeReader(cfg, down=True), cfg, "bogus", None)
    assert "unreachable" in down["error"] and "figures" not in down


def test_request_path_and_detail_not_found():
    assert callbacks.request_id_from_path("/request/abc%2Fdef") == "abc/def"
    assert callbacks.request_id_from_path("/live") is None
    assert callbacks.request_id_from_path("/request/") is None
    from tokentail.dashboard.queries import request_view

    view = layout.detail_view(request_view(None, None), "abc", ["proxy x is unreachable"])
    text = json.dumps([c for c in view if c is not None], default=lambda o: o.to_plotly_json())
    assert "Request not found" in text and "proxy x is unreachable" in text


@pytest.mark.parametrize("with_collector", [True, False])
def test_empty_states_say_what_to_do(with_collector):
    cfg = config() if with_collector else DashboardConfig()
    text = json.dumps(layout.page(cfg).to_plotly_json(), default=lambda o: o.to_plotly_json())
    if with_collector:
        assert "OPENAI_BASE_URL=http://127.0.0.1:8787/v1" in text
    else:
        assert "No collector configured" in text and "--allowed-origin http://127.0.0.1:8050" in text
        assert "No proxy to follow" in text
