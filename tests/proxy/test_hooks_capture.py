"""The CaptureMode request hook (pure): the lowest of proxy, route, key and header; the prompt
and non-numeric parameters leave the record before any observer sees it."""

from __future__ import annotations

import json

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from tokentail.proxy.hooks import CaptureMode, ParseBody, RequestContext, UpstreamPlan
from tokentail.proxy.record import RequestRecord
from tokentail.proxy.redact import Redactor
from tokentail.proxy.routes import Route

BODY = {"model": "m", "messages": [{"role": "user", "content": "secret prompt"}], "temperature": 0.3, "stop": ["x"]}


def ctx(headers=None, route=None, fp=None) -> RequestContext:
    rec = RequestRecord(id="r1", variant="v", method="POST", endpoint="/chat/completions", key_fingerprint=fp)
    c = RequestContext(
        "POST",
        "chat/completions",
        "",
        CIMultiDictProxy(CIMultiDict(headers or {})),
        json.dumps(BODY).encode(),
        rec,
        UpstreamPlan(URL("http://up.test/v1"), route=route),
    )
    c.apply(ParseBody(Redactor()).request(c))
    return c


ROUTE = Route(name="r", upstream=URL("http://up.test/v1"), match="m", capture="metadata")


@pytest.mark.parametrize(
    "default, route, keys, header, expected",
    [
        ("full", None, {}, None, "full"),
        ("full", None, {}, "metadata", "metadata"),
        ("full", None, {}, " None ", "none"),
        ("metadata", None, {}, "full", "metadata"),  # a request cannot raise its level
        ("none", None, {}, "full", "none"),
        ("full", ROUTE, {}, "full", "metadata"),
        ("full", ROUTE, {"fp1": "none"}, None, "none"),
        ("full", None, {"fp2": "none"}, None, "full"),  # another key's setting
        ("full", None, {}, "bogus", "full"),  # an unknown value changes nothing
    ],
)
def test_the_lowest_level_wins(default, route, keys, header, expected):
    c = ctx({"X-Tokentail-Capture": header} if header is not None else None, route=route, fp="fp1")
    c.apply(CaptureMode(default, keys).request(c))
    assert c.rec.capture == expected
    if expected == "full":
        assert "secret prompt" in json.dumps(c.rec.prompt) and c.rec.params["stop"] == ["x"]
    else:
        assert c.rec.prompt == {} and c.rec.prompt_pending is None and c.rec.prompt_ready
        assert c.rec.params == {"temperature": 0.3}


def test_a_large_prompt_waiting_for_redaction_is_dropped_too():
    c = ctx({"X-Tokentail-Capture": "metadata"})
    c.rec.prompt_pending, c.rec.prompt_ready = {"messages": ["big"]}, False
    c.apply(CaptureMode().request(c))
    assert c.rec.prompt_pending is None and c.rec.prompt_ready and c.rec.prompt == {}
