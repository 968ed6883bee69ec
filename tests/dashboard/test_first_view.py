"""The first view: Dash components as static HTML, and the Sessions page's first screen in
the HTML the server answers (before Dash boots). The browser side is in test_browser_pages."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from dash import dcc, html

from tests.helpers.dashboard import SPAN, FakeReader
from tokentail.dashboard import first_view, requests_page, sessions_page, static_html
from tokentail.dashboard.app import create_app
from tokentail.dashboard.config import DashboardConfig
from tokentail.dashboard.queries import SourceError

HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>&amp;'


class _Tree(HTMLParser):
    """Parses HTML the way a browser tokenises it: tags, attributes, text, in order."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(markup: str) -> _Tree:
    t = _Tree()
    t.feed(markup)
    t.close()
    return t


def session(sid: str, user: str = "alice", model: str = "sim-gpt-4o") -> dict:
    return {
        "session_id": sid,
        "first_time": 1_700_000_000.0,
        "last_time": 1_700_000_060.0,
        "turns": 2,
        "models": [model],
        "input_tokens": 40,
        "output_tokens": 120,
        "cost_usd": 0.0004,
        "users": [user],
    }


# ---- static_html -------------------------------------------------------------------------


def test_html_elements_render_with_their_classes_styles_and_data_attributes():
    node = html.Div(
        className="a b",
        style={"--chip": "#0f0", "minWidth": 3, "opacity": 0.5, "whiteSpace": "nowrap", "skip": None},
        title="t",
        children=[html.Span("x", **{"data-session": "s1", "aria-label": "l"}), " y ", 3, None, False],
        id="not-rendered",
    )
    out = static_html.render(node)
    tree = parse(out)
    assert tree.tags == [
        ("div", {"class": "a b", "style": "--chip:#0f0;min-width:3px;opacity:0.5;white-space:nowrap", "title": "t"}),
        ("span", {"data-session": "s1", "aria-label": "l"}),  # (attribute order is Dash's props order)
    ]
    assert "".join(tree.text) == "x y 3" and out.endswith("</span> y 3</div>")


def test_ids_are_left_out_everywhere_and_void_elements_have_no_end_tag():
    out = static_html.render(
        html.Table(id="t", children=[html.Tbody(html.Tr(html.Td("1", id="c", colSpan=2), id="r"))])
    ) + static_html.render(html.Br(id="b"))
    assert " id=" not in out
    assert out == '<table><tbody><tr><td colspan="2">1</td></tr></tbody></table><br>'


def test_text_and_attributes_are_escaped():
    out = static_html.render(
        html.Div(
            className=HOSTILE,
            title=HOSTILE,
            style={"--chip": HOSTILE},
            children=[HOSTILE, html.Span(HOSTILE, **{"data-x": HOSTILE})],
        )
    )
    tree = parse(out)
    assert [tag for tag, _ in tree.tags] == ["div", "span"]  # no <script>, no <img>
    div, span = tree.tags[0][1], tree.tags[1][1]
    assert div["class"] == div["title"] == span["data-x"] == HOSTILE
    assert div["style"] == "--chip:" + HOSTILE
    assert "".join(tree.text) == HOSTILE * 2
    assert "<script" not in out and "<img" not in out


@pytest.mark.parametrize(
    ("href", "kept"),
    [
        ("/sessions/a%20b", True),
        ("?user=x", True),
        ("#top", True),
        ("https://example.com/x", True),
        ("javascript:alert(1)", False),
        (" javascript:alert(1)", False),
        ("JaVaScRiPt:alert(1)", False),
        ("data:text/html,<b>", False),
        ("//evil.example/x", False),
        ("/\\evil.example", False),
        ("vbscript:x", False),
    ],
)
def test_links_keep_only_same_site_or_http_targets(href, kept):
    out = static_html.render(dcc.Link("go", href=href, className="tt-link"))
    attrs = parse(out).tags[0][1]
    assert parse(out).tags[0][0] == "a" and attrs["class"] == "tt-link"
    assert ("href" in attrs) is kept and (not kept or attrs["href"] == href)


def test_radio_items_render_as_labels_with_the_chosen_one_checked():
    out = static_html.render(
        dcc.RadioItems(
            id="o", options=[{"label": "↓", "value": "desc"}, {"label": HOSTILE, "value": "asc"}, "junk"], value="desc"
        )
    )
    tree = parse(out)
    assert [t for t, _ in tree.tags] == ["div", "label", "input", "label", "input"]
    assert tree.tags[2][1] == {"type": "radio", "disabled": None, "checked": None}
    assert tree.tags[4][1] == {"type": "radio", "disabled": None}
    assert "".join(tree.text) == "↓" + HOSTILE and " id=" not in out


