"""deploy/prometheus/rules.yml: promtool checks it, and its unit tests (rules_test.yml) cover every alert."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers.prom import promtool

DIR = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"
RULES, TESTS = DIR / "rules.yml", DIR / "rules_test.yml"


def _alerts() -> dict[str, dict]:
    doc = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


def test_every_alert_has_summary_description_runbook_and_severity():
    alerts = _alerts()
    assert len(alerts) >= 7
    for name, rule in alerts.items():
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), name
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule.get("for"), name  # a blip never pages


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_does_not():
    tests = yaml.safe_load(TESTS.read_text())["tests"]
    fired, quiet = set(), set()
    for t in tests:
        for a in t.get("alert_rule_test", []):
            (fired if a["exp_alerts"] else quiet).add(a["alertname"])
    assert set(_alerts()) <= fired
    assert set(_alerts()) <= quiet


@pytest.mark.prometheus
def test_promtool_check_rules():
    r = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


@pytest.mark.prometheus
def test_promtool_test_rules():
    r = subprocess.run([promtool(), "test", "rules", str(TESTS)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout
