"""``--live-redis`` URLs (pure): checked when options are resolved, shown without credentials.

The proxies append their live events to one Redis stream, the collector reads it (see
``proxy/live_redis.py`` and ``collector/live_redis.py``). Both take the URL the ``redis``
client takes: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` for TLS, or
``unix:///path/to/redis.sock``.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["DEFAULT_STREAM", "display_redis_url", "redis_url"]

DEFAULT_STREAM = "tokentail:live"  # the stream key every proxy appends to and the reader reads
_SCHEMES = ("redis", "rediss", "unix")


def redis_url(text: str) -> str:
    """The URL as given, once it parses as one the ``redis`` client takes (else ValueError)."""
    raw = text.strip()
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"{display_redis_url(raw)!r}: {exc}") from None
    if parts.scheme not in _SCHEMES:
        raise ValueError(f"{display_redis_url(raw)!r}: expected redis://HOST[:PORT][/DB], rediss://… or unix:///PATH")
    if parts.scheme == "unix" and not parts.path:
        raise ValueError(f"{display_redis_url(raw)!r}: a unix socket URL needs a path")
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError(f"{display_redis_url(raw)!r}: no host")
    return raw


def display_redis_url(url: str) -> str:
    """``url`` without user, password or query string: safe to log and show."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