def test_controls_render_as_inert_stand_ins_and_app_only_components_as_nothing():
    out = static_html.render(
        [
            dcc.Input(id="q", type="search", placeholder="Search…", className="tt-search", debounce=0.4),
            dcc.Dropdown(id="u", options=[{"label": "a", "value": "a"}], value=None, placeholder="User"),
            dcc.Dropdown(id="t", options=[], value="tag-1", placeholder="Tag", className="tt-dropdown"),
            dcc.Dropdown(id="m", options=[], value=["x", "y"], multi=True, placeholder="Model"),
            dcc.Store(id="s", data={"offset": 0}),
            dcc.Interval(id="i"),
            dcc.Location(id="url"),
            object(),
        ]
    )
    tree = parse(out)
    tags = [(t, a) for t, a in tree.tags if t in ("input", "div")]
    assert tags[0] == ("div", {"class": "tt-search"})  # dcc.Input's className is on its wrapper
    assert tags[1] == ("input", {"type": "search", "disabled": None, "placeholder": "Search…"})
    # Each dropdown in a wrapper as Dash 4 draws it (what a flex row sizes).
    assert [a.get("class") for t, a in tags[2:]] == [
        "dash-dropdown-wrapper",
        "tt-first-select",
        "dash-dropdown-wrapper",
        "tt-dropdown tt-first-select",
        "dash-dropdown-wrapper",
        "tt-first-select",
    ]
    assert "".join(tree.text) == "User" + "tag-1" + "x, y"  # placeholder, or the value(s) chosen


def test_a_dropdown_shows_its_chosen_options_label():
    out = static_html.render(
        dcc.Dropdown(id="s", options=[{"label": "by time", "value": "time"}], value="time", clearable=False)
    )
    assert "".join(parse(out).text) == "by time"
    assert "offset" not in out and "options" not in out and " id=" not in out


# ---- first_view ----------------------------------------------------------------------------

CONFIG = DashboardConfig(collector="http://127.0.0.1:8788")


def test_the_sessions_first_view_lists_the_first_page_with_the_filters_a_link_chose():
    reader = FakeReader(CONFIG, sessions=[session("s-1"), session("s-2", user="bob")])
    out = first_view.render(CONFIG, reader, "/sessions", "user=alice&tag=t%201&junk=1", 1_700_000_100.0)
    assert out is not None and out.startswith('<div id="tt-first" class="tt-first" data-page="sessions"')
    path, params = reader.calls[-1]
    assert path == "/api/sessions"
    assert params == {"user": "alice", "tag": "t 1", "key": None, "limit": sessions_page.PAGE_SIZE}
    assert reader.timeouts[-1] == first_view.TIMEOUT  # never the dashboard's whole read timeout
    tree = parse(out)
    rows = [a["data-session"] for t, a in tree.tags if t == "tr" and "data-session" in a]
    assert rows == ["s-1", "s-2"]
    links = [a.get("href") for t, a in tree.tags if t == "a"]
    assert "/sessions/s-1" in links and "/sessions" in links
    active = [a for t, a in tree.tags if t == "a" and "active" in (a.get("class") or "")]
    assert [a["href"] for a in active] == ["/sessions"]  # the header marks the page
    text = "".join(tree.text)
    assert "1–2 of 2 sessions · updated" in text and "alice" in text and "t 1" in text
    assert len(re.findall(r'\sid="', out)) == 1  # only #tt-first: the app's ids are its own


def test_hostile_stored_values_cannot_break_out_of_the_first_view():
    reader = FakeReader(CONFIG, sessions=[session(HOSTILE, user=HOSTILE, model=HOSTILE)])
    out = first_view.render(CONFIG, reader, "/sessions", "user=" + "%22%3E%3Cscript%3E", 0.0)
    tree = parse(out)
    assert {t for t, _ in tree.tags} <= {"div", "header", "span", "nav", "a", "main", "section", "h1", "input"} | {
        "button",
        "svg",
        "path",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
    }
    assert [a["data-session"] for t, a in tree.tags if t == "tr" and "data-session" in a] == [HOSTILE]
    assert "<script" not in out and "<img" not in out


def test_the_requests_first_view_makes_the_apps_first_search():
    reader = FakeReader(CONFIG, requests=[{**SPAN, "request_id": "r-1"}, {**SPAN, "request_id": HOSTILE}])
    out = first_view.render(CONFIG, reader, "/requests", "q=ignored", 1_700_000_100.0)
    path, params = reader.calls[-1]
    # The same parameters as the page's callback with the controls' defaults.
    assert path == "/api/requests/search" and reader.timeouts[-1] == first_view.TIMEOUT
    assert params == {**requests_page.search_params(requests_page.DEFAULTS, 1_700_000_100.0), "limit": 50, "offset": 0}
    assert params["since"] == 1_700_000_100.0 - 86_400 and params["sort"] == "time" and params["order"] == "desc"
    tree = parse(out)
    assert [a["data-id"] for t, a in tree.tags if t == "tr" and "data-id" in a] == ["r-1", HOSTILE]
    assert "<script" not in out and "<img" not in out
    assert 'data-page="requests"' in out and "1–2 of 2" in "".join(tree.text)
    active = [a["href"] for t, a in tree.tags if t == "a" and "active" in (a.get("class") or "")]
    assert active == ["/requests"]
    radios = [a for t, a in tree.tags if t == "input" and a.get("type") == "radio"]
    assert radios == [{"type": "radio", "disabled": None, "checked": None}, {"type": "radio", "disabled": None}]
    assert len(re.findall(r'\sid="', out)) == 1


