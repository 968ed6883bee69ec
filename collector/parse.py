"""Exposition text -> samples (pure, no I/O).

The step after ``scrape.fetch``: prometheus_client's own parsers turn the text into
metric families; this module keeps the series the collector stores (``tokentail_*``
by default), says which are monotonic (counters, histogram buckets/sum/count) and
which are gauges, and attaches what ``derive`` needs to see a counter reset: each
series' ``_created`` timestamp and the target's ``process_start_time_seconds``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from prometheus_client.openmetrics.parser import text_string_to_metric_families as _parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as _parse_text

COUNTER = "counter"  # monotonic: stored as per-interval increases
GAUGE = "gauge"  # stored as the value seen

Labels = tuple[tuple[str, str], ...]


class ParseError(ValueError):
    """The body is not a Prometheus exposition; ``str()`` is a short reason."""


@dataclass(frozen=True, slots=True)
class Sample:
    name: str  # sample name as exposed: tokentail_requests_total, ..._bucket
    labels: Labels  # sorted (name, value) pairs, ``le`` included for buckets
    value: float
    kind: str  # COUNTER or GAUGE
    group: tuple[str, Labels]  # samples that reset together: a counter, or a whole histogram
    created: float | None = None  # the series' _created timestamp, when exposed


@dataclass(slots=True)
class Exposition:
    samples: list[Sample] = field(default_factory=list)
    process_start: float | None = None  # process_start_time_seconds: changes when the target restarts
    dropped: int = 0  # samples skipped: non-finite, or over the series cap


# Sample suffixes that are monotonic within each family type.
_MONOTONIC = {
    "counter": ("_total", ""),
    "histogram": ("_bucket", "_count", "_sum"),
    "gaugehistogram": (),
    "summary": ("_count", "_sum"),
}


def _canonical(labels: dict[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


def _without_le(labels: Labels) -> Labels:
    return tuple(kv for kv in labels if kv[0] != "le")


def parse_exposition(
    text: str,
    *,
    openmetrics: bool = False,
    prefix: str = "tokentail_",
    max_series: int = 10_000,
) -> Exposition:
    """Parse ``text`` (Prometheus text format, or OpenMetrics) into stored samples.

    Only families whose name starts with ``prefix`` are kept; ``_created`` series
    and ``process_start_time_seconds`` are read for reset detection, not stored.
    Raises ``ParseError`` when the text is not an exposition at all.
    """
    parser = _parse_openmetrics if openmetrics else _parse_text
    kept_text = _prefilter(text, prefix)
    try:
        families = list(parser(kept_text))
        if not families and text.strip():
            list(parser(text))  # nothing of ours: is it an exposition at all? (raises if not)
            raise ParseError(f"no {prefix}* series in the response (is this a tokentail proxy?)")
    except ParseError:
        raise
    except Exception as exc:  # the parsers raise ValueError, IndexError, ... on garbage
        raise ParseError(f"unparseable exposition: {_short(exc)}") from None

    out = Exposition()
    typed: dict[str, str] = {f.name: f.type for f in families}
    created: dict[tuple[str, Labels], float] = {}
    kept = []
    for fam in families:
        if fam.name == "process_start_time_seconds" and fam.samples:
            out.process_start = fam.samples[0].value
            continue
        if not fam.name.startswith(prefix):
            continue
        # The text format exposes X_created as its own gauge family next to counter X.
        if fam.name.endswith("_created") and typed.get(fam.name[: -len("_created")]) in _MONOTONIC:
            base = fam.name[: -len("_created")]
            for s in fam.samples:
                created[(base, _canonical(s.labels))] = s.value
            continue
        kept.append(fam)

    for fam in kept:
        suffixes = _MONOTONIC.get(fam.type)
        for s in fam.samples:
            if s.name.endswith("_created") and suffixes is not None:
                created[(fam.name, _without_le(_canonical(s.labels)))] = s.value  # OpenMetrics inline
                continue
            if suffixes is None:
                kind = GAUGE
            elif any(s.name == fam.name + suf for suf in suffixes):
                kind = COUNTER
            else:
                continue  # summary quantiles, gsum/gcount: not stored
            if not math.isfinite(s.value):
                out.dropped += 1
                continue
            if len(out.samples) >= max_series:
                out.dropped += 1
                continue
            labels = _canonical(s.labels)
            group = (fam.name, _without_le(labels))
            out.samples.append(Sample(s.name, labels, float(s.value), kind, group))

    if created:
        out.samples = [
            Sample(s.name, s.labels, s.value, s.kind, s.group, created.get(s.group)) if s.kind == COUNTER else s
            for s in out.samples
        ]
    return out


_PROCESS_START = "process_start_time_seconds"


def _prefilter(text: str, prefix: str) -> str:
    """Only the lines of the families we read, before prometheus_client parses them.

    The parser is pure Python and costs per line; a proxy exposes as many ``gen_ai_*``
    (and ``python_*``/``process_*``) lines as ``tokentail_*`` ones, which we never store.
    Order is kept, with each family's ``# HELP``/``# TYPE`` lines, so the parser sees a
    valid exposition of just those families.
    """
    out = []
    for line in text.split("\n"):
        if line.startswith((prefix, _PROCESS_START)):
            out.append(line)
        elif line.startswith("# "):
            parts = line.split(None, 3)
            if (
                len(parts) >= 3
                and parts[1] in ("HELP", "TYPE", "UNIT")
                and (parts[2].startswith(prefix) or parts[2] == _PROCESS_START)
            ):
                out.append(line)
            elif line.rstrip() == "# EOF":
                out.append(line)  # OpenMetrics' mandatory end
    return "\n".join(out) + "\n" if out else ""


def _short(exc: Exception) -> str:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return msg[:120] + ("..." if len(msg) > 120 else "")
