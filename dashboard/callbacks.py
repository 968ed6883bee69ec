"""Callbacks: connect the page's inputs to ``queries`` (data) and ``figures``/``layout`` (views).

No callback here lets an exception reach the page: each catches, logs one line and
shows what it could (``SourceError`` is the expected failure: a source that is down).
Routing, the live list's filters and the detail page's Text/Markdown switch run in the
browser (clientside callbacks into ``window.tokentail``).
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from typing import Any

from dash import Dash, Input, Output, State, no_update

from . import figures, layout, queries
from .config import DashboardConfig
from .queries import DEFAULT_RANGE, RANGES, Reader, SourceError

log = logging.getLogger("tokentail.dashboard")

CHART_IDS = [cid for cid, *_ in figures.CHARTS] + ["ov-chart-models"]
DETAIL_PREFIX = "/request/"


def request_id_from_path(path: str | None) -> str | None:
    if not path or not path.startswith(DETAIL_PREFIX):
        return None
    rid = urllib.parse.unquote(path[len(DETAIL_PREFIX):]).strip("/")
    return rid or None


def overview(reader: Reader, config: DashboardConfig, rng: str, model: str | None) -> dict[str, Any]:
    """Everything the Overview shows, or why not: ``{figures, cards, models, status, empty, options}``."""
    rng = rng if rng in RANGES else DEFAULT_RANGE
    now = time.time()
    try:
        by_variant = reader.metrics(rng, "variant", model)
        by_model = reader.metrics(rng, "model")
    except SourceError as exc:
        return {"error": str(exc), "status": layout.status_line(None, str(exc), now)}
    try:
        status = reader.status()
    except SourceError:
        status = None  # cards go without up/down and the current in-flight
    figs = figures.overview_figures(by_variant)
    figs["ov-chart-models"] = figures.stacked_by_model(by_model)
    has = queries.has_data(by_variant)
    return {
        "figures": figs,
        "cards": layout.variant_cards(queries.variant_cards(by_variant, status)),
        "models": layout.model_table(queries.model_rows(by_model)),
        "status": layout.status_line(by_variant, None, now),
        "empty": None if has else layout.no_traffic(config, rng),
        "options": [{"label": m, "value": m} for m in queries.models_in(by_model)],
    }


def register(app: Dash, config: DashboardConfig, reader: Reader) -> None:
    # Routing: show the page the path names (all three stay mounted; see layout).
    app.clientside_callback(
        "function (path) { return window.tokentail.route(path); }",
        Output("page-overview", "style"), Output("page-live", "style"), Output("page-detail", "style"),
        Output("nav-overview", "className"), Output("nav-live", "className"),
        Input("url", "pathname"),
    )
    app.clientside_callback(
        "function (q, models, variants, statuses) {"
        " window.tokentail.setFilter({q: q, models: models, variants: variants, statuses: statuses});"
        " return window.dash_clientside.no_update; }",
        Output("live-filter-sink", "data"),
        Input("live-q", "value"), Input("live-model", "value"), Input("live-variant", "value"),
        Input("live-status", "value"),
    )
    app.clientside_callback(
        "function (mode) { return window.tokentail.detailMode(mode); }",
        Output("tt-detail-text", "style"), Output("detail-md", "style"),
        Input("detail-mode", "value"),
        prevent_initial_call=False,
    )

    if config.collector:
        outputs = [
            Output("ov-grid", "children"),
            Output("ov-cards", "children"), Output("ov-models", "children"), Output("ov-status", "children"),
            Output("ov-empty", "children"), Output("ov-model", "options"),
        ]

        @app.callback(*outputs, Input("collector-tick", "data"), Input("ov-range", "value"),
                      Input("ov-model", "value"), Input("url", "pathname"))
        def update_overview(_tick, rng, model, path):
            n = len(outputs)
            if path not in ("/", "", None):
                return [no_update] * n  # not on screen: the next tick after coming back refreshes it
            try:
                res = overview(reader, config, rng, model)
            except Exception:  # never a traceback on the page
                log.exception("overview update failed")
                return [no_update] * (n - 3) + [layout.status_line(None, "internal error (see the dashboard's "
                                                                        "log)", time.time()), no_update, no_update]
            if "error" in res:
                # Keep the last charts; say why they are not moving.
                return [no_update] * (n - 3) + [res["status"], no_update, no_update]
            return [layout.chart_cards(res["figures"]), res["cards"], res["models"], res["status"], res["empty"],
                    res["options"]]

    @app.callback(Output("detail-body", "children"), Input("url", "pathname"), Input("detail-tick", "data"),
                  State("detail-body", "children"))
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
            return layout.detail_view(queries.request_view(live, span), rid, errors)
        except Exception:
            log.exception("request detail failed")
            return layout.empty_state("Could not show this request", "See the dashboard's log for the reason.")