def test_the_apps_layout_opens_the_requests_page_with_the_same_defaults():
    from tests.helpers.dashboard import walk

    values = {
        c.id: c.value
        for c in walk(html.Div(requests_page.page(CONFIG)))
        if getattr(c, "id", None) in ("req-since", "req-sort", "req-order")
    }
    assert (
        values
        == {"req-since": "24h", "req-sort": "time", "req-order": "desc"}
        == {f"req-{k}": v for k, v in requests_page.DEFAULTS.items()}
    )


@pytest.mark.parametrize("path", ["/", "/live", "/sessions/s-1", "/runs", "/requests/", "/sessions/", "/Sessions"])
def test_other_pages_have_no_first_view_and_ask_nothing(path):
    reader = FakeReader(CONFIG, sessions=[session("s-1")])
    assert first_view.render(CONFIG, reader, path, "", 0.0) is None
    assert reader.calls == []


def test_no_collector_or_a_collector_that_does_not_answer_leaves_the_page_to_the_app():
    assert first_view.render(DashboardConfig(), FakeReader(DashboardConfig()), "/sessions", "", 0.0) is None
    assert first_view.render(CONFIG, FakeReader(CONFIG, down=True), "/sessions", "", 0.0) is None

    class Broken(FakeReader):
        def sessions_page(self, timeout=None, **filters):
            raise RuntimeError("a bug")

    assert first_view.render(CONFIG, Broken(CONFIG), "/sessions", "", 0.0) is None


def test_an_empty_collector_shows_the_empty_state():
    out = first_view.render(CONFIG, FakeReader(CONFIG), "/sessions", "", 0.0)
    assert "No sessions yet" in out and "no sessions" in out


def test_the_reader_passes_a_first_view_timeout_to_the_fetch():
    seen = []

    def fetch(url, token=None, timeout=None):
        seen.append((url, timeout))
        raise SourceError("down")

    from tokentail.dashboard.queries import Reader

    assert first_view.render(CONFIG, Reader(CONFIG, fetch=fetch), "/sessions", "", 0.0) is None
    assert seen == [("http://127.0.0.1:8788/api/sessions?limit=50", first_view.TIMEOUT)]


# ---- in the served HTML ------------------------------------------------------------------------


def test_the_served_sessions_html_carries_the_first_view_before_the_app():
    reader = FakeReader(CONFIG, sessions=[session("s-1")])
    client = create_app(CONFIG, reader).server.test_client()
    page = client.get("/sessions?user=alice").get_data(as_text=True)
    assert page.index('id="tt-first"') < page.index('id="react-entry-point"')
    assert 'data-session="s-1"' in page and "<!--tt-first-->" not in page
    other = client.get("/live").get_data(as_text=True)
    assert "tt-first" not in other and "<!--tt-first-->" not in other
    assert [p for p, _ in reader.calls] == ["/api/sessions"]  # /live asked the collector nothing


def test_a_request_the_access_rules_refuse_never_reaches_the_collector():
    cfg = DashboardConfig(collector="http://127.0.0.1:8788", read_token="read-token-1", host="0.0.0.0")
    reader = FakeReader(cfg, sessions=[session("s-1")])
    client = create_app(cfg, reader).server.test_client()
    assert client.get("/sessions").status_code == 401  # no token
    assert client.get("/sessions?token=wrong").status_code == 401
    assert reader.calls == []
    ok = client.get("/sessions", headers={"Authorization": "Bearer read-token-1"})
    assert ok.status_code == 200 and 'data-session="s-1"' in ok.get_data(as_text=True)
    local = create_app(CONFIG, reader := FakeReader(CONFIG, sessions=[session("s-1")])).server.test_client()
    assert local.get("/sessions", headers={"Host": "attacker.example"}).status_code == 421  # a rebound name
    assert reader.calls == []


def test_a_collector_that_is_down_still_serves_the_page():
    client = create_app(CONFIG, FakeReader(CONFIG, down=True)).server.test_client()
    resp = client.get("/sessions")
    assert resp.status_code == 200 and "tt-first" not in resp.get_data(as_text=True)


def test_the_app_list_as_markup_keeps_hostile_values_text():
    """After a filter the app's list is static HTML in a Markdown component: no value may end
    Markdown's HTML block (a blank line) or open a tag."""
    hostile = "s\n\n[x](javascript:alert(1))\n\n<script>alert(1)</script>\r\n**b**"
    table = sessions_page.sessions_table(
        [{"session_id": hostile, "turns": 1, "models": ["m<i>"], "users": [hostile], "first_time": 1.7e9}]
    )
    markup = sessions_page.as_markup(table).children
    assert "\n" not in markup and "\r" not in markup
    assert "<script" not in markup and "<i>" not in markup
    assert "&lt;script&gt;" in markup and "&#10;&#10;[x](javascript:alert(1))" in markup
    assert 'href="/sessions/s%0A%0A' in markup  # the link's target is the quoted id
