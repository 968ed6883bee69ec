"""Numbers with units (dashboard/_format.py)."""

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest

from tokentail.dashboard import _format as fmt
from tokentail.dashboard import figures, layout


@pytest.mark.parametrize(
    "value, text",
    [
        (None, "—"),
        (math.nan, "—"),
        (0, "0 ms"),
        (4.234, "4.23 ms"),
        (312.4, "312 ms"),
        (999.4, "999 ms"),
        (1520, "1.52 s"),
        (12_345, "12.3 s"),
        (150_000, "2.5 min"),
    ],
)
def test_ms(value, text):
    assert fmt.ms(value) == text


@pytest.mark.parametrize(
    "value, unit, text",
    [
        (0.75, "req/s", "0.75 req/s"),
        (42.123, "tok/s", "42.1 tok/s"),
        (1234.6, "tok/s", "1,235 tok/s"),
        (0.000123, "req/s", "0.000123 req/s"),
        (None, "req/s", "—"),
    ],
)
def test_rate(value, unit, text):
    assert fmt.rate(value, unit) == text


def test_percent_count_and_units():
    assert fmt.percent(0.025) == "2.5 %"
    assert fmt.percent(0) == "0 %"
    assert fmt.percent(None) == "—"
    assert fmt.count(17) == "17"
    assert fmt.count(1234.0) == "1,234"
    assert fmt.count(123_456) == "123 k"
    assert fmt.count(4_500_000) == "4.5 M"
    assert fmt.value(0.1, "ratio") == "10 %"
    assert fmt.value(3.0, "requests") == "3"
    assert fmt.value(12.5, "tokens/s") == "12.5 tok/s"
    assert fmt.value(1500, "ms") == "1.5 s"


def test_stamp_has_milliseconds():
    assert fmt.stamp(1_700_000_000.512).endswith(".512")
    assert fmt.stamp(None) == "—"


@pytest.mark.parametrize(
    "value, text",
    [
        (None, "unknown"),
        (math.nan, "unknown"),
        (0, "$0"),
        (0.000423, "$0.000423"),
        (0.01384, "$0.0138"),
        (1.2345, "$1.23"),
        (1234.5, "$1,234"),
    ],
)
def test_usd_unknown_is_never_zero(value, text):
    assert fmt.usd(value) == text


def test_cost_totals_and_durations():
    assert fmt.cost(0.42, 3) == "$0.42 + 3 unknown"
    assert fmt.cost(0.42) == "$0.42"
    assert fmt.cost(None, 3) == "unknown"
    assert fmt.duration(4.25) == "4.25 s" and fmt.duration(42.4) == "42 s"
    assert fmt.duration(185) == "3 min 05 s" and fmt.duration(7620) == "2 h 07 min"
    assert fmt.duration(None) == "—"


# --- the browser's copy: one definition in JS, checked against the Python on a table ----------

_JS = Path(__file__).resolve().parents[2] / "dashboard" / "assets" / "tokentail.js"
_NODE = shutil.which("node")
_RUNNER = """
const vm = require("vm");
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const ctx = {CFG: {colors: input.colors}, TextEncoder: TextEncoder};
vm.runInNewContext(input.source, ctx);
process.stdout.write(JSON.stringify(vm.runInNewContext("(" + input.evaluate + ")", ctx)(input.table)));
"""
_EVALUATE = """function (t) {
  return {
    ms: t.numbers.map(fmtMs), usd: t.numbers.map(fmtUsd), count: t.numbers.map(fmtCount),
    sig: t.finite.map(sig),
    model: t.names.map(function (n) { return colorFor("model", n); }),
    variant: t.names.map(function (n) { return colorFor("variant", n); }),
    hash: t.names.map(function (n) { return stableHash(n || ""); }),
    pages: PAGES, nav: NAV, titles: TITLES, pageOf: t.paths.map(pageOf),
    errors: t.errors.map(function (e) { return errorLabel(e[0], e[1]); }),
    incurred: t.incurred.map(function (c) { return costIncurred(c[0], c[1], c[2]); })
  };
}"""
_NUMBERS = [
    *(None, math.nan, math.inf, -math.inf, 0, -0.0, 1, -1, 7, 999, 1000, 1234.5, 99_999, 100_000, 123_456),
    *(999_999, 1_000_000, 2_500_000, -2_500_000, 1e12, 0.5, 0.125, 10.25, 100.5, 101.5, -10.25, 2.675),
    *(0.000423, 0.01384, 1.2345, 4.234, 312.4, 999.4, 999.5, 1520, 12_345, 59_999, 60_000, 150_000),
    *(3.14159, 0.001, 1e-7, 123.456, 99.95, 9.995, 0.0625, 250_000.5, 33.333_333, 66.666_666),
]
_NAMES = [None, "", "gpt-4o", "gpt-4o-mini", "production", "canary", "sim-claude", "Große Modelle", "🦙 llama", "x"]


