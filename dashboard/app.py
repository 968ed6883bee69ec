"""The dashboard's Dash app: layout, callbacks, the page's config, a JSON route, access.

``create_app(config, reader=None)`` builds it; ``command.main`` serves it. The page
learns where the proxies and the collector are from a JSON ``<script>`` in the HTML
(``tt-config``), which also carries the read token when one is configured: the
browser's ``EventSource`` cannot send headers, so the token rides as ``?token=`` on
the feeds it opens. It is never rendered as text. Off loopback the page itself is
only served to holders of the token (``?token=`` once, then an HttpOnly cookie). The
admin token never reaches the page: state changes go through ``actions``.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import flask
from dash import Dash

from . import actions, callbacks, layout
from .config import DashboardConfig, display_url
from .figures import palette_config
from .queries import HISTORY_LIMIT, Reader, SourceError, history_rows

log = logging.getLogger("tokentail.dashboard")

ASSETS = Path(__file__).with_name("assets")
COOKIE = "tokentail_token"
MAX_HISTORY = 1000

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
    {%app_entry%}
    <footer>{%config%}{%scripts%}{%renderer%}</footer>
  </body>
</html>"""


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
        "origin": config.origin,
        "colors": palette_config(),
        "historyLimit": HISTORY_LIMIT,
        # Whether state changes need the admin token from the page's user (never the token itself).
        "adminTokenSet": bool(config.admin_token),
    }
    if config.read_token:
        out["token"] = config.read_token
    return out


def _script_json(obj: Any) -> str:
    # Inside <script>: no "</script>" or "<!--" can close or confuse it.
    return (
        json.dumps(obj, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    )


def create_app(config: DashboardConfig, reader: Reader | None = None, post: Any = None) -> Dash:
    """The dashboard; tests pass a fake ``reader`` (the reads) and ``post`` (the actions' calls)."""
    reader = reader or Reader(config)
    app = Dash(
        __name__,
        assets_folder=str(ASSETS),
        title="tokentail",
        update_title=None,  # type: ignore[arg-type]  # typed str, but Dash documents None: keep the tab title
        suppress_callback_exceptions=True,  # the detail page's controls come and go
        serve_locally=True,
        meta_tags=[
            {"name": "viewport", "content": "width=device-width, initial-scale=1"},
            {"name": "referrer", "content": "same-origin"},
        ],
    )
    app.index_string = INDEX.replace("__TT_CONFIG__", _script_json(page_config(config)))
    app.layout = layout.page(config)
    callbacks.register(app, config, reader)
    server: flask.Flask = app.server
    _add_access(server, config)
    _add_routes(server, config, reader)
    actions.register(server, config, post=post or actions.post_json)
    return app


def _add_routes(server: flask.Flask, config: DashboardConfig, reader: Reader) -> None:
    @server.get("/_tt/spans")
    def spans():  # history rows for the live list, from the collector, same-origin
        if not config.collector:
            return flask.jsonify({"configured": False, "rows": []})
        try:
            since = float(flask.request.args["since"]) if flask.request.args.get("since") else None
            if since is not None and not math.isfinite(since):
                raise ValueError
            limit = min(max(int(flask.request.args.get("limit", HISTORY_LIMIT)), 1), MAX_HISTORY)
        except ValueError:
            return flask.jsonify({"error": "since must be a number (epoch seconds), limit an integer"}), 400
        try:
            rows = history_rows(reader.spans(since, limit))
        except SourceError as exc:
            return flask.jsonify({"configured": True, "rows": [], "error": str(exc)}), 502
        except Exception:
            log.exception("reading history failed")
            return flask.jsonify({"configured": True, "rows": [], "error": "internal error"}), 500
        return flask.jsonify({"configured": True, "rows": rows})

    @server.get("/_tt/healthz")
    def healthz():
        return flask.jsonify({"status": "ok"})

    @server.errorhandler(500)
    def internal_error(_exc):  # Flask's default page is bland; never a traceback either way
        return flask.jsonify({"error": "internal error (see the dashboard's log)"}), 500


def _add_access(server: flask.Flask, config: DashboardConfig) -> None:
    @server.after_request
    def no_store(resp: flask.Response) -> flask.Response:
        if resp.mimetype == "text/html":
            resp.headers["Cache-Control"] = "no-store"  # the page carries the config (and a token)
            resp.headers["X-Frame-Options"] = "DENY"
        return resp

    if config.open_access:
        return
    expected = (config.read_token or "").encode()

    def ok(token: str | None) -> bool:
        return bool(token and expected and hmac.compare_digest(token.encode(), expected))

    @server.before_request
    def gate():
        req = flask.request
        auth = req.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer " and ok(auth[7:].strip()):
            return None
        if ok(req.args.get("token")):
            # Trade the token in the URL for a cookie, and take it out of the address bar.
            rest = {k: v for k, v in req.args.items() if k != "token"}
            resp = flask.redirect(req.path + (f"?{urlencode(rest)}" if rest else ""), code=303)
            resp.set_cookie(COOKIE, req.args["token"], httponly=True, samesite="Strict", secure=req.is_secure)
            return resp
        if ok(req.cookies.get(COOKIE)):
            return None
        body = (
            "<!DOCTYPE html><meta charset=utf-8><title>tokentail</title>"
            "<body style='font-family:system-ui;margin:3rem;color:#0f172a'>"
            "<h2>This dashboard needs the read token</h2>"
            "<p>Open it once as <code>/?token=&lt;TOKENTAIL_READ_TOKEN&gt;</code>; a cookie keeps you in.</p>"
        )
        return flask.Response(body, status=401, mimetype="text/html")
