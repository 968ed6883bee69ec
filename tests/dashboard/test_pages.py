"""Sessions, runs and the playground without a browser: paths, views from literal data, attribution rows."""

from __future__ import annotations

import json

import pytest

from tests.helpers.dashboard import SPAN, T0, walk
from tokentail.dashboard import layout, runs_page, sessions_page
from tokentail.dashboard import queries as q
from tokentail.dashboard.config import DashboardConfig, parse_proxy


def text_of(component) -> str:
    return json.dumps(component if isinstance(component, list) else [component], default=lambda o: o.to_plotly_json())


def by_attr(tree, attr, value):
    roots = tree if isinstance(tree, list) else [tree]
    return [n for r in roots if r is not None for n in walk(r) if getattr(n, attr, None) == value]


def test_paths():
    assert sessions_page.session_id_from_path("/sessions/user%3Aalice") == "user:alice"
    assert sessions_page.session_id_from_path("/sessions") is None
    assert runs_page.run_id_from_path("/runs/12") == 12
    assert runs_page.run_id_from_path("/runs/compare") is None and runs_page.run_id_from_path("/runs/x1") is None
    assert runs_page.compare_ids("?a=3&b=4") == (3, 4) and runs_page.compare_ids("?a=3") is None


def test_attribution_and_cost_ride_on_history_rows_and_the_detail_view():
    span = dict(SPAN, user_id="alice", tags=["exp"], key_fingerprint="kf1", session_id="s-1", cost_usd=None)
    row = q.span_row(span)
    assert (row["user"], row["tags"], row["key_fingerprint"], row["session_id"]) == ("alice", ["exp"], "kf1", "s-1")
    assert row["cost_usd"] is None  # the page says "unknown"
    live = {"id": "r-1", "status": "ok", "user": "bob", "tags": ["live-tag"], "cost_usd": 0.0021, "session_id": "s-1"}
    v = q.request_view(live, span)
    assert v["user"] == "bob" and v["tags"] == ["live-tag"] and v["cost_usd"] == 0.0021  # the live copy wins
    assert q.request_view(None, span)["key_fingerprint"] == "kf1"


def test_sessions_table_shows_unknown_cost_never_zero():
    rows = [
        {
            "session_id": "s-1",
            "first_time": T0,
            "last_time": T0 + 5,
            "turns": 2,
            "models": ["m"],
            "input_tokens": 10,
            "output_tokens": 20,
            "cost_usd": None,
            "cost_unknown_turns": 2,
            "users": ["alice"],
        },
        {
            "session_id": "s-2",
            "first_time": T0,
            "last_time": T0 + 1,
            "turns": 3,
            "models": [],
            "input_tokens": 1,
            "output_tokens": 2,
            "cost_usd": 0.5,
            "cost_unknown_turns": 1,
            "users": [],
        },
    ]
    table = sessions_page.sessions_table(rows)
    first, second = by_attr(table, "data-session", "s-1")[0], by_attr(table, "data-session", "s-2")[0]
    assert "unknown" in text_of(first) and "$0" not in text_of(first)
    assert "$0.5 + 1 unknown" in text_of(second)
    assert "No sessions yet" in text_of(sessions_page.sessions_table([]))
    opts = sessions_page.filter_options({"users": [{"value": "alice", "requests": 3}], "tags": [], "keys": []})
    assert opts == [[{"label": "alice (3)", "value": "alice"}], [], []]


def test_session_view_lists_turns_oldest_first():
    later = dict(
        SPAN,
        request_id="r-2",
        start_time=T0 + 10,
        input_messages=[{"role": "user", "parts": [{"type": "text", "content": "And then?"}]}],
        cost_usd=0.001,
    )
    view = sessions_page.session_view("s-1", [later, dict(SPAN, cost_usd=None)], None)
    turns = by_attr(view, "id", "session-turns")[0].children
    assert [getattr(t, "data-id") for t in turns] == ["r-1", "r-2"]
    assert "What is a ring buffer?" in text_of(turns[0]) and "And then?" in text_of(turns[1])
    assert "unknown" in text_of(turns[0]) and "$0.001" in text_of(turns[1])
    assert "Could not load" in text_of(sessions_page.session_view("s-1", [], None, "collector down"))


