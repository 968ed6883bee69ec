"""Numbers as people read them: units, sensible precision, a dash for unknown (pure)."""

from __future__ import annotations

import math
import time
from typing import Any, TypeGuard

MISSING = "—"

# The collector's unit names (``/api/metrics`` ``units``) -> how they read on screen.
UNIT_LABELS = {"req/s": "req/s", "tokens/s": "tok/s", "ms": "ms", "ratio": "%", "requests": "", "tokens": "tok"}


def _known(v: float | None) -> TypeGuard[float]:
    # A TypeGuard (not TypeIs): NaN is a float yet not known, so False must not narrow to None.
    return v is not None and not (isinstance(v, float) and (math.isnan(v) or math.isinf(v)))


def _sig(v: float, digits: int = 3) -> str:
    """``v`` with about ``digits`` significant digits, no exponent, no trailing zeros."""
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 10 ** (digits - 1):
        return f"{v:,.0f}"
    decimals = digits - 1 - int(math.floor(math.log10(a)))
    text = f"{v:.{max(decimals, 0)}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def ms(v: float | None) -> str:
    """A duration given in milliseconds: ``4.2 ms``, ``312 ms``, ``1.52 s``, ``2.5 min``."""
    if not _known(v):
        return MISSING
    if abs(v) < 1000:
        return f"{_sig(v)} ms"
    if abs(v) < 60_000:
        return f"{_sig(v / 1000)} s"
    return f"{_sig(v / 60_000)} min"


def rate(v: float | None, unit: str) -> str:
    """``0.75 req/s``, ``42.1 tok/s``."""
    if not _known(v):
        return MISSING
    return f"{_sig(v)} {unit}"


def percent(ratio: float | None) -> str:
    """A ratio as a percentage: ``0 %``, ``0.5 %``, ``12.5 %``."""
    if not _known(ratio):
        return MISSING
    return f"{_sig(ratio * 100)} %"


def count(n: float | None) -> str:
    """``17``, ``1,234``, ``12.3 k``, ``4.5 M``."""
    if not _known(n):
        return MISSING
    a = abs(n)
    if a >= 1e6:
        return f"{_sig(n / 1e6)} M"
    if a >= 1e5:
        return f"{_sig(n / 1e3)} k"
    if float(n).is_integer():
        return f"{int(n):,}"
    return _sig(n)


UNKNOWN_COST = "unknown"


def usd(v: float | None) -> str:
    """A cost: ``$0.000423``, ``$0.0138``, ``$1.23``, ``$1,235``; ``unknown`` (never $0) without a price."""
    if not _known(v):
        return UNKNOWN_COST
    return "$" + _sig(v)


def cost(v: float | None, unknown: int = 0) -> str:
    """A total of costs, saying how many requests had no price: ``$0.42 + 3 unknown``."""
    if not _known(v):
        return UNKNOWN_COST
    return usd(v) + (f" + {unknown} unknown" if unknown else "")


def duration(seconds: float | None) -> str:
    """A wall time: ``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    if not _known(seconds):
        return MISSING
    s = int(round(seconds))
    if s < 60:
        return f"{_sig(seconds) if seconds < 10 else s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def value(v: float | None, unit: str) -> str:
    """A value of ``/api/metrics`` by its unit there."""
    if unit == "ms":
        return ms(v)
    if unit == "ratio":
        return percent(v)
    if unit in ("requests", "tokens"):
        return count(v)
    return rate(v, UNIT_LABELS.get(unit, unit))


def clock(ts: float | None, with_seconds: bool = True) -> str:
    """Local wall-clock time of an epoch timestamp."""
    if not _known(ts):
        return MISSING
    return time.strftime("%H:%M:%S" if with_seconds else "%H:%M", time.localtime(ts))


def stamp(ts: float | None) -> str:
    """Local date and time with milliseconds: ``2024-05-01 12:03:04.512``."""
    if not _known(ts):
        return MISSING
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) + f".{int((ts % 1) * 1000):03d}"


# Error kinds as the proxy records them (live feed: ``error``; stored spans: ``error_type``,
# where an upstream HTTP error is its code) -> words a person reads.
ERROR_KINDS = {
    "connect": "could not connect upstream",
    "timeout": "upstream timed out",
    "upstream_disconnect": "upstream closed mid-stream",
    "incomplete_stream": "stream ended without its terminator",
    "cancelled_by_operator": "cancelled by an operator",
    "_OTHER": "other error",
}
HTTP_REASONS = {
    400: "bad request",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    408: "request timeout",
    409: "conflict",
    413: "payload too large",
    422: "unprocessable",
    429: "rate limited",
    500: "server error",
    502: "bad gateway",
    503: "unavailable",
    504: "gateway timeout",
}


def error_label(kind: str | None, http_status: int | None = None) -> str:
    """``HTTP 429 rate limited``, ``upstream closed mid-stream``; empty when there was no error."""
    if not kind:
        return ""
    code = int(kind) if kind.isdigit() else (http_status if kind == "status" else None)
    if code:
        reason = HTTP_REASONS.get(code)
        return f"HTTP {code}" + (f" {reason}" if reason else "")
    if kind == "status":
        return "HTTP error"
    return ERROR_KINDS.get(kind, kind.replace("_", " "))


def cost_incurred(status: str | None, usage: dict[str, Any] | None, cost_usd: float | None) -> bool:
    """Whether a finished request has a cost to show: a failed request that used no tokens
    and has no price incurred nothing, so it gets no cost line (never "cost unknown")."""
    if _known(cost_usd) or status != "error":
        return True
    u = usage or {}
    return bool(u.get("input_tokens") or u.get("output_tokens"))
