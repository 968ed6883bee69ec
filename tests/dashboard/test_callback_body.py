"""Malformed Dash callback requests get a 400 naming why, never a 500 and a traceback."""

from __future__ import annotations

import logging

import pytest

from tokentail.dashboard.app import create_app
from tokentail.dashboard.callback_body import problem
from tokentail.dashboard.config import DashboardConfig

OUTPUTS = {"a.children", "..b.children...c.style.."}
GOOD = {"output": "a.children", "inputs": [{"id": "x", "property": "value", "value": 1}], "changedPropIds": []}


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (None, "JSON object"),
        ([GOOD], "JSON object"),
        ("a.children", "JSON object"),
        ({}, "'output'"),
        ({"output": 5}, "'output'"),
        ({"output": ""}, "'output'"),
        ({"output": "nope.children"}, "no callback"),
        ({**GOOD, "inputs": "x"}, "'inputs'"),
        ({**GOOD, "inputs": [1]}, "'inputs'"),
        ({**GOOD, "inputs": [[{"id": "x"}, 2]]}, "'inputs'"),
        ({**GOOD, "state": {"id": "x"}}, "'state'"),
        ({**GOOD, "changedPropIds": "x.value"}, "'changedPropIds'"),
        ({**GOOD, "changedPropIds": [None]}, "'changedPropIds'"),
    ],
)
def test_what_is_wrong_is_named(body, why):
    assert why in problem(body, OUTPUTS)


def test_callback_requests_as_the_page_sends_them_pass():
    assert problem(GOOD, OUTPUTS) is None
    wildcard = {**GOOD, "output": "..b.children...c.style..", "inputs": [[{"id": {"t": 1}, "property": "v"}]]}
    assert problem(wildcard, OUTPUTS) is None
    assert problem({"output": "a.children"}, OUTPUTS) is None  # inputs and state may be left out


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        (b"not json", "application/json", 400),
        (b"{}", "application/json", 400),
        (b"[]", "application/json", 400),
        (b'{"output": "nope.children"}', "application/json", 400),
        (b'{"output": "x", "inputs": "bad"}', "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        (b"x", "text/plain", 415),
    ],
)
def test_the_dashboard_answers_a_clear_error_and_logs_no_traceback(data, content_type, status, caplog):
    client = create_app(DashboardConfig()).server.test_client()
    with caplog.at_level(logging.ERROR):
        resp = client.post("/_dash-update-component", data=data, headers={"Content-Type": content_type})
    assert resp.status_code == status and "error" in resp.get_json()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_registered_callback_still_reaches_dash():
    app = create_app(DashboardConfig())
    output = next(k for k in app.callback_map if not k.startswith(".."))
    prop = output.split("@")[0]
    body = {"output": output, "outputs": {"id": prop.split(".")[0], "property": prop.split(".")[1]}, "inputs": []}
    resp = app.server.test_client().post("/_dash-update-component", json=body)
    assert "bad callback request" not in resp.get_data(as_text=True)
