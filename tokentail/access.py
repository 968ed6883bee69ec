"""Who may read captured content and change state, and which origins may ask.

Only paths under ``protected_prefixes`` are checked (``/api/`` by default; the proxy's
``/v1/*`` traffic never is).

Reads (GET/HEAD/OPTIONS) depend on the bind address: bound to loopback, a server trusts
its callers (the machine's own users); bound to any other interface, every read of
captured content needs the read token (``TOKENTAIL_READ_TOKEN``) or the admin token,
unless ``--insecure`` says otherwise.

State changes (any other method: cancel a request, reload routes, start a run) depend on
the admin token (``TOKENTAIL_ADMIN_TOKEN``) and the caller, never on the bind address or
``--insecure``: with an admin token configured every state change must present it (401
otherwise); without one they are allowed only from a loopback peer (403 otherwise, saying
to set the token). Behind a reverse proxy on the same machine every caller is a loopback
peer: configure the admin token there.

Tokens come as ``Authorization: Bearer <token>`` or, for browsers' EventSource which
cannot set headers, ``?token=<token>``. CORS is never a wildcard: only origins listed
explicitly get ``Access-Control-Allow-Origin``.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

READ_TOKEN_ENV = "TOKENTAIL_READ_TOKEN"
ADMIN_TOKEN_ENV = "TOKENTAIL_ADMIN_TOKEN"


def is_loopback_host(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_loopback_peer(remote: str | None) -> bool:
    """True for a connection from this machine (127.0.0.0/8, ::1, IPv4-mapped 127.x)."""
    if not remote:
        return False  # unknown peer (e.g. a Unix socket we do not serve): not trusted
    try:
        addr = ipaddress.ip_address(remote.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback


@dataclass(frozen=True)
class AccessPolicy:
    bind_host: str = "127.0.0.1"
    read_token: str | None = None
    admin_token: str | None = None
    insecure: bool = False
    allowed_origins: frozenset[str] = field(default_factory=frozenset)
    # Path prefixes whose GETs expose captured content (need the read token off loopback).
    protected_prefixes: tuple[str, ...] = ("/api/",)

    @property
    def open_access(self) -> bool:
        """True when reads need no token: loopback bind, or --insecure (state changes: see
        ``check_state_change``)."""
        return self.insecure or is_loopback_host(self.bind_host)


def _presented_token(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.query.get("token")


def _matches(presented: str | None, expected: str | None) -> bool:
    return bool(presented and expected and hmac.compare_digest(presented.encode(), expected.encode()))


def _json_error(status: int, message: str, code: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": code, "code": code}}, status=status)


def check(policy: AccessPolicy, request: web.Request) -> web.Response | None:
    """Return an error response when ``request`` may not proceed, else None."""
    path = request.path
    if not any(path.startswith(p) for p in policy.protected_prefixes):
        return None
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        return check_state_change(policy, request)
    if policy.open_access:
        return None
    token = _presented_token(request)
    if _matches(token, policy.read_token) or _matches(token, policy.admin_token):
        return None
    if not policy.read_token and not policy.admin_token:
        return _json_error(
            403,
            f"reading captured content from a non-loopback address needs {READ_TOKEN_ENV} "
            "to be configured (or --insecure)",
            "forbidden",
        )
    return _json_error(401, "missing or wrong read token (Authorization: Bearer <token>)", "unauthorized")


def check_state_change(policy: AccessPolicy, request: web.Request) -> web.Response | None:
    """The rule for state changes (see the module docstring), whatever the path."""
    if policy.admin_token:
        if _matches(_presented_token(request), policy.admin_token):
            return None
        return _json_error(401, "missing or wrong admin token (Authorization: Bearer <token>)", "unauthorized")
    if is_loopback_peer(request.remote):
        return None
    return _json_error(
        403,
        f"state changes from another machine need an admin token: set {ADMIN_TOKEN_ENV} "
        "on this server and send it as Authorization: Bearer <token> (without it, state "
        "changes are allowed from loopback only)",
        "forbidden",
    )


def middleware(policy: AccessPolicy) -> Middleware:
    """aiohttp middleware enforcing ``policy`` and explicit-origin CORS."""

    @web.middleware
    async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        allowed = origin is not None and origin in policy.allowed_origins
        if request.method == "OPTIONS" and origin and request.headers.get("Access-Control-Request-Method"):
            if not allowed:
                return web.Response(status=403, text="origin not allowed")
            return web.Response(status=204, headers=_cors_headers(origin, preflight=True))
        denied = check(policy, request)
        if denied is not None:
            return denied
        response = await handler(request)
        if allowed and origin is not None and not response.prepared:
            response.headers.update(_cors_headers(origin, preflight=False))
        return response

    return access_middleware


def _cors_headers(origin: str, *, preflight: bool) -> dict[str, str]:
    h = {"Access-Control-Allow-Origin": origin, "Vary": "Origin", "Access-Control-Allow-Credentials": "true"}
    if preflight:
        h["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        h["Access-Control-Allow-Headers"] = "Authorization, Content-Type, Last-Event-ID"
        h["Access-Control-Max-Age"] = "600"
    return h


def cors_headers_for(policy: AccessPolicy, request: web.Request) -> dict[str, str]:
    """CORS headers for a streamed response (prepared before the middleware can add them)."""
    origin = request.headers.get("Origin")
    if origin and origin in policy.allowed_origins:
        return _cors_headers(origin, preflight=False)
    return {}