RUN = {
    "id": 4,
    "name": "baseline",
    "status": "paused",
    "created_at": T0,
    "ended_at": None,
    "intervals": [{"start": T0, "end": T0 + 5}],
    "wall_time_s": 5.0,
    "stats": {
        "requests": 3,
        "wall_time_s": 5.0,
        "tokens": {"input": 10, "output": 20, "cached_input": 0, "requests_with_usage": 3},
        "cost": {"usd": None, "priced_requests": 0, "unknown_requests": 3},
        "errors": {"total": 0, "rate": 0.0, "by_type": {}, "by_http_status": {}},
        "output_tps_mean": 12.5,
        "output_tokens_per_wall_second": 4.0,
        "latency_ms_mean": 100.0,
        "by_model": [
            {
                "model": "m",
                "requests": 3,
                "errors": {"total": 0},
                "tokens": {"input": 10, "output": 20},
                "cost": {"usd": None, "unknown_requests": 3},
                "output_tps_mean": 12.5,
                "latency_ms_mean": 100.0,
            }
        ],
        "by_endpoint": [],
    },
}


@pytest.mark.parametrize(
    "status, actions", [("active", ["pause", "end"]), ("paused", ["resume", "end"]), ("ended", [])]
)
def test_run_buttons_follow_its_state(status, actions):
    assert [getattr(b, "data-action") for b in runs_page.action_buttons(dict(RUN, status=status))] == actions


def test_run_without_a_known_status_has_no_buttons():
    assert runs_page.action_buttons({k: v for k, v in RUN.items() if k != "status"}) == []
    assert runs_page.action_buttons(dict(RUN, status=None)) == []


def test_data_attributes_render_with_hyphens():
    assert layout.data(tt_action="run", run="4", empty=None) == {
        "data-tt-action": "run",
        "data-run": "4",
        "data-empty": None,
    }
    button = runs_page.action_buttons(dict(RUN, status="active"))[0].to_plotly_json()["props"]
    assert (button["data-tt-action"], button["data-run"], button["data-action"]) == ("run", str(RUN["id"]), "pause")


def test_run_view_cost_unknown_and_breakdowns():
    view = runs_page.run_view(RUN, 4)
    cost = by_attr(view, "data-stat", "cost")[0]
    assert cost.children == "unknown"
    assert "3 requests without a price" in text_of(view)
    assert by_attr(view, "data-model", "m") and "No requests in this run yet." in text_of(view)  # no endpoints
    assert "Run 9 not found" in text_of(runs_page.run_view(None, 9))
    table = runs_page.runs_table(
        [
            dict(
                RUN,
                summary={
                    "requests": 0,
                    "input_tokens": 0,
                    "output_tokens": 0,
                    "cost_usd": 0.0,
                    "cost_unknown_requests": 0,
                    "errors": 0,
                },
            )
        ]
    )
    assert "$0" in text_of(table)  # no requests: nothing was spent (a true zero)


def cell_text(c) -> str:
    kids = c.children if isinstance(c.children, list) else [c.children]
    return " / ".join(k if isinstance(k, str) else cell_text(k) for k in kids if k is not None)


def test_compare_shows_percentiles_and_colours_better_and_worse():
    body = {
        "a": dict(RUN, id=1),
        "b": dict(RUN, id=2),
        "metrics": [
            {
                "metric": "latency_ms_mean",
                "a": 400.0,
                "b": 300.0,
                "diff": -100.0,
                "ratio": 0.75,
                "p50": {"a": 380.0, "b": 290.0},
                "p95": {"a": 900.0, "b": 610.0},
                "better": "lower",
                "change": "better",
            },
            {
                "metric": "error_rate",
                "a": 0.01,
                "b": 0.05,
                "diff": 0.04,
                "ratio": 5.0,
                "better": "lower",
                "change": "worse",
            },
            {"metric": "requests", "a": 3, "b": 3, "diff": 0, "ratio": 1.0, "change": "same"},
        ],
    }
    view = runs_page.compare_view(body)
    lat = by_attr(view, "data-metric", "latency_ms_mean")[0]
    assert cell_text(lat.children[1]) == "400 ms / p50 380 ms · p95 900 ms"
    assert cell_text(lat.children[2]) == "300 ms / p50 290 ms · p95 610 ms"
    assert "tt-change-better" in lat.children[3].className and lat.children[3].title == "lower is better"
    err = by_attr(view, "data-metric", "error_rate")[0]
    assert "tt-change-worse" in err.children[3].className
    same = by_attr(view, "data-metric", "requests")[0]
    assert "tt-change-same" in same.children[3].className


