"""Callbacks: connect the page's inputs to ``queries`` (data) and ``figures``/``layout`` (views).

No callback here lets an exception reach the page: each catches, logs one line and
shows what it could (``SourceError`` is the expected failure: a source that is down).
Routing, the live list's filters and the detail page's Text/Markdown switch run in the
browser (clientside callbacks into ``window.tokentail``). Sessions and runs pages refresh on
``page-tick`` (the collector's snapshots, while one of them is on screen) and after the
page's own actions (``runs-tick``, ``session-tick``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import urllib.parse
from typing import Any

from dash import Dash, Input, NoUpdate, Output, State, ctx, html, no_update

from . import figures, layout, queries, runs_page, sessions_page, upstreams_view
from ._components import guard as _guard
from ._components import oops as _oops
from .config import DashboardConfig, display_url
from .metrics_source import MetricsSource, for_config
from .queries import DEFAULT_RANGE, RANGES, Reader, SourceError
from .upstreams_view import fetch_raw, raw_card

log = logging.getLogger("tokentail.dashboard")

CHART_IDS = [cid for cid, *_ in figures.CHARTS] + ["ov-chart-models"]
DETAIL_PREFIX = "/request/"


def request_id_from_path(path: str | None) -> str | None:
    if not path or not path.startswith(DETAIL_PREFIX):
        return None
    rid = urllib.parse.unquote(path[len(DETAIL_PREFIX) :]).strip("/")
    return rid or None


# The charts whose percentiles a "from buckets" answer marks (quantile_source key -> graph id).
_BUCKET_CHARTS = {"latency": "ov-chart-latency", "ttft": "ov-chart-ttft"}


def mark_bucket_percentiles(figs: dict[str, Any], quantile_source: Any) -> None:
    """Say "from buckets" on the percentile charts whose values are histogram estimates."""
    if not isinstance(quantile_source, dict):
        return
    for key, cid in _BUCKET_CHARTS.items():
        if quantile_source.get(key) == "buckets" and cid in figs:
            figs[cid].add_annotation(
                text="from buckets",
                xref="paper",
                yref="paper",
                x=1,
                y=1,
                xanchor="right",
                yanchor="bottom",
                showarrow=False,
                font={"size": 11, "color": figures.MUTED},
            )


def overview(source: MetricsSource, config: DashboardConfig, rng: str, model: str | None) -> dict[str, Any]:
    """Everything the Overview shows, or why not: ``{figures, cards, models, status, empty, options}``.

    ``source`` is the collector's ``Reader`` or a ``PrometheusSource``: the same answers."""
    rng = rng if rng in RANGES else DEFAULT_RANGE
    now = time.time()
    try:
        by_variant = source.metrics(rng, "variant", model)
        by_model = source.metrics(rng, "model")
    except SourceError as exc:
        return {"error": str(exc), "status": layout.status_line(None, str(exc), now)}
    try:
        status = source.status()
    except SourceError:
        status = None  # cards go without up/down and the current in-flight
    figs = figures.overview_figures(by_variant)
    figs["ov-chart-models"] = figures.stacked_by_model(by_model)
    mark_bucket_percentiles(figs, by_variant.get("quantile_source"))
    has = queries.has_data(by_variant)
    status_line = layout.status_line(by_variant, None, now)
    if config.prometheus is not None:
        status_line = [*status_line, f" · from Prometheus at {display_url(config.prometheus.url)}"]
    return {
        "figures": figs,
        "cards": layout.variant_cards(queries.variant_cards(by_variant, status)),
        "models": layout.model_table(queries.model_rows(by_model)),
        "status": status_line,
        "empty": None if has else layout.no_traffic(config, rng),
        "options": [{"label": m, "value": m} for m in queries.models_in(by_model)],
    }


