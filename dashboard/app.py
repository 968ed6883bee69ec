"""The dashboard's Dash app: layout, callbacks, the page's config, JSON routes, access.

``create_app(config, reader=None)`` builds it; ``command.main`` serves it. The page
learns where the proxies and the collector are from a JSON ``<script>`` in the HTML
(``tt-config``). The read token is never written into served HTML: when one is
configured the page fetches it from ``/_tt/token`` (same-origin, behind the same Host
check and token gate as the page; no CORS, so no other page can read it), because the
browser's ``EventSource`` cannot send headers and the token rides as ``?token=`` on the
feeds it opens. Off loopback the page itself is only served to holders of the token
(``?token=`` once, then an HttpOnly cookie). The admin token never reaches the page:
state changes go through ``actions``. The Sessions page's HTML also carries its first screen,
rendered here before Dash boots (``first_view``). Who may ask for what is ``tokentail.access``
(one pure decision; ``tokentail.access_flask`` applies it to every request here).

Every answer carries a strict Content-Security-Policy (scripts from this server and the
one inline renderer script by hash, connections to this server and the configured proxies
and collector only, images from this server or ``data:``, never framed), ``nosniff`` and
``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import json
import logging
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import flask
from dash import Dash

from tokentail import access_flask

from . import actions, callbacks, compare_page, first_view, layout, replay, replay_run, replay_view
from .callback_body import problem as callback_body_problem
from .config import DashboardConfig, display_url
from .figures import palette_config
from .queries import HISTORY_LIMIT, Reader, SourceError, history_rows

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
# What the Requests page's export link may pass on to the collector.
EXPORT_PARAMS = frozenset(
    [
        "format",
        "since",
        "until",
        "model",
        "variant",
        "status",
        "error",
        "session",
        "user",
        "tag",
        "key",
        "min_latency_ms",
        "max_latency_ms",
        "min_ttft_ms",
        "max_ttft_ms",
        "min_cost_usd",
        "max_cost_usd",
        "q",
        "sort",
        "order",
    ]
)

log = logging.getLogger("tokentail.dashboard")

ASSETS = Path(__file__).with_name("assets")
COOKIE = "tokentail_token"
MAX_HISTORY = 1000
TOKEN_ROUTE = "/_tt/token"

INDEX = """<!DOCTYPE html>
<html lang="en">
  <head>
    {%metas%}
    <title>{%title%}</title>
    {%favicon%}
    {%css%}
    <script id="tt-config" type="application/json">__TT_CONFIG__</script>
  </head>
  <body>
    <!--tt-first-->{%app_entry%}
    <footer>{%config%}{%scripts%}{%renderer%}</footer>
  </body>
