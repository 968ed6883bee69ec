"""The access policy (``tokentail.access``) as aiohttp middleware, for the proxy and the collector.

Only translation lives here: a request becomes an ``Ask``, a refusing ``Decision`` a JSON
error; explicit-origin CORS (preflights, and the header on answers) is added around it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from .access import AccessPolicy, Ask, Decision, bearer, classify, cors_headers, decide, media_type

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
__all__ = ["Middleware", "ask_of", "check", "middleware", "response"]


def ask_of(request: web.Request) -> Ask:
    tokens = [t for t in (bearer(request.headers.get("Authorization")), request.query.get("token")) if t]
    return Ask(
        method=request.method,
        path=request.path,
        host=request.headers.get("Host"),
        peer=request.remote,
        origin=request.headers.get("Origin"),
        fetch_site=request.headers.get("Sec-Fetch-Site"),
        content_type=media_type(request.headers.get("Content-Type")),
        has_body=request.body_exists,
        tokens=tuple(tokens),
    )


def response(decision: Decision) -> web.Response:
    return web.json_response(decision.as_json(), status=decision.status)


def check(policy: AccessPolicy, request: web.Request) -> web.Response | None:
    """The error response when ``request`` may not proceed, else None."""
    if classify(policy, request.method, request.path) == "open":
        return None  # the proxied /v1/* traffic: nothing to parse on the hot path
    decision = decide(policy, ask_of(request))
    return None if decision.allowed else response(decision)


def middleware(policy: AccessPolicy) -> Middleware:
    """aiohttp middleware enforcing ``policy`` and explicit-origin CORS."""

    @web.middleware
    async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        allowed = origin is not None and origin in policy.allowed_origins
        if request.method == "OPTIONS" and origin and request.headers.get("Access-Control-Request-Method"):
            if not allowed:
                return web.Response(status=403, text="origin not allowed")
            return web.Response(status=204, headers=cors_headers(origin, preflight=True))
        denied = check(policy, request)
        if denied is not None:
            return denied
        resp = await handler(request)
        if allowed and origin and not resp.prepared:
            resp.headers.update(cors_headers(origin, preflight=False))
        return resp

    return access_middleware
