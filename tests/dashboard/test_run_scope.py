"""The scope form of the Runs page (dashboard/run_scope.py): form text in, the collector's scope out."""

from __future__ import annotations

import json

import pytest

from tests.helpers.dashboard import walk
from tokentail.collector import run_stats
from tokentail.dashboard import run_scope, runs_page
from tokentail.dashboard.config import DashboardConfig, parse_proxy


def test_form_text_becomes_the_collectors_scope():
    got = run_scope.scope_from_form(
        {"tags": " eval, v2,,eval , ", "user": " bob ", "session": "", "variant": None, "model": "sim-gpt-4o"}
    )
    assert got == {"tags": ["eval", "v2"], "user": "bob", "model": "sim-gpt-4o"}
    assert run_stats.validate_scope(got) == got  # what the collector stores, unchanged


@pytest.mark.parametrize("values", [None, {}, {"tags": " , ", "user": "   ", "key_fingerprint": ""}])
def test_an_empty_form_is_a_run_of_all_traffic(values):
    assert run_scope.scope_from_form(values) is None


@pytest.mark.parametrize(
    "values, message",
    [
        ([], "object"),
        ({"team": "x"}, "unknown scope field 'team'"),
        ({"user": 7}, "User: send text"),
        ({"model": "m" * 201}, "Model: at most 200"),
        ({"tags": ",".join(f"t{i}" for i in range(21))}, "Tags: at most 20"),
        ({"tags": "ok, " + "t" * 201}, "Tags: each at most 200"),
    ],
)
def test_bad_form_values_are_said_in_the_forms_words(values, message):
    with pytest.raises(run_scope.ScopeFormError, match=message):
        run_scope.scope_from_form(values)


def test_a_scope_in_words():
    assert run_scope.describe(None) == "includes all traffic"
    assert run_scope.describe({"tags": ["eval"]}) == "tag #eval"
    assert (
        run_scope.describe({"model": "m", "tags": ["a", "b"], "key_fingerprint": "k1", "user": "bob"})
        == "tags #a, #b · user bob · model m · key k1"
    )
    line = run_scope.scope_line({"variant": "canary"}).to_plotly_json()["props"]
    assert line["children"] == "Scope: variant canary" and line["data-scope"] == "scoped"
    line = run_scope.scope_line(None).to_plotly_json()["props"]
    assert line["children"] == "Unscoped: includes all traffic" and line["data-scope"] == "all"


def test_the_runs_page_has_one_input_per_field_and_runs_show_their_scope():
    config = DashboardConfig(collector="http://127.0.0.1:8788", proxies=(parse_proxy("canary=http://127.0.0.1:8789"),))
    ids = {getattr(n, "id", None) for c in runs_page.list_page(config) if c is not None for n in walk(c)}
    assert {run_scope.input_id(f) for f in run_stats.SCOPE_FIELDS} <= ids  # every collector field has an input
    assert "canary" in json.dumps(runs_page.list_page(config), default=lambda o: o.to_plotly_json())
    run = {"id": 3, "name": "r", "status": "active", "scope": {"user": "bob"}, "stats": {}}
    text = json.dumps(runs_page.run_view(run, 3), default=lambda o: o.to_plotly_json())
    assert "Scope: user bob" in text and "all traffic" not in text
    table = json.dumps(runs_page.runs_table([dict(run, scope=None)]), default=lambda o: o.to_plotly_json())
    assert "Unscoped: includes all traffic" in table