_ERRORS = [
    *[(k, None) for k in (None, "", "connect", "timeout", "upstream_disconnect", "incomplete_stream", "_OTHER")],
    *[("status", c) for c in (429, 503, 418, None)],
    ("429", None),
    ("502", None),
    ("some_new_kind", None),
]
_INCURRED = [
    ("error", None, None),
    ("error", {"input_tokens": 0, "output_tokens": 0}, None),
    ("error", {"input_tokens": 12, "output_tokens": 3}, None),
    ("error", None, 0.0012),
    ("ok", None, None),
    ("cancelled", None, None),
]


def test_error_kinds_read_as_words():
    assert fmt.error_label("status", 429) == "HTTP 429 rate limited"
    assert fmt.error_label("429") == "HTTP 429 rate limited"
    assert fmt.error_label("upstream_disconnect", 200) == "upstream closed mid-stream"
    assert fmt.error_label("incomplete_stream") == "stream ended without its terminator"
    assert fmt.error_label("status", None) == "HTTP error"
    assert fmt.error_label(None) == ""


def test_a_failed_request_without_tokens_incurred_no_cost():
    assert not fmt.cost_incurred("error", None, None)
    assert fmt.cost_incurred("error", {"input_tokens": 5}, None)
    assert fmt.cost_incurred("ok", None, None)


def _run_js(table: dict) -> dict:
    source = _JS.read_text()
    start = source.index("  // ---- shared definitions")
    end = source.index("  // ---- end of shared definitions")
    payload = {"source": source[start:end], "colors": figures.palette_config(), "table": table}
    payload["evaluate"] = _EVALUATE
    proc = subprocess.run(
        [_NODE or "node", "-e", _RUNNER],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(proc.stdout)


@pytest.mark.skipif(_NODE is None, reason="node is not installed")
def test_browser_formatting_colours_and_routing_agree_with_python():
    paths = [path for _, _, path in layout.NAV] + ["/request/abc", "/sessions/s-1", "/runs/12", "/runs/compare?a=1"]
    finite = [v for v in _NUMBERS if v is not None and math.isfinite(v)]
    js = _run_js(
        {
            "numbers": [v if v is None or math.isfinite(v) else None for v in _NUMBERS],
            "finite": finite,
            "names": _NAMES,
            "paths": paths,
            "errors": _ERRORS,
            "incurred": _INCURRED,
        }
    )
    # JSON has no NaN/inf: the JS got null for those, which formats the same as Python's unknown
    assert js["ms"] == [fmt.ms(v) for v in _NUMBERS]
    assert js["usd"] == [fmt.usd(v) for v in _NUMBERS]
    assert js["count"] == [fmt.count(v) for v in _NUMBERS]
    assert js["sig"] == [fmt._sig(v) for v in finite]
    assert js["model"] == [figures.color_for("model", n) for n in _NAMES]
    assert js["variant"] == [figures.color_for("variant", n) for n in _NAMES]
    assert js["hash"] == [figures.stable_hash(n or "") for n in _NAMES]
    assert js["pages"] == list(layout.PAGES)
    assert js["nav"] == [name for name, _, _ in layout.NAV]
    assert {name: js["titles"][name] for name, _, _ in layout.NAV} == {name: label for name, label, _ in layout.NAV}
    assert js["errors"] == [fmt.error_label(k, c) for k, c in _ERRORS]
    assert js["incurred"] == [fmt.cost_incurred(*c) for c in _INCURRED]
    assert js["pageOf"] == [name for name, _, _ in layout.NAV] + ["detail", "session", "run", "compare"]