def test_run_page_lists_its_requests_linked_to_their_detail():
    body = {"requests": [dict(SPAN, request_id="r-77")], "total": 120}
    view = runs_page.run_requests_view(body)
    assert "the newest 1 of 120" in text_of(view) and "/request/r-77" in text_of(view)
    assert "Could not list" in text_of(runs_page.run_requests_view(None, "collector answered 404"))


def test_what_if_and_compare_views():
    w = runs_page.what_if_view({"model": "big", "usd": None, "reason": "no price for 'big'", "actual_usd": 0.1})
    assert "unknown" in text_of(w) and "no price for 'big'" in text_of(w)
    body = {
        "a": dict(RUN, id=1),
        "b": dict(RUN, id=2, name="candidate"),
        "metrics": [
            {"metric": "requests", "a": 3, "b": 1, "diff": -2, "ratio": 1 / 3},
            {"metric": "cost_usd", "a": None, "b": 0.2, "diff": None, "ratio": None},
        ],
    }
    view = runs_page.compare_view(body)
    req = by_attr(view, "data-metric", "requests")[0]
    assert [cell_text(c) for c in req.children] == ["Requests", "3", "1", "-66.7 %"]
    cost = by_attr(view, "data-metric", "cost_usd")[0]
    assert [cell_text(c) for c in cost.children] == ["Cost", "unknown", "$0.2", "—"]
    opts = runs_page.pricing_options({"models": [{"model": "m", "input": 1.0, "output": 2.5}]})
    assert opts == [{"label": "m ($1 in / $2.5 out per 1M)", "value": "m"}]


def test_history_pages_read_the_collector_through_the_reader():
    from tests.helpers.dashboard import FakeReader
    from tokentail.dashboard.app import create_app

    cfg = DashboardConfig(collector="http://127.0.0.1:8788", proxies=(parse_proxy("p=http://127.0.0.1:1"),))
    app = create_app(cfg, FakeReader(cfg))
    outputs = {k.split("@")[0] for k in app.callback_map}
    for needed in (
        "sessions-list.children",
        "session-body.children",
        "runs-list.children",
        "run-body.children",
        "compare-body.children",
        "run-whatif.children",
    ):
        assert any(needed in o for o in outputs), needed
    no_collector = create_app(DashboardConfig(proxies=cfg.proxies))
    assert not any("runs-list" in o for o in no_collector.callback_map)


def test_long_prompts_and_completions_are_collapsed_with_show_all():
    long = "word " * 2000
    box = layout.collapsible(long, layout.html.Pre(long, className="tt-text"))
    assert box.className == "tt-collapse" and "tt-collapsed" in box.children[0].className
    assert "show all" in box.children[1].children
    short = layout.html.Pre("hi", className="tt-text")
    assert layout.collapsible("hi", short) is short and short.className == "tt-text"
    assert layout.is_long("line\n" * 60) and not layout.is_long(None)


def test_error_box_and_cost_read_as_words():
    live = {"id": "r-9", "status": "error", "error": "status", "http_status": 429, "usage": None, "cost_usd": None}
    tree = layout.detail_view(q.request_view(live, None), "r-9")
    text = text_of(tree)
    assert "HTTP 429 rate limited" in text and "none incurred" in text and "cost unknown" not in text


def test_requests_page_search_params_paging_and_export_links():
    from tokentail.dashboard import requests_page as rp

    values = {"q": " timeout ", "since": "1h", "status": "error", "model": "", "min_latency_ms": 500, "sort": "latency"}
    params = rp.search_params(values, now=10_000.0)
    assert params == {"since": 6400.0, "q": "timeout", "status": "error", "min_latency_ms": 500, "sort": "latency"}
    assert "since" not in rp.search_params({"since": "all"})
    href = rp.export_href({**params, "limit": 50, "offset": 100}, "csv")
    assert href.startswith("/_tt/requests/export?format=csv&") and "offset" not in href and "q=timeout" in href
    assert rp.page_range(50, 50, 1234) == "51–100 of 1,234" and rp.page_range(0, 0, 0) == "no request matches"
    assert rp.next_offset(50, 1, 50, 1234) == 100 and rp.next_offset(50, -1, 50, 1234) == 0
    assert rp.next_offset(0, 1, 12, 12) == 0  # the last page: no further


