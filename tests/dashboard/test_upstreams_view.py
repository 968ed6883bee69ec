"""The dashboard's Upstreams panel and raw stream card: data from the proxies (a fake fetch),
components rendered to HTML-ish JSON, the callback registered only where its target exists."""

from __future__ import annotations

import json

from dash.development.base_component import Component

from tokentail.dashboard import upstreams_view as uv
from tokentail.dashboard.config import DashboardConfig, parse_proxy
from tokentail.dashboard.queries import Reader, SourceError

UPSTREAMS = {
    "upstreams": [
        {
            "route": "claude",
            "upstream_host": "api.anthropic.com",
            "up": True,
            "last_error": None,
            "last_error_at": None,
            "ratelimit": {
                "kinds": {
                    "requests": {"limit": 50, "remaining": 40, "reset_seconds": 1, "headroom": 0.8},
                    "input_tokens": {"limit": 1000, "remaining": 50, "reset_seconds": 3, "headroom": 0.05},
                },
                "retry_after": None,
            },
        },
        {
            "route": "127.0.0.1",
            "upstream_host": "127.0.0.1",
            "up": False,
            "last_error": "cannot connect",
            "last_error_at": 990.0,
            "ratelimit": None,
        },
    ]
}
RAW = {
    "events": [
        {"seq": 0, "t_ms": 12.5, "raw": 'data: {"a":1}\n\n', "injected": False},
        {"seq": 1, "t_ms": 30.0, "raw": 'data: {"usage":{}}\n\n', "injected": True},
    ],
    "truncated": False,
    "request_body": {"model": "real-model"},
}


def reader(answers: dict[str, object]) -> Reader:
    cfg = DashboardConfig(
        collector="http://127.0.0.1:8788",
        proxies=(parse_proxy("a=http://127.0.0.1:1"), parse_proxy("b=http://127.0.0.1:2")),
    )

    def fetch(url: str, **_kw):
        for suffix, answer in answers.items():
            if url.endswith(suffix):
                if isinstance(answer, SourceError):
                    raise answer
                return answer
        raise SourceError("not found", status=404)

    return Reader(cfg, fetch=fetch)


def text(c: Component) -> str:
    return json.dumps(c.to_plotly_json(), default=lambda o: o.to_plotly_json(), ensure_ascii=False)


def test_rows_from_every_proxy_with_the_tightest_limit():
    rows, errors = uv.fetch_upstreams(reader({":1/api/upstreams": UPSTREAMS, ":2/api/upstreams": SourceError("down")}))
    assert errors == ["down"]
    assert [r["route"] for r in rows] == ["claude", "127.0.0.1"]
    assert rows[0]["headroom"] == (0.05, "input_tokens") and rows[0]["proxy"] == "a"
    assert rows[1]["headroom"] is None
    html = text(uv.upstreams_card(rows, errors, now=1000.0))
    assert "5 % input tokens" in html
    assert '"data-up": "0"' in html and "cannot connect · 10s ago" in html and "tt-bad" in html


def test_empty_panel_says_why():
    html = text(uv.upstreams_card([], ["proxy a: refused"], now=0))
    assert "proxy a: refused" in html


def test_raw_card_marks_the_injected_chunk_and_shows_the_body():
    r = reader({"/api/requests/r1/raw": RAW})
    raw = uv.fetch_raw(r, "r1")
    html = text(uv.raw_card(raw))
    assert '"data-injected": "1"' in html and "injected by tokentail" in html
    assert "+12.5 ms" in html and "real-model" in html and "Events as relayed (2)" in html
    assert uv.fetch_raw(r, "other") is None
    assert "No proxy holds" in text(uv.raw_card(None))