</html>"""


FIRST_VIEW_MARK = "<!--tt-first-->"


class _App(Dash):
    """Dash, with a page's first view (``first_view``) put into the HTML of each request."""

    def __init__(self, *args: Any, first: Callable[[], str | None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._first = first

    def interpolate_index(
        self,
        metas: Any = "",
        title: Any = "",
        css: Any = "",
        config: Any = "",
        scripts: Any = "",
        app_entry: Any = "",
        favicon: Any = "",
        renderer: Any = "",
    ) -> Any:
        page = super().interpolate_index(metas, title, css, config, scripts, app_entry, favicon, renderer)
        return page.replace(FIRST_VIEW_MARK, self._first() or "", 1)


def page_config(config: DashboardConfig) -> dict[str, Any]:
    """What ``assets/tokentail.js`` reads at start (the token only when one is configured)."""
    out: dict[str, Any] = {
        "proxies": [
            {
                "name": p.name,
                "url": p.url,
                "display": display_url(p.url),
                "live": p.live_url,
                "openai": p.openai_base,
                "variant": p.variant,
            }
            for p in config.proxies
        ],
        "collector": (
            {
                "url": config.collector,
                "display": display_url(config.collector),
                "events": config.collector + "/api/events",
            }
            if config.collector
            else None
        ),
        # --live: one merged feed (a collector's /api/live over Redis) followed instead of the proxies'.
        "live": (
            {
                "name": config.live.name,
                "url": config.live.url,
                "display": display_url(config.live.url),
                "live": config.live.live_url,
                "openai": config.live.openai_base,
                "variant": None,
            }
            if config.live
            else None
        ),
        "origin": config.origin,
        "colors": palette_config(),
        "historyLimit": HISTORY_LIMIT,
        # Whether state changes need the admin token from the page's user (never the token itself).
        "adminTokenSet": bool(config.admin_token),
    }
    if config.read_token:
        out["tokenUrl"] = TOKEN_ROUTE  # the page fetches it: never in the HTML
    return out


def _script_json(obj: Any) -> str:
    # Inside <script>: no "</script>" or "<!--" can close or confuse it.
    return (
        json.dumps(obj, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    )


def epoch_arg(text: str | None) -> float | None:
    """A query's epoch seconds: None when absent or empty; ValueError unless a finite number
    from 0 on (the collector refuses the rest, and its 400 would read as an older collector's)."""
    if not text:
        return None
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(text)
    return value


def create_app(config: DashboardConfig, reader: Reader | None = None, post: Any = None) -> Dash:
    """The dashboard; tests pass a fake ``reader`` (the reads) and ``post`` (the actions' calls)."""
    reader = reader or Reader(config)

    def first() -> str | None:
        req = flask.request
        return first_view.render(config, reader, req.path, req.query_string.decode("utf-8", "replace"), time.time())

    app = _App(
        __name__,
        first=first,
        assets_folder=str(ASSETS),
        title="tokentail",
        update_title=None,  # Dash documents None: keep the tab title
        suppress_callback_exceptions=True,  # the detail page's controls come and go
        serve_locally=True,
        meta_tags=[
            {"name": "viewport", "content": "width=device-width, initial-scale=1"},
            {"name": "referrer", "content": "no-referrer"},
        ],
    )
    app.index_string = INDEX.replace("__TT_CONFIG__", _script_json(page_config(config)))
    app.layout = layout.page(config)
    callbacks.register(app, config, reader)
    compare_page.register(app, reader)
    replay_view.register(app, config, reader)
    server: flask.Flask = app.server
    access_flask.install(server, config.policy, cookies=(COOKIE, actions.ADMIN_COOKIE), token_cookie=COOKIE)
    _add_headers(server, app, config)
    _add_routes(server, config, reader)
    _check_callback_bodies(server, app)
    actions.register(server, config, post=post or actions.post_json)
    replay.register(server, config, reader)
    replay_run.register(server, config, reader, post=post or actions.post_json)
    return app


def _add_routes(server: flask.Flask, config: DashboardConfig, reader: Reader) -> None:
    @server.get("/_tt/spans")
    def spans():  # history rows for the live list, from the collector, same-origin
        if not config.collector:
            return flask.jsonify({"configured": False, "rows": []})
        args = flask.request.args
        try:
            since, received_since = (epoch_arg(args.get(k)) for k in ("since", "received_since"))
            limit = min(max(int(args.get("limit", HISTORY_LIMIT)), 1), MAX_HISTORY)
        except ValueError:
            return flask.jsonify(
                {"error": "since and received_since must be numbers (epoch seconds), limit an integer"}
            ), 400
        try:
            spans, received_before = reader.history(since, limit, received_since)
        except SourceError as exc:
            return flask.jsonify({"configured": True, "rows": [], "error": str(exc)}), 502
        except Exception:
            log.exception("reading history failed")
            return flask.jsonify({"configured": True, "rows": [], "error": "internal error"}), 500
        return flask.jsonify({"configured": True, "rows": history_rows(spans), "received_before": received_before})

    @server.get("/_tt/requests/export")
    def export():  # the Requests page's CSV / JSONL download, relayed from the collector (token kept here)
        if not config.collector:
            return flask.jsonify({"error": "no collector configured (--collector URL)"}), 409
        args = {k: v for k, v in flask.request.args.items() if k in EXPORT_PARAMS and v}
        if args.get("format") not in ("csv", "jsonl"):
            return flask.jsonify({"error": "format must be csv or jsonl"}), 400
        url = config.collector + "/api/requests/export?" + urllib.parse.urlencode(args)
        headers = {"User-Agent": "tokentail-dashboard"}
        if config.read_token:
            headers["Authorization"] = f"Bearer {config.read_token}"
        try:
            upstream = _OPENER.open(urllib.request.Request(url, headers=headers), timeout=max(config.timeout, 30.0))
        except urllib.error.HTTPError as exc:
            return flask.jsonify({"error": f"the collector answered {exc.code}"}), 502
        except (urllib.error.URLError, OSError, ValueError):
            return flask.jsonify({"error": f"{display_url(config.collector)} is unreachable"}), 502
        kind = "text/csv" if args["format"] == "csv" else "application/x-ndjson"

        def body():
            with upstream:
                while chunk := upstream.read(65536):
                    yield chunk

        resp = flask.Response(body(), mimetype=kind)
        resp.headers["Content-Disposition"] = f'attachment; filename="tokentail-requests.{args["format"]}"'
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @server.get(TOKEN_ROUTE)
    def token():  # the read token for the page's EventSource URLs (see the module docstring)
        resp = flask.jsonify({"token": config.read_token})
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @server.get("/_tt/healthz")
    def healthz():
        return flask.jsonify({"status": "ok"})

    @server.errorhandler(500)
    def internal_error(_exc):  # Flask's default page is bland; never a traceback either way
        return flask.jsonify({"error": "internal error (see the dashboard's log)"}), 500


def _check_callback_bodies(server: flask.Flask, app: Dash) -> None:
    @server.before_request
    def callback_body():  # a malformed callback request: a 400 naming why, before Dash reads it
        req = flask.request
        if req.method != "POST" or req.path != "/_dash-update-component":
            return None
        if not req.is_json:
            return flask.jsonify({"error": "a callback request is JSON (Content-Type: application/json)"}), 415
        why = callback_body_problem(req.get_json(silent=True), app.callback_map)
        return None if why is None else (flask.jsonify({"error": f"bad callback request: {why}"}), 400)


def content_security_policy(config: DashboardConfig, script_hashes: Sequence[str]) -> str:
    """The page's CSP: nothing loads or connects but this server, the configured proxies and
    collector (live feeds, events) and ``data:`` images. Plotly and Dash set inline styles."""
    connect = " ".join(["'self'", *config.source_origins])
    scripts = " ".join(["'self'", *script_hashes])  # Dash's hashes come quoted
    return (
        f"default-src 'self'; script-src {scripts}; style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data:; font-src 'self' data:; connect-src {connect}; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )


def _add_headers(server: flask.Flask, app: Dash, config: DashboardConfig) -> None:
    csp: list[str] = []  # computed once, on the first answer: Dash knows its inline scripts by then

    @server.after_request
    def security_headers(resp: flask.Response) -> flask.Response:
        if not csp:
            csp.append(content_security_policy(config, app.csp_hashes()))
        resp.headers["Content-Security-Policy"] = csp[0]
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        if resp.mimetype == "text/html":
            resp.headers["Cache-Control"] = "no-store"
            resp.headers["X-Frame-Options"] = "DENY"
        return resp
