"""Rate-limit headroom from an upstream's response headers (pure: no I/O, no clock of its own).

Providers say how close a caller is to its limits on every response:

- OpenAI style (OpenAI, Azure OpenAI, Groq, Together, vLLM behind gateways...):
  ``x-ratelimit-limit-requests``, ``x-ratelimit-remaining-requests``,
  ``x-ratelimit-reset-requests`` (a Go duration: ``6m0s``, ``1.5s``, ``20ms``, ``1h2m3.5s``),
  and the same for ``-tokens``.
- Anthropic: ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}``,
  the reset an RFC 3339 time.
- ``retry-after`` on 429/503: seconds or an HTTP date (``retry-after-ms`` where sent).

``parse_headers(headers, now)`` turns them into ``{kind: Limit}`` with kind one of ``KINDS``
(a fixed set, so metric label sets stay bounded) plus the retry-after seconds. ``now`` (epoch
seconds) turns absolute reset times into seconds from now. Junk values are ignored, never raised.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime

__all__ = [
    "KINDS",
    "Limit",
    "RateLimits",
    "headroom",
    "parse_duration",
    "parse_headers",
    "parse_reset",
    "parse_retry_after",
]

KINDS = ("requests", "tokens", "input_tokens", "output_tokens")

_OPENAI = re.compile(r"x-ratelimit-(limit|remaining|reset)-(requests|tokens)")
_ANTHROPIC = re.compile(r"anthropic-ratelimit-(requests|tokens|input-tokens|output-tokens)-(limit|remaining|reset)")
# A Go time.Duration string as OpenAI sends it: 1h2m3.5s, 6m0s, 1.5s, 20ms, 250us.
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|us|µs|ns|m|s)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_MAX_VALUE = 1e15  # beyond any real limit: a garbled header


@dataclass(slots=True)
class Limit:
    """One kind's numbers; ``None`` where the upstream did not say (or said nonsense)."""

    limit: float | None = None
    remaining: float | None = None
    reset_seconds: float | None = None  # from the response's time until the window resets

    def headroom(self) -> float | None:
        return headroom(self.limit, self.remaining)

    def as_dict(self) -> dict[str, float | None]:
        return {
            "limit": self.limit,
            "remaining": self.remaining,
            "reset_seconds": self.reset_seconds,
            "headroom": self.headroom(),
        }


@dataclass(slots=True)
class RateLimits:
    kinds: dict[str, Limit] = field(default_factory=dict)
    retry_after: float | None = None  # seconds

    def __bool__(self) -> bool:
        return bool(self.kinds) or self.retry_after is not None

    def as_dict(self) -> dict[str, object]:
        return {"kinds": {k: v.as_dict() for k, v in self.kinds.items()}, "retry_after": self.retry_after}


def headroom(limit: float | None, remaining: float | None) -> float | None:
    """remaining / limit in [0, 1]; None when either is unknown or the limit is 0."""
    if limit is None or remaining is None or limit <= 0:
        return None
    return min(1.0, max(0.0, remaining / limit))


def parse_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]], now: float) -> RateLimits:
    """Rate limits from response headers (any casing); ``now`` is the response's epoch time."""
    out = RateLimits()
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        low = name.lower()
        if not low.startswith(("x-ratelimit-", "anthropic-ratelimit-", "retry-")):
            continue
        if low == "retry-after":
            out.retry_after = parse_retry_after(value, now) if out.retry_after is None else out.retry_after
            continue
        if low == "retry-after-ms":  # more precise than retry-after: it wins
            ms = _number(value)
            if ms is not None:
                out.retry_after = ms / 1000.0
            continue
        m = _OPENAI.fullmatch(low)
        if m is not None:
            field_, kind = m.groups()
        else:
            m = _ANTHROPIC.fullmatch(low)
            if m is None:
                continue
            kind, field_ = m.group(1).replace("-", "_"), m.group(2)
        if field_ == "reset":
            reset = parse_reset(value, now)
            if reset is not None:
                out.kinds.setdefault(kind, Limit()).reset_seconds = reset
            continue
        number = _number(value)
        if number is None:
            continue
        lim = out.kinds.setdefault(kind, Limit())
        if field_ == "limit":
            lim.limit = number
        else:
            lim.remaining = number
    return out


def parse_reset(value: str, now: float) -> float | None:
    """A reset as seconds from ``now``: a Go duration (``6m0s``), plain seconds, or an RFC 3339 time."""
    value = value.strip()
    seconds = parse_duration(value)
    if seconds is not None:
        return seconds
    when = _rfc3339(value)
    if when is None:
        return None
    return max(0.0, when - now)


def parse_retry_after(value: str, now: float) -> float | None:
    """``Retry-After``: delay seconds or an HTTP date (RFC 9110), as seconds from ``now``."""
    value = value.strip()
    number = _number(value)
    if number is not None:
        return number
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def parse_duration(value: str) -> float | None:
    """A Go duration (``1h2m3.5s``, ``6m0s``, ``20ms``) or a bare number of seconds; None for junk."""
    value = value.strip()
    if not value:
        return None
    number = _number(value)
    if number is not None:
        return number
    total, pos = 0.0, 0
    for m in _DURATION_PART.finditer(value):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(value) or not math.isfinite(total) or total > _MAX_VALUE:
        return None
    return total


def _number(value: str) -> float | None:
    """A finite non-negative number, or None (``1e999``, ``nan``, ``-1``, ``10k`` are junk)."""
    value = value.strip()
    if not value or not (value[0].isdigit() or value[0] == "."):
        return None
    try:
        n = float(value)
    except ValueError:
        return None
    if not math.isfinite(n) or n > _MAX_VALUE:
        return None
    return n


def _rfc3339(value: str) -> float | None:
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return when.timestamp()
