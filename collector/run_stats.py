"""Runs without I/O: the life cycle of a run, and its stats from grouped span rows.

A run is ``active`` (recording), ``paused`` or ``ended``; ``transition`` says what an
action does to it, or why it cannot (the API answers 409 with that message). Its
stats come from ``runs.stat_groups``: one row per (model, endpoint, status, HTTP
status, error type) with sums and counts, so any breakdown is a sum of rows and
means are exact (sum / count), never means of means.

Cost is the sum of the costs the proxy knew; requests whose model has no price are
counted apart (``unknown_requests``) and never add zero. A run with requests but no
priced one has cost ``None``: unknown, not free.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

ACTIVE, PAUSED, ENDED = "active", "paused", "ended"
STATUSES = (ACTIVE, PAUSED, ENDED)
ACTIONS = ("pause", "resume", "end")

# (status, action) -> the status after it
_NEXT = {(ACTIVE, "pause"): PAUSED, (PAUSED, "resume"): ACTIVE, (ACTIVE, "end"): ENDED, (PAUSED, "end"): ENDED}
_WHY = {
    (ACTIVE, "resume"): "it is not paused",
    (PAUSED, "pause"): "it is already paused",
    (ENDED, "pause"): "it has ended",
    (ENDED, "resume"): "it has ended; start a new run",
    (ENDED, "end"): "it has already ended",
}

# The columns of a stats group, in the order runs.stat_groups selects them.
GROUP_FIELDS = (
    "model",
    "endpoint",
    "status",
    "http_status",
    "error_type",
    "requests",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "with_usage",
    "cost_usd",
    "priced",
    "tps_sum",
    "tps_n",
    "latency_sum",
    "latency_n",
    "ttft_sum",
    "ttft_n",
)


# A run's scope: field -> expected JSON type. Any combination; a span matches when it
# matches every field given (for ``tags``: carries every tag listed).
SCOPE_FIELDS: dict[str, type] = {
    "tags": list,
    "key_fingerprint": str,
    "user": str,
    "session": str,
    "variant": str,
    "model": str,
}
SCOPE_MAX = 200  # characters of one value
SCOPE_MAX_TAGS = 20
ALL_TRAFFIC = "includes all traffic"


class ScopeError(ValueError):
    """A scope that cannot be stored (answered 400, naming the field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _scope_value(field: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > SCOPE_MAX:
        raise ScopeError(field, f"scope.{field} must be a non-empty string of at most {SCOPE_MAX} characters")
    return value


def validate_scope(scope: object) -> dict[str, Any] | None:
    """The scope of ``POST /api/runs`` checked and normalised; None for no scope (all traffic)."""
    if scope is None:
        return None
    if not isinstance(scope, dict):
        raise ScopeError("scope", f"scope must be an object with any of {', '.join(SCOPE_FIELDS)}")
    out: dict[str, Any] = {}
    for field, value in scope.items():
        kind = SCOPE_FIELDS.get(field)
        if kind is None:
            raise ScopeError(field, f"unknown scope field {field!r}; allowed: {', '.join(SCOPE_FIELDS)}")
        if value is None:
            continue
        if kind is list:
            if not isinstance(value, list) or not value or len(value) > SCOPE_MAX_TAGS:
                raise ScopeError(field, f"scope.tags must be a list of 1 to {SCOPE_MAX_TAGS} tags")
            out[field] = sorted({_scope_value(field, v) for v in value})
        else:
            out[field] = _scope_value(field, value)
    return out or None


class TransitionError(ValueError):
    """An action the run's state does not allow (answered 409)."""

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


def transition(run_id: int, status: str, action: str) -> str:
    """The status after ``action``, or ``TransitionError`` naming the current state."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    nxt = _NEXT.get((status, action))
    if nxt is None:
        why = _WHY.get((status, action), "not allowed")
        raise TransitionError(f"cannot {action} run {run_id}: it is {status} ({why})", status)
    return nxt


def wall_time(intervals: Iterable[tuple[float, float | None]], now: float) -> float:
    """Seconds recorded: the sum of the intervals, an open one counted up to ``now``."""
    return sum(max(0.0, (end if end is not None else now) - start) for start, end in intervals)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _add(x: float | None, y: float | None) -> float | None:
    return y if x is None else x if y is None else x + y


def totals(groups: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Requests, statuses, errors, tokens, cost and means over ``groups`` (pure sums)."""
    t: dict[str, Any] = dict.fromkeys(("requests", "with_usage", "priced", "tps_n", "latency_n", "ttft_n"), 0)
    sums: dict[str, float | None] = dict.fromkeys(
        ("input_tokens", "output_tokens", "cached_input_tokens", "cost_usd", "tps_sum", "latency_sum", "ttft_sum")
    )
    statuses: dict[str, int] = {}
    by_type: dict[str, int] = {}
    by_http: dict[str, int] = {}
    for g in groups:
        n = g["requests"] or 0
        for k in t:
            t[k] += g[k] or 0
        for k in sums:
            sums[k] = _add(sums[k], g[k])
        status = g["status"] or "ok"
        statuses[status] = statuses.get(status, 0) + n
        if status == "error":
            kind = str(g["error_type"] or "error")
            by_type[kind] = by_type.get(kind, 0) + n
            if g["http_status"]:
                code = str(g["http_status"])
                by_http[code] = by_http.get(code, 0) + n
    n = t["requests"]
    errors = statuses.get("error", 0)
    usd: float | None
    if t["priced"]:
        usd = sums["cost_usd"] or 0.0
    else:
        usd = 0.0 if n == 0 else None  # nothing asked costs nothing; nothing priced is unknown
    return {
        "requests": n,
        "statuses": dict(sorted(statuses.items())),
        "errors": {
            "total": errors,
            "rate": _ratio(errors, n),
            "by_type": dict(sorted(by_type.items())),
            "by_http_status": dict(sorted(by_http.items())),
        },
        "tokens": {
            "input": sums["input_tokens"] or 0,
            "output": sums["output_tokens"] or 0,
            "cached_input": sums["cached_input_tokens"] or 0,
            "requests_with_usage": t["with_usage"],
        },
        "cost": {"usd": usd, "priced_requests": t["priced"], "unknown_requests": n - t["priced"]},
        "output_tps_mean": _ratio(sums["tps_sum"], t["tps_n"]),
        "latency_ms_mean": _ratio(sums["latency_sum"], t["latency_n"]),
        "ttft_ms_mean": _ratio(sums["ttft_sum"], t["ttft_n"]),
    }


def _breakdown(groups: list[Mapping[str, Any]], key: str) -> list[dict[str, Any]]:
    parts: dict[str, list[Mapping[str, Any]]] = {}
    for g in groups:
        parts.setdefault(g[key] or "?", []).append(g)
    rows = [{key: name, **totals(gs)} for name, gs in parts.items()]
    rows.sort(key=lambda r: (-r["requests"], r[key]))
    return rows


def summarize(groups: Iterable[Mapping[str, Any]], wall_time_s: float) -> dict[str, Any]:
    """A run's stats: totals, throughput over its wall time, per model and per endpoint."""
    gs = list(groups)
    out = totals(gs)
    out["wall_time_s"] = wall_time_s
    out["output_tokens_per_wall_second"] = (
        _ratio(out["tokens"]["output"], wall_time_s) if out["tokens"]["requests_with_usage"] else None
    )
    out["by_model"] = _breakdown(gs, "model")
    out["by_endpoint"] = _breakdown(gs, "endpoint")
    return out


def as_groups(rows: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """SQL result rows (``GROUP_FIELDS`` order) as dicts."""
    return [dict(zip(GROUP_FIELDS, r)) for r in rows]


def what_if(
    stats: Mapping[str, Any], model: str, price: Callable[[dict[str, int], str], float | None], known: bool
) -> dict[str, Any]:
    """The run's tokens priced at ``model``: ``usd`` None with a ``reason`` when that cannot be said.

    ``price(usage_totals, model)`` is ``PriceTable.what_if``; ``known`` whether the table
    has a price for ``model`` at all (so "no price" and "no tokens" read differently).
    """
    tokens = stats["tokens"]
    out: dict[str, Any] = {
        "model": model,
        "usd": None,
        "reason": None,
        "actual_usd": stats["cost"]["usd"],
        "actual_unknown_requests": stats["cost"]["unknown_requests"],
        "requests_without_usage": stats["requests"] - tokens["requests_with_usage"],
    }
    if not known:
        out["reason"] = f"no price for {model!r} in the pricing table"
        return out
    usage = {
        "input_tokens": tokens["input"],
        "output_tokens": tokens["output"],
        "cached_input_tokens": tokens["cached_input"],
    }
    usd = price(usage, model)
    if usd is None:
        out["reason"] = f"the pricing table cannot price these tokens at {model!r}"
    else:
        out["usd"] = usd
        if out["requests_without_usage"]:
            out["reason"] = f"{out['requests_without_usage']} request(s) without token counts are not included"
    return out


# (name, path into the stats) compared side by side
COMPARED = (
    ("requests", ("requests",)),
    ("wall_time_s", ("wall_time_s",)),
    ("input_tokens", ("tokens", "input")),
    ("output_tokens", ("tokens", "output")),
    ("cached_input_tokens", ("tokens", "cached_input")),
    ("cost_usd", ("cost", "usd")),
    ("cost_unknown_requests", ("cost", "unknown_requests")),
    ("output_tps_mean", ("output_tps_mean",)),
    ("output_tokens_per_wall_second", ("output_tokens_per_wall_second",)),
    ("latency_ms_mean", ("latency_ms_mean",)),
    ("ttft_ms_mean", ("ttft_ms_mean",)),
    ("errors", ("errors", "total")),
    ("error_rate", ("errors", "rate")),
)


def _at(d: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = d
    for k in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(k)
    return node


# Per-request distributions compared at p50 and p95 beside the mean (``stats["distributions"]``).
DISTRIBUTIONS = ("latency_ms", "ttft_ms", "output_tps", "tokens", "cost_usd")
# (Means of latency, TTFT and TPS are in COMPARED already; per-request tokens and cost add theirs.)
COMPARED_DISTRIBUTIONS = tuple(
    (f"{d}_{p}", ("distributions", d, p))
    for d in DISTRIBUTIONS
    for p in ("mean", "p50", "p95")
    if p != "mean" or d in ("tokens", "cost_usd")
)
# Which way is better, per compared metric; a metric not listed has no direction (None).
BETTER: dict[str, str] = {
    "cost_usd": "lower",
    "cost_unknown_requests": "lower",
    "output_tps_mean": "higher",
    "output_tokens_per_wall_second": "higher",
    "latency_ms_mean": "lower",
    "ttft_ms_mean": "lower",
    "errors": "lower",
    "error_rate": "lower",
    **{f"latency_ms_{p}": "lower" for p in ("mean", "p50", "p95")},
    **{f"ttft_ms_{p}": "lower" for p in ("mean", "p50", "p95")},
    **{f"output_tps_{p}": "higher" for p in ("mean", "p50", "p95")},
    **{f"cost_usd_{p}": "lower" for p in ("mean", "p50", "p95")},
}
# Changes within 2% of a (absolute for a == 0: within 1e-9) count as "same": run-to-run noise.
TOLERANCE = 0.02


def change(better: str | None, a: float | None, b: float | None, tolerance: float = TOLERANCE) -> str | None:
    """``better``/``worse``/``same`` for b against a, by the metric's direction; None when unknown."""
    if better is None or a is None or b is None:
        return None
    if abs(b - a) <= max(abs(a) * tolerance, 1e-9):
        return "same"
    return "better" if (b < a) == (better == "lower") else "worse"


def compare(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per metric: the value in run ``a`` and in run ``b``, ``b - a`` and ``b / a`` (None when unknown),
    which direction is ``better`` (``lower``/``higher``, None when neither) and whether b's value
    is a ``change`` for the better, the worse, or the ``same`` (within ``TOLERANCE``)."""
    out = []
    for name, path in (*COMPARED, *COMPARED_DISTRIBUTIONS):
        x, y = _at(a, path), _at(b, path)
        diff = y - x if x is not None and y is not None else None
        better = BETTER.get(name)
        out.append(
            {
                "metric": name,
                "a": x,
                "b": y,
                "diff": diff,
                "ratio": _ratio(y, x),
                "better": better,
                "change": change(better, x, y),
            }
        )
    return out
