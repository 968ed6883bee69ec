"""The access policy (``tokentail.access``) as a Flask ``before_request`` hook, for the dashboard.

Only translation lives here: a request becomes an ``Ask`` (its tokens: ``Authorization:
Bearer``, ``?token=``, and the dashboard's HttpOnly cookies), a refusing ``Decision`` a JSON
error (an HTML page for a browser opening a page without the read token). One browser
convenience stays in the adapter: a page opened once with a valid ``?token=`` gets it as an
HttpOnly cookie and is redirected to the same address without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

import flask
from werkzeug.wrappers import Response as WerkzeugResponse

from .access import AccessPolicy, Ask, Decision, bearer, decide, media_type, token_matches

NEEDS_TOKEN_PAGE = (
    "<!DOCTYPE html><meta charset=utf-8><title>tokentail</title>"
    "<body style='font-family:system-ui;margin:3rem;color:#0f172a'>"
    "<h2>This dashboard needs the read token</h2>"
    "<p>Open it once as <code>/?token=&lt;TOKENTAIL_READ_TOKEN&gt;</code>; a cookie keeps you in.</p>"
)


def ask_of(req: flask.Request, cookies: Sequence[str] = ()) -> Ask:
    presented = [bearer(req.headers.get("Authorization")), req.args.get("token")]
    presented += [req.cookies.get(name) for name in cookies]
    chunked = "chunked" in req.headers.get("Transfer-Encoding", "").lower()
    return Ask(
        method=req.method,
        path=req.path,
        host=req.headers.get("Host"),
        peer=req.remote_addr,
        origin=req.headers.get("Origin"),
        fetch_site=req.headers.get("Sec-Fetch-Site"),
        content_type=media_type(req.headers.get("Content-Type")),
        has_body=bool(req.content_length) or chunked,
        tokens=tuple(t for t in presented if t),
    )


def response(decision: Decision) -> flask.Response:
    resp = flask.jsonify(decision.as_json())
    resp.status_code = decision.status
    return resp


def install(server: flask.Flask, policy: AccessPolicy, *, cookies: Sequence[str], token_cookie: str) -> None:
    """Check every request against ``policy``; ``cookies`` name the cookies that carry tokens,
    ``token_cookie`` the one a valid ``?token=`` on a page is traded for."""

    @server.before_request
    def access_gate() -> WerkzeugResponse | None:
        req = flask.request
        decision = decide(policy, ask_of(req, cookies))
        if decision.allowed:
            return _trade_query_token(policy, req, token_cookie)
        if decision.status == 401 and req.method == "GET" and not req.path.startswith(("/_tt/", "/_dash-")):
            return flask.Response(NEEDS_TOKEN_PAGE, status=401, mimetype="text/html")
        return response(decision)


def _trade_query_token(policy: AccessPolicy, req: flask.Request, cookie: str) -> WerkzeugResponse | None:
    # A token in the address bar ends up in history and logs: keep it in a cookie instead.
    token = req.args.get("token")
    if policy.open_access or req.method != "GET" or not token or not token_matches(policy, [token]):
        return None
    rest = {k: v for k, v in req.args.items() if k != "token"}
    resp = flask.redirect(req.path + (f"?{urlencode(rest)}" if rest else ""), code=303)
    resp.set_cookie(cookie, token, httponly=True, samesite="Strict", secure=req.is_secure)
    return resp
