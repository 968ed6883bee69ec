"""The Overview from a Prometheus-compatible HTTP API: PromQL and the answers' shape (pure).

``plan`` picks the time grid of a range (the collector's buckets: same origin and step, the
step never below the scrape interval nor so small that a series has more than
``MAX_POINTS`` points); ``range_query`` and ``summary_query`` build one PromQL expression
each for a whole chart set (every metric tagged with a ``tokentail_metric`` label through
``label_replace`` and joined with ``or``: one round trip, not fifteen); ``promql_answers``
turns the answers into the JSON the collector's ``/api/metrics`` returns, so the Overview's
code does not know where its numbers came from. ``status_query`` asks for ``/api/status``'s
variants (targets up, requests in flight now).

Point i of a series is evaluated at the end of the collector's bucket i with a rate window
of one step plus one scrape interval, so it covers the scrape before the bucket too: the
increase over the bucket, as the collector computes it from consecutive scrapes. Only
buckets that ended by ``now`` are evaluated so (a rate over a window that reaches into the
future is understated); the current one is evaluated at ``now`` over the part that has
passed, as the collector divides its increases by the seconds covered. Percentiles come from histogram buckets (``histogram_quantile``):
the answer says so (``quantile_source``) and the page shows "from buckets".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

RANGE_SECONDS = {"5m": 300, "15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800}
# The collector's steps per range (collector/query.py RANGES): the same grid, the same charts.
BASE_STEPS = {"5m": 5, "15m": 10, "1h": 30, "6h": 180, "24h": 600, "7d": 3600}
MAX_POINTS = 300
BY = ("variant", "model")
TAG = "tokentail_metric"  # the label that tells the metrics of one combined answer apart
CURRENT = "current:"  # tag prefix of the current bucket's values in the summary answer
UNLABELLED = "(no variant)"  # series of targets scraped without a `variant` label
MAX_LABEL_VALUE = 1000  # characters of a model filter put into a query (the proxy keeps 100)
# collector/formulas.py ERROR_CLASSES and CANCELLED_CLASS (a test checks they agree).
ERROR_CLASSES = ("4xx", "5xx", "upstream_error")
CANCELLED_CLASS = "cancelled"
# How long a target that stopped answering still counts (as down) in the status.
STATUS_LOOKBACK_S = 600

REQUESTS = "tokentail_requests_total"
TOKENS = "tokentail_tokens_total"
CACHED = "tokentail_cached_input_tokens_total"
DURATION = "tokentail_request_duration_seconds"
TTFT = "tokentail_time_to_first_token_seconds"
TPS = "tokentail_output_tokens_per_second"
IN_FLIGHT = "tokentail_in_flight_requests"

# The rates of the duration histograms' _sum and _count (a single observation is exact).
HISTOGRAM_MEANS = ("latency_sum_rate", "latency_count_rate", "ttft_sum_rate", "ttft_count_rate")
# Percentile metrics: (histogram, q, scale to the unit shown).
QUANTILES: dict[str, tuple[str, float, float]] = {
    "latency_p50_ms": (DURATION, 0.5, 1000.0),
    "latency_p95_ms": (DURATION, 0.95, 1000.0),
    "latency_p99_ms": (DURATION, 0.99, 1000.0),
    "ttft_p50_ms": (TTFT, 0.5, 1000.0),
    "ttft_p95_ms": (TTFT, 0.95, 1000.0),
    "output_tps_p50": (TPS, 0.5, 1.0),
}
# Rates summed over time into the summary's counts (requests, errors, tokens, ...).


class PromQLError(ValueError):
    """A parameter the Overview cannot ask for, or an answer not shaped like Prometheus's."""