def test_requests_page_reads_the_search_api_through_the_reader():
    from tokentail.dashboard import requests_page as rp

    seen = []

    def fetch(url, token=None, timeout=None):
        seen.append(url)
        span = dict(
            SPAN, status="error", error_type="429", http_status=429, cost_usd=None, input_tokens=0, output_tokens=0
        )
        return {"requests": [span], "total": 1, "limit": 50, "offset": 0}

    reader = q.Reader(DashboardConfig(collector="http://127.0.0.1:9"), fetch=fetch)
    body = reader.search(**rp.search_params({"status": "error"}, now=T0), limit=50, offset=0)
    assert "/api/requests/search?" in seen[0] and "status=error" in seen[0] and "limit=50" in seen[0]
    table = rp.results_table(body["requests"])
    assert "HTTP 429 rate limited" in text_of(table)
    row = by_attr(table, "data-status", "error")[0]
    assert row.children[7].children == "—"  # a 429 that used no tokens incurred no cost: not "unknown"


def test_sessions_are_paged_and_the_filters_offer_the_most_used():
    sp = sessions_page
    assert sp.page_state(0, 1, {"shown": 50, "total": 10_000}) == 50
    assert sp.page_state(50, -1, {"shown": 50, "total": 10_000}) == 0 and sp.page_state(0, -1, {}) == 0
    assert sp.page_state(9_950, 1, {"shown": 50, "total": 10_000}) == 9_950  # the last page
    assert sp.page_state(0, 1, {"shown": 12, "total": None}) == 0
    assert sp.status_text(50, 50, 10_000) == "51–100 of 10,000 sessions"
    assert sp.status_text(0, 7, None) == "1–7 of many sessions" and sp.status_text(0, 0, 0) == "no sessions"
    facets = {"users": [{"value": f"u{i}", "requests": i} for i in range(500)], "tags": [], "keys": []}
    users, tags, _ = sp.filter_options(facets)
    assert len(users) == sp.MAX_OPTIONS and users[0]["value"] == "u499" and tags == []


def test_a_chosen_filter_is_always_among_its_options():
    # Dash's dropdown drops a value its options do not hold: a link's /sessions?user=u3 lost
    # its filter when u3 was not among the most used (or the options were not there yet).
    facets = {"users": [{"value": f"u{i}", "requests": i} for i in range(500)], "tags": [], "keys": []}
    users, tags, keys = sessions_page.filter_options(facets, {"user": "u3", "tag": "t-new", "key": None})
    assert len(users) == sessions_page.MAX_OPTIONS + 1 and users[-1] == {"label": "u3 (3)", "value": "u3"}
    assert tags == [{"label": "t-new", "value": "t-new"}] and keys == []  # not stored (yet): listed as is
    top, _, _ = sessions_page.filter_options(facets, {"user": "u499"})
    assert len(top) == sessions_page.MAX_OPTIONS  # already listed: not twice
    assert sessions_page.filter_options(None, {"key": "k1"})[2] == [{"label": "k1", "value": "k1"}]
    assert sessions_page.filters_from_search("?user=a%20b&tag=&key=k&user=c") == {
        "user": "a b",
        "tag": None,
        "key": "k",
    }
    assert sessions_page.filters_from_search(None) == {"user": None, "tag": None, "key": None}


def test_sessions_page_asks_the_collector_for_one_page():
    seen = []

    def fetch(url, token=None, timeout=None):
        seen.append(url)
        return {"sessions": [{"session_id": "s-1"}], "total": 10_000, "limit": 50, "offset": 50}

    reader = q.Reader(DashboardConfig(collector="http://127.0.0.1:9"), fetch=fetch)
    rows, total = reader.sessions_page(q="abc", limit=50, offset=50)
    assert rows == [{"session_id": "s-1"}] and total == 10_000
    assert "limit=50" in seen[0] and "offset=50" in seen[0] and "q=abc" in seen[0]


def test_overview_says_which_percentiles_come_from_buckets():
    resp = {"resolution": "5s", "step": 5, "quantile_source": {"latency": "spans", "ttft": "buckets", "tps": "buckets"}}
    text = text_of(layout.status_line(resp, None, T0))
    assert "TTFT, tok/s percentiles from buckets" in text and "latency," not in text
    exact = {"resolution": "5s", "step": 5, "quantile_source": {"latency": "spans", "ttft": "spans", "tps": "spans"}}
    assert "from buckets" not in text_of(layout.status_line(exact, None, T0))
    assert "from buckets" not in text_of(layout.status_line({"resolution": "5s", "step": 5}, None, T0))
