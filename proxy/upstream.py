"""The upstream request, built in one place from what the request hooks planned (pure).

``build`` takes the ``RequestContext`` after the hooks ran and returns the URL, headers and
body to send. The URL is the plan's base URL plus the client's path and query string as the
client sent them, byte for byte (``upstream_url``: a path with a dot segment or an encoded
slash in any spelling raises ``PathRefused``), minus ``key=`` when a route injects its own key. The headers are the
client's minus hop-by-hop ones and, with a route's key, minus every credential the client
sent; then the plan's headers and the route's key. The body is the client's bytes, or the
JSON object with the plan's fields set, serialised once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDict
from yarl import URL

from .hooks import RequestContext
from .redact import is_secret_header
from .upstream_url import PREFIX, PathRefused, upstream_url

__all__ = ["HOP_BY_HOP", "PathRefused", "UpstreamRequest", "build", "dump_json"]

# RFC 9110 hop-by-hop headers, plus those the transport recomputes.
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
    )
)
# tokentail's own request headers, read by a hook and never sent upstream.
TOKENTAIL_ONLY = frozenset({"x-tokentail-replay-of", "x-tokentail-capture"})


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    url: URL
    headers: CIMultiDict[str]
    body: bytes | None
    obj: dict[str, Any] | None  # the JSON body as sent (the tap reads the request from it)


def build(ctx: RequestContext) -> UpstreamRequest:
    plan = ctx.plan
    auth = plan.route.auth() if plan.route is not None else None
    url = upstream_url(plan.base, PREFIX + ctx.path, ctx.query_string, drop_key_param=auth is not None)
    obj, body = ctx.obj, ctx.body
    if plan.body and obj is not None:
        obj = {**obj, **plan.body}  # keys keep their places: the client's field order is sent
        body = dump_json(obj)
    return UpstreamRequest(url, _headers(ctx.headers, plan.headers, auth), body or None, obj)


def _headers(client: Mapping[str, str], extra: dict[str, str], auth: tuple[str, str] | None) -> CIMultiDict[str]:
    drop = set(HOP_BY_HOP) | TOKENTAIL_ONLY
    conn = client.get("Connection")
    if conn:  # headers named in Connection are hop-by-hop too
        drop.update(h.strip().lower() for h in conn.split(","))
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in client.items():
        low = name.lower()
        if low not in drop and low != "accept-encoding" and not (auth is not None and is_secret_header(low)):
            out.add(name, value)
    out["Accept-Encoding"] = "identity"  # so the tap can read what streams back
    for name, value in extra.items():
        out[name] = value
    if auth is not None:
        out[auth[0]] = auth[1]
    return out


# Built once: json.dumps with arguments builds a new encoder per call (a fifth of its cost here).
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_COMPACT_ASCII = json.JSONEncoder(separators=(",", ":"))


def dump_json(obj: dict[str, Any]) -> bytes:
    """The (changed) request body; a lone surrogate the client sent escaped stays escaped."""
    try:
        return _COMPACT.encode(obj).encode()
    except UnicodeEncodeError:
        return _COMPACT_ASCII.encode(obj).encode()
