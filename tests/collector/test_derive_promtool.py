"""derive.histogram_quantile against Prometheus itself (``promtool test rules``)."""

from __future__ import annotations

import math
import random
import subprocess

import pytest

from tests.helpers import require_binary
from tokentail.collector.derive import histogram_quantile

pytestmark = pytest.mark.prometheus


def _cases():
    rng = random.Random(5)
    bounds = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12]
    cases = [
        ([0, 0, 3, 3, 10, 10, 10, 12, 12, 12], 12),  # empty low buckets, +Inf adds nothing
        ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], 5),  # most observations above the last finite bound
        ([5, 6, 6, 6, 6, 6, 6, 6, 6, 7], 7),
    ]
    for _ in range(5):
        cum, counts = 0, []
        for _ in bounds:
            cum += rng.choice([0, 0, 1, 3, 8])
            counts.append(cum)
        cases.append((counts, cum + rng.randint(0, 4)))
    return bounds, [c for c in cases if c[1] > 0]


def test_same_values_as_prometheus(tmp_path):
    promtool = require_binary("promtool", "TOKENTAIL_REQUIRE_PROMETHEUS")
    bounds, cases = _cases()
    series, exprs = [], []
    for i, (counts, total) in enumerate(cases):
        for le, c in [*zip(bounds, counts), (math.inf, total)]:
            label = "+Inf" if math.isinf(le) else repr(le)
            series.append(f"      - series: 'h_bucket{{case=\"{i}\",le=\"{label}\"}}'\n        values: '0 {c}'\n")
        buckets = [*zip(bounds, map(float, counts)), (math.inf, float(total))]
        for q in (0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0):
            expected = histogram_quantile(q, buckets)
            exprs.append(
                f'      - expr: histogram_quantile({q}, h_bucket{{case="{i}"}})\n        eval_time: 1m\n'
                f"        exp_samples:\n          - labels: '{{case=\"{i}\"}}'\n"
                f"            value: {expected!r}\n"
            )
    test_file = tmp_path / "quantile_test.yml"
    test_file.write_text(
        "rule_files: []\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n"
        + "".join(series)
        + "    promql_expr_test:\n"
        + "".join(exprs)
    )
    res = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "SUCCESS" in res.stdout + res.stderr