def register(app: Dash, config: DashboardConfig, reader: Reader) -> None:
    # Routing: show the page the path names (all stay mounted; see layout.PAGES).
    app.clientside_callback(
        "function (path) { return window.tokentail.route(path); }",
        *[Output(f"page-{name}", "style") for name in layout.PAGES],
        *[Output(f"nav-{name}", "className") for name, _, _ in layout.NAV],
        Input("url", "pathname"),
    )
    app.clientside_callback(
        "function (q, models, variants, statuses, users, tags, keys) {"
        " window.tokentail.setFilter({q: q, models: models, variants: variants, statuses: statuses,"
        " users: users, tags: tags, keys: keys});"
        " return window.dash_clientside.no_update; }",
        Output("live-filter-sink", "data"),
        Input("live-q", "value"),
        Input("live-model", "value"),
        Input("live-variant", "value"),
        Input("live-status", "value"),
        Input("live-user", "value"),
        Input("live-tag", "value"),
        Input("live-key", "value"),
    )
    app.clientside_callback(
        "function (mode) { return window.tokentail.detailMode(mode); }",
        Output("tt-detail-text", "style"),
        Output("detail-md", "style"),
        Input("detail-mode", "value"),
        prevent_initial_call=False,
    )

    if config.has_overview:
        source = for_config(config, reader)  # the one place the Overview's source is chosen
        # Collector snapshots announce new data; a Prometheus is asked every scrape interval.
        tick = Input("ov-poll", "n_intervals") if config.prometheus is not None else Input("collector-tick", "data")
        outputs = [
            Output("ov-grid", "children"),
            Output("ov-cards", "children"),
            Output("ov-models", "children"),
            Output("ov-status", "children"),
            Output("ov-empty", "children"),
            Output("ov-model", "options"),
        ]

        @app.callback(
            *outputs,
            tick,
            Input("ov-range", "value"),
            Input("ov-model", "value"),
            Input("url", "pathname"),
            State("ov-model", "options"),
        )
        def update_overview(_tick, rng, model, path, shown_options):
            n = len(outputs)
            if path not in ("/", "", None):
                return [no_update] * n  # not on screen: the next tick after coming back refreshes it
            try:
                res = overview(source, config, rng, model)
            except Exception:  # never a traceback on the page
                log.exception("overview update failed")
                return [no_update] * (n - 3) + [
                    layout.status_line(None, "internal error (see the dashboard's log)", time.time()),
                    no_update,
                    no_update,
                ]
            if "error" in res:
                # Keep the last charts; say why they are not moving.
                return [no_update] * (n - 3) + [res["status"], no_update, no_update]
            return [
                layout.chart_cards(res["figures"]),
                res["cards"],
                res["models"],
                res["status"],
                res["empty"],
                # Unchanged choices are not sent again: new options make the dropdown report its
                # value again, which would call this callback once more for nothing.
                no_update if res["options"] == shown_options else res["options"],
            ]

    if config.collector:
        register_history(app, reader)
        from . import requests_callbacks  # imports this module: registered last

        requests_callbacks.register(app, reader)
    upstreams_view.register(app, config, reader)

    @app.callback(
        Output("detail-body", "children"),
        Input("url", "pathname"),
        Input("detail-tick", "data"),
        State("detail-body", "children"),
    )
    def update_detail(path, _tick, _current):
        rid = request_id_from_path(path)
        if rid is None:
            return no_update
        try:
            live, errors = reader.live_request(rid)
            span = None
            if config.collector:
                try:
                    span = reader.span(rid)
                except SourceError as exc:
                    errors.append(str(exc))
            return [
                *layout.detail_view(queries.request_view(live, span), rid, errors),
                raw_card(fetch_raw(reader, rid)),
            ]
        except Exception:
            log.exception("request detail failed")
            return layout.empty_state("Could not show this request", "See the dashboard's log for the reason.")


def register_history(app: Dash, reader: Reader) -> None:
    """Sessions and runs: pages read from the collector's history."""

    @app.callback(
        Output("sessions-list", "children"),
        Output("sessions-status", "children"),
        Output("sessions-page", "data"),
        Input("url", "pathname"),
        Input("url", "search"),
        Input("page-tick", "data"),
        Input("sessions-user", "value"),
        Input("sessions-tag", "value"),
        Input("sessions-key", "value"),
        Input("sessions-q", "value"),
        Input("sessions-prev", "n_clicks"),
        Input("sessions-next", "n_clicks"),
        State("sessions-page", "data"),
    )
    @_guard("sessions list", lambda: [_oops()] + [no_update] * 2)
    def update_sessions(path, _search, _tick, user, tag, key, q, _prev, _next, state):
        if path != "/sessions":
            return [no_update] * 3
        state = state if isinstance(state, dict) else {}
        offset = int(state.get("offset") or 0)
        trigger = ctx.triggered_id
        if trigger in ("sessions-prev", "sessions-next"):
            offset = sessions_page.page_state(offset, -1 if trigger == "sessions-prev" else 1, state)
        elif trigger != "page-tick":
            offset = 0  # a changed filter starts at the first page
        try:
            rows, total = reader.sessions_page(
                user=user,
                tag=tag,
                key=key,
                q=(q or "").strip() or None,
                limit=sessions_page.PAGE_SIZE,
                offset=offset or None,  # left out on the first page: older collectors refuse it
            )
        except SourceError as exc:
            return [no_update, [html.Span("●", className="tt-bad"), f" Could not load sessions: {exc}"], no_update]
        sig = hashlib.sha1(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()
        table, status = sessions_page.list_answer(rows, total, offset, time.time())
        new_state = {"offset": offset, "shown": len(rows), "total": total, "sig": sig}
        if trigger == "page-tick" and sig == state.get("sig") and offset == state.get("offset"):
            return [no_update, status, new_state]  # nothing changed: no table sent, none rendered
        return [sessions_page.as_markup(table), status, new_state]

    @app.callback(
        Output("sessions-user", "options"),
        Output("sessions-tag", "options"),
        Output("sessions-key", "options"),
        Output("sessions-user", "value"),
        Output("sessions-tag", "value"),
        Output("sessions-key", "value"),
        Input("url", "pathname"),
        Input("url", "search"),
        State("sessions-user", "value"),
        State("sessions-tag", "value"),
        State("sessions-key", "value"),
    )
    @_guard("sessions filters", lambda: [no_update] * 6)
    def update_sessions_filters(path, search, user, tag, key):
        # The filters' choices (a scan of all stored spans) on arrival only, not on every
        # snapshot; with them the filters a link chose (/sessions?user=alice, a chip on a
        # request page): in one answer, because Dash's dropdown drops a value that is not
        # among its options when it is set.
        if path != "/sessions":
            return [no_update] * 6
        linked = sessions_page.filters_from_search(search)
        chosen = linked if any(linked.values()) else {"user": user, "tag": tag, "key": key}
        try:
            facets = reader.facets()
        except SourceError:
            facets = None  # the chosen values still listed: the list shows the collector's error
        values = list(linked.values()) if any(linked.values()) else [no_update] * 3
        return [*sessions_page.filter_options(facets, chosen), *values]

    @app.callback(Output("session-body", "children"), Input("url", "pathname"), Input("session-tick", "data"))
    @_guard("session page", _oops)
    def update_session(path, _tick):
        sid = sessions_page.session_id_from_path(path)
        if sid is None:
            return no_update
        try:
            spans = reader.spans(limit=1000, session=sid, order="asc")
            summary = next(iter(reader.sessions(session=sid, limit=1)), None)
        except SourceError as exc:
            return sessions_page.session_view(sid, [], None, str(exc))
        return sessions_page.session_view(sid, spans, summary)

    @app.callback(
        Output("runs-list", "children"),
        Output("runs-compare-a", "options"),
        Output("runs-compare-b", "options"),
        Input("url", "pathname"),
        Input("runs-tick", "data"),
        Input("page-tick", "data"),
    )
    @_guard("runs list", lambda: [_oops(), no_update, no_update])
    def update_runs(path, _tick, _page_tick):
        if path != "/runs":
            return [no_update] * 3
        try:
            runs = reader.runs().get("runs") or []
        except SourceError as exc:
            return html.Div(f"Could not load runs: {exc}", className="tt-error-box"), no_update, no_update
        opts = runs_page.compare_options(runs)
        return runs_page.runs_table(runs), opts, opts

    app.clientside_callback(
        "function (a, b) { return (a && b) ? '/runs/compare?a=' + a + '&b=' + b : '/runs/compare'; }",
        Output("runs-compare-link", "href"),
        Input("runs-compare-a", "value"),
        Input("runs-compare-b", "value"),
    )

    @app.callback(
        Output("run-body", "children"),
        Output("run-whatif-model", "options"),
        Input("url", "pathname"),
        Input("runs-tick", "data"),
        Input("page-tick", "data"),
        State("run-whatif-model", "options"),
    )
    @_guard("run page", lambda: [_oops(), no_update])
    def update_run(path, _tick, _page_tick, shown_options):
        rid = runs_page.run_id_from_path(path)
        if rid is None:
            return [no_update] * 2
        try:
            run = reader.run(rid)
        except SourceError as exc:
            return runs_page.run_view(None, rid, str(exc)), no_update
        options: list[dict[str, str]] | NoUpdate = no_update
        # The prices do not change while the page is open: read once (a tick may come with the
        # navigation and take its place as the trigger, hence "or none shown yet").
        if ctx.triggered_id in (None, "url") or not shown_options:
            try:
                options = runs_page.pricing_options(reader.pricing())
            except SourceError:
                pass
        return runs_page.run_view(run, rid), options

    @app.callback(
        Output("run-requests", "children"),
        Input("run-body", "children"),
        State("url", "pathname"),
    )
    @_guard("run requests", lambda: no_update)
    def update_run_requests(_body, path):
        rid = runs_page.run_id_from_path(path)
        if rid is None:
            return no_update
        try:
            return runs_page.run_requests_view(reader.run_requests(rid))
        except SourceError as exc:
            if exc.status == 404:  # the run body already says "not found"
                return []
            return runs_page.run_requests_view(None, str(exc))

    @app.callback(
        Output("run-whatif", "children"),
        Input("run-whatif-model", "value"),
        Input("url", "pathname"),
        Input("runs-tick", "data"),
    )
    @_guard("what-if", lambda: "Could not price this run (see the dashboard's log).")
    def update_what_if(model, path, _tick):
        rid = runs_page.run_id_from_path(path)
        if rid is None:
            return no_update
        if not model:
            return runs_page.what_if_view(None)
        try:
            run = reader.run(rid, what_if=model)
        except SourceError as exc:
            return html.Span(f"Could not price this run: {exc}", className="tt-bad")
        return runs_page.what_if_view((run or {}).get("what_if"))

    @app.callback(Output("compare-body", "children"), Input("url", "pathname"), Input("url", "search"))
    @_guard("run comparison", _oops)
    def update_compare(path, search):
        if path != runs_page.COMPARE:
            return no_update
        ids = runs_page.compare_ids(search)
        if ids is None:
            return runs_page.compare_view(None)
        try:
            return runs_page.compare_view(reader.compare(*ids))
        except SourceError as exc:
            return runs_page.compare_view(None, str(exc))