@dataclass(frozen=True)
class Window:
    """The time grid of one range: bucket i is ``[origin + i*step, origin + (i+1)*step)``."""

    range: str
    step: float
    origin: float
    buckets: int
    now: float
    scrape_interval: float

    @property
    def end(self) -> float:
        return self.origin + self.buckets * self.step

    @property
    def complete(self) -> int:
        """How many buckets have ended by ``now`` (only those are evaluated)."""
        return max(0, min(self.buckets, int((self.now - self.origin) // self.step)))

    @property
    def eval_start(self) -> float:
        return self.origin + self.step  # the end of bucket 0

    @property
    def eval_end(self) -> float:
        return self.origin + self.complete * self.step

    @property
    def rate_window(self) -> float:
        return self.step + self.scrape_interval

    @property
    def current_seconds(self) -> float:
        """How much of the current bucket (the first that has not ended) has passed by ``now``."""
        if self.complete >= self.buckets:
            return 0.0
        return max(0.0, self.now - self.eval_end)

    @property
    def summary_window(self) -> float:
        """From the scrape before the first bucket to ``now``."""
        return self.now - self.origin + self.scrape_interval

    def timestamps(self) -> list[float]:
        return [self.origin + i * self.step for i in range(self.buckets)]


def plan(rng: str, now: float, scrape_interval: float) -> Window:
    """The grid of range ``rng`` at ``now`` for data scraped every ``scrape_interval`` seconds."""
    if rng not in RANGE_SECONDS:
        raise PromQLError(f"range {rng!r} is not one of {', '.join(RANGE_SECONDS)}")
    if not (math.isfinite(scrape_interval) and scrape_interval > 0):
        raise PromQLError(f"scrape interval {scrape_interval!r} is not a positive number of seconds")
    seconds = RANGE_SECONDS[rng]
    step = float(max(BASE_STEPS[rng], math.ceil(scrape_interval), math.ceil(seconds / MAX_POINTS)))
    n = int(seconds // step)
    origin = math.floor(now / step) * step - (n - 1) * step
    return Window(rng, step, origin, n, now, float(scrape_interval))


def duration(seconds: float) -> str:
    """A PromQL duration: whole seconds when it is one, else milliseconds (``6s``, ``1500ms``)."""
    ms = max(1, int(round(seconds * 1000)))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def quote(value: str) -> str:
    """``value`` as a PromQL (Go-syntax) double-quoted string: a filter from the page cannot
    end the string or the selector. Lone surrogates become ``?`` (they cannot be sent)."""
    text = value[:MAX_LABEL_VALUE].encode("utf-8", "replace").decode("utf-8")
    out = []
    for c in text:
        if c in ('"', "\\"):
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\x{ord(c):02x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _selector(name: str, *matchers: str) -> str:
    inner = ",".join(m for m in matchers if m)
    return f"{name}{{{inner}}}" if inner else name


def metric_exprs(by: str, model: str | None, window: float, *, step: float | None = None) -> dict[str, str]:
    """PromQL per metric (and the hidden rates the summary sums), grouped ``by`` variant or
    model, restricted to ``model`` when given, rates over ``window`` seconds.

    With ``step`` (a bucket's length), the histograms behind the percentiles are read as
    exact increases over the step (the newest sample of the step minus the newest of the step
    before), not ``rate()``: rate extrapolates
    each bucket series on its own (a bucket still at 0 is not extrapolated towards the
    window's start), and with a handful of requests that alone moved a p95 of 250 ms requests
    two buckets up. The increase between scrapes is also what the collector reads. A counter
    reset (a proxy restart) clamps to 0 for that step. Without ``step`` (the whole range)
    rate() over the window: its extrapolation is small next to the range."""
    if by not in BY:
        raise PromQLError(f"by={by!r} is not one of {', '.join(BY)}")
    w = duration(window)
    m = f"model={quote(model)}" if model else ""

    def rate(name: str, *matchers: str) -> str:
        return f"sum by ({by}) (rate({_selector(name, m, *matchers)}[{w}]))"

    def increase(name: str, extra: str = "") -> str:
        sel = _selector(name, m)
        if step is None:
            return f"sum by ({by}{extra}) (increase({sel}[{w}]))"
        d = duration(step)
        # last_over_time: the newest real sample (a failed scrape's staleness marker is skipped)
        end, start = f"last_over_time({sel}[{d}])", f"last_over_time({sel}[{d}] offset {d})"
        return f"sum by ({by}{extra}) (clamp_min({end} - {start}, 0))"

    def hist_rate(name: str) -> str:
        return f"{increase(name)} / {step or window:g}"

    def ratio(num: str, den: str) -> str:
        # A group with requests but no error series has a ratio of 0, not none.
        return f"(({num}) or ({den}) * 0) / ({den})"

    total = rate(REQUESTS)
    errors = rate(REQUESTS, f"status_class=~{quote('|'.join(ERROR_CLASSES))}")
    cancelled = rate(REQUESTS, f"status_class={quote(CANCELLED_CLASS)}")
    exprs = {
        "request_rate": total,
        "errors_rate": errors,
        "cancelled_rate": cancelled,
        "input_tokens_rate": rate(TOKENS, 'type="input"'),
        "output_tokens_rate": rate(TOKENS, 'type="output"'),
        "cached_input_tokens_rate": rate(CACHED),
        "tps_sum_rate": rate(f"{TPS}_sum"),
        "tps_count_rate": rate(f"{TPS}_count"),
        # Mean and count per histogram: with one observation its percentiles are its value.
        "latency_sum_rate": hist_rate(f"{DURATION}_sum"),
        "latency_count_rate": hist_rate(f"{DURATION}_count"),
        "ttft_sum_rate": hist_rate(f"{TTFT}_sum"),
        "ttft_count_rate": hist_rate(f"{TTFT}_count"),
        "output_tps": f"({rate(f'{TPS}_sum')}) / ({rate(f'{TPS}_count')})",
        "error_rate": ratio(errors, total),
        "cancel_rate": ratio(cancelled, total),
    }
    for key, (hist, q, scale) in QUANTILES.items():
        expr = f"histogram_quantile({q}, {increase(hist + '_bucket', ', le')})"
        exprs[key] = expr if scale == 1.0 else f"({expr}) * {scale:g}"
    if by == "variant" and not model:
        # Requests in flight: the mean over the step, summed over targets (no model label).
        exprs["in_flight"] = f"sum by (variant) (avg_over_time({IN_FLIGHT}[{duration(step or window)}]))"
    # Seconds scraped: a target of the group answered in the window (for the summary's rates).
    scraped = f"count_over_time({IN_FLIGHT}[{w}])"
    exprs["covered"] = f"count by (variant) ({scraped})" if by == "variant" else f"count({scraped})"
    return exprs


def combine(exprs: Mapping[str, str]) -> str:
    """One expression answering every one of ``exprs``, each series tagged with its key."""
    return " or ".join(f'label_replace({e}, "{TAG}", "{k}", "", "")' for k, e in exprs.items())


def range_query(w: Window, by: str, model: str | None) -> str:
    """The per-bucket expression: evaluate from ``w.eval_start`` to ``w.eval_end`` every step."""
    return combine(metric_exprs(by, model, w.rate_window, step=w.step))


def summary_query(w: Window, by: str, model: str | None) -> str:
    """What is evaluated at ``w.now``: the percentiles over the whole range (buckets summed
    over it), and every metric of the current bucket (``CURRENT``-prefixed), so the newest
    data shows even when the step is an hour."""
    exprs = metric_exprs(by, model, w.summary_window)
    tagged = {k: exprs[k] for k in [*QUANTILES, *HISTOGRAM_MEANS]}
    if w.current_seconds > 0:
        current = metric_exprs(by, model, w.current_seconds + w.scrape_interval, step=w.current_seconds)
        tagged.update({CURRENT + k: e for k, e in current.items()})
    return combine(tagged)


# Raw samples of a gauge every proxy exposes: their spacing is the scrape interval.
INTERVAL_PROBE = f"{IN_FLIGHT}[10m]"
DEFAULT_SCRAPE_INTERVAL = 15.0  # Prometheus's usual; when nothing was scraped in 10 minutes


def status_query() -> str:
    """Per variant: targets (those that exposed tokentail metrics lately), targets up, in flight."""
    tokentail_targets = f"up and on (job, instance) last_over_time({IN_FLIGHT}[{duration(STATUS_LOOKBACK_S)}])"
    return combine(
        {
            "targets_up": f"sum by (variant) ({tokentail_targets})",
            "targets": f"count by (variant) ({tokentail_targets})",
            "in_flight": f"sum by (variant) ({IN_FLIGHT})",
        }
    )
