"""Where a proxied request goes: the upstream URL, built from the raw request target.

``ANY /v1/{path}`` goes to ``{upstream}/{path}``; the upstream's base path (``/v1``,
``/openai/v1``, a route's base) is a boundary no request may leave, because a route's
upstream may be sent with a key tokentail injects. So the path is taken as the client
sent it (still percent-encoded, never decoded and re-encoded) and refused when any
segment is a dot segment in any spelling (``..``, ``%2e%2E``, ``.%2E;x`` as Tomcat reads
it, ``%252e`` for a server that decodes twice) or when it holds an encoded slash or
backslash, which servers and frameworks disagree on. The query string goes upstream byte for byte; only a Google-style ``key=``
parameter is removed when a route injects its own credential.

Pure: takes strings and a ``yarl.URL``, returns a ``URL`` built with ``encoded=True`` (so
aiohttp sends it as is) or raises ``PathRefused``.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import unquote

from yarl import URL

PREFIX = "/v1/"
_DECODE_ROUNDS = 3  # a server that decodes more often than this is beyond help


class PathRefused(ValueError):
    """The request path would leave the upstream's base path (or could, on some server)."""


def _decodings(segment: str) -> list[str]:
    """``segment`` as sent, then percent-decoded again and again until it stops changing."""
    out = [segment]
    for _ in range(_DECODE_ROUNDS):
        decoded = unquote(out[-1])
        if decoded == out[-1]:
            break
        out.append(decoded)
    return out


def check_path(rest: str) -> None:
    """Raise ``PathRefused`` unless every segment of ``rest`` (raw, percent-encoded) is safe."""
    for segment in rest.split("/"):
        for form in _decodings(segment):
            if "/" in form or "\\" in form:
                raise PathRefused("the request path holds an encoded slash or a backslash")
            # Servlet containers read "..;x" as "..": judge the part before a path parameter.
            if form.split(";", 1)[0] in (".", ".."):
                raise PathRefused("the request path holds a dot segment ('.' or '..', in any encoding)")


def without_key_param(raw_query: str) -> str:
    """``raw_query`` without ``key=`` parameters, every other byte kept."""
    return "&".join(p for p in raw_query.split("&") if p and unquote(p.split("=", 1)[0]) != "key")


# Per request, checking the path and building the URL (two yarl copies of the base, a parse)
# cost ~10 µs of the event loop, for the same few paths again and again. So a target without
# a query string (the usual /v1 call) is built once per base URL and path and kept: yarl URLs
# are immutable; a refused path raises, and exceptions are not cached. Targets with a query
# are built each time (a query may carry a ``key=``: not kept in memory), long paths too.
_CACHED_PATH_CHARS = 512


def upstream_url(base: URL, raw_path: str, raw_query: str, *, drop_key_param: bool = False) -> URL:
    """The URL for a request whose raw target was ``raw_path`` (starting with ``/v1/``) and
    ``raw_query`` (without ``?``), sent to the upstream at ``base``."""
    if not raw_query and len(raw_path) <= _CACHED_PATH_CHARS:
        return _upstream_url_cached(base, raw_path)
    return _upstream_url(base, raw_path, raw_query, drop_key_param)


@lru_cache(maxsize=256)
def _upstream_url_cached(base: URL, raw_path: str) -> URL:
    return _upstream_url(base, raw_path, "", False)


def _upstream_url(base: URL, raw_path: str, raw_query: str, drop_key_param: bool) -> URL:
    if not raw_path.startswith(PREFIX):
        raise PathRefused(f"the request path must start with {PREFIX}")
    rest = raw_path[len(PREFIX) :]
    check_path(rest)
    query = without_key_param(raw_query) if drop_key_param else raw_query
    root = str(base.with_query(None).with_fragment(None)).rstrip("/")
    return URL(f"{root}/{rest}" + (f"?{query}" if query else ""), encoded=True)
