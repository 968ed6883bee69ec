"""The upstream headroom alert (deploy/prometheus/rules-upstreams.yml): valid for promtool,
fires below 10% headroom held for 2 minutes, stays quiet above it or when one proxy still
sees spare capacity."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus" / "rules-upstreams.yml"

TEST = """
rule_files: ["{rules}"]
evaluation_interval: 30s
tests:
  - interval: 30s
    input_series:
      - series: 'tokentail_upstream_ratelimit_headroom_ratio{{route="claude",kind="tokens",instance="p1"}}'
        values: "0.5 0.3 0.08 0.07 0.06 0.05 0.05 0.05 0.05 0.05"
      - series: 'tokentail_upstream_ratelimit_headroom_ratio{{route="openai",kind="requests",instance="p1"}}'
        values: "0.5x10"
      - series: 'tokentail_upstream_ratelimit_headroom_ratio{{route="shared",kind="requests",instance="p1"}}'
        values: "0.05x10"
      - series: 'tokentail_upstream_ratelimit_headroom_ratio{{route="shared",kind="requests",instance="p2"}}'
        values: "0.6x10"
    alert_rule_test:
      - eval_time: 1m30s
        alertname: TokentailUpstreamRateLimitHeadroomLow
        exp_alerts: []
      - eval_time: 4m
        alertname: TokentailUpstreamRateLimitHeadroomLow
        exp_alerts:
          - exp_labels:
              severity: warning
              route: claude
              kind: tokens
            exp_annotations:
              summary: "Upstream claude is near its tokens rate limit"
              description: >-
                Only 5% of the tokens limit of route
                claude is left (below 10% for 2 minutes). Requests will soon get 429s;
                check `tokentail_upstream_ratelimit_reset_seconds` and the dashboard's Upstreams panel.
"""


@pytest.mark.prometheus
def test_rules_pass_promtool_check():
    from tests.helpers.prom import promtool

    result = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rules found" in result.stdout


@pytest.mark.prometheus
def test_headroom_alert_fires_below_ten_percent(tmp_path):
    from tests.helpers.prom import promtool

    test_file = tmp_path / "test.yml"
    test_file.write_text(TEST.format(rules=RULES))
    result = subprocess.run([promtool(), "test", "rules", str(test_file)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    # and the test can fail: the same test against a rule that never fires
    quiet = tmp_path / "quiet.yml"
    quiet.write_text(RULES.read_text().replace("< 0.1", "< 0.01"))
    test_file.write_text(TEST.format(rules=quiet))
    result = subprocess.run([promtool(), "test", "rules", str(test_file)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
