"""The Requests page's one callback: filters and pager in, a page of the collector's search out."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, State, ctx, html, no_update

from . import requests_page as rp
from ._components import guard as _guard
from ._components import oops as _oops
from .queries import Reader, SourceError

_VALUES = (
    ("q", "req-q"),
    ("since", "req-since"),
    ("status", "req-status"),
    *[(p, cid) for p, cid, _ in rp.TEXTS],
    *[(p, cid) for p, cid, _ in rp.NUMBERS],
    ("sort", "req-sort"),
    ("order", "req-order"),
)


def register(app: Dash, reader: Reader) -> None:
    @app.callback(
        Output("req-list", "children"),
        Output("req-range", "children"),
        Output("req-offset", "data"),
        Output("req-csv", "href"),
        Output("req-jsonl", "href"),
        Input("url", "pathname"),
        *[Input(cid, "value") for _, cid in _VALUES],
        Input("req-prev", "n_clicks"),
        Input("req-next", "n_clicks"),
        State("req-offset", "data"),
    )
    @_guard("requests page", lambda: [_oops()] + [no_update] * 4)
    def update_requests(path: str | None, *args: Any) -> list[Any]:
        if path != rp.PATH:
            return [no_update] * 5
        values = dict(zip([k for k, _ in _VALUES], args[: len(_VALUES)]))
        state = args[-1] if isinstance(args[-1], dict) else {}
        offset = 0  # a changed filter starts at the first page
        if ctx.triggered_id in ("req-prev", "req-next"):
            step = -1 if ctx.triggered_id == "req-prev" else 1
            offset = rp.next_offset(
                int(state.get("offset") or 0), step, int(state.get("shown") or 0), state.get("total")
            )
        params = rp.search_params(values)
        try:
            body = reader.search(**params, limit=rp.PAGE_SIZE, offset=offset)
        except SourceError as exc:
            msg = [html.Span("●", className="tt-bad"), f" Could not search the stored requests: {exc}"]
            return [no_update, msg, no_update, no_update, no_update]
        table, range_text, pager = rp.answer(body, offset)
        return [
            table,
            range_text,
            pager,
            rp.export_href(params, "csv"),
            rp.export_href(params, "jsonl"),
        ]
