"""Attribution: key fingerprints, the end user and tags, on spans, the live feed and
/api/requests (filters), never as metric labels, never the key itself."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import pytest

from tests.helpers import read_events, reading
from tests.helpers.proxies import start_proxy, start_sim
from tokentail.proxy.attribution import Fingerprinter, client_key, end_user, parse_tags
from tokentail.proxy.redact import Redactor

KEY_A = "sk-proj-AAAAaaaa0123456789abcdefghijklmn"
KEY_B = "sk-proj-BBBBbbbb0123456789abcdefghijklmn"


def test_fingerprints_are_keyed_short_and_stable_for_one_secret():
    f = Fingerprinter("install-secret")
    fp = f.fingerprint({"Authorization": f"Bearer {KEY_A}"})
    assert re.fullmatch(r"[0-9a-f]{12}", fp)
    assert fp == Fingerprinter("install-secret").fingerprint({"Authorization": f"bearer  {KEY_A}"})
    assert fp != f.fingerprint({"Authorization": f"Bearer {KEY_B}"})
    assert fp != Fingerprinter("another-secret").fingerprint({"Authorization": f"Bearer {KEY_A}"})
    random1, random2 = Fingerprinter(), Fingerprinter()
    assert random1.ephemeral and not f.ephemeral
    assert random1.of(KEY_A) != random2.of(KEY_A)  # without a configured secret: per process
    assert fp not in KEY_A and KEY_A not in repr(f)


@pytest.mark.parametrize(
    "headers,query,expected",
    [
        ({"Authorization": "Bearer k1"}, None, "k1"),
        ({"x-api-key": "k2"}, None, "k2"),
        ({"api-key": " k3 "}, None, "k3"),
        ({"x-goog-api-key": "k4"}, None, "k4"),
        ({}, {"key": "k5"}, "k5"),
        ({"Authorization": "Basic dXNlcjpwdw=="}, None, None),
        ({"Authorization": "Bearer "}, None, None),
        ({}, None, None),
    ],
)
def test_the_client_key_comes_from_the_usual_places(headers, query, expected):
    assert client_key(headers, query) == expected


def test_end_user_is_redacted_and_capped():
    red = Redactor().redact_text
    assert end_user({"user": "user-42"}, red) == "user-42"
    assert end_user({"user": "jane.doe@example.com"}, red) == "[REDACTED:email]"
    assert end_user({"user": "u" * 1000}, red) == "u" * 200
    assert end_user({"safety_identifier": "hashed-id"}, red) == "hashed-id"
    assert end_user({"metadata": {"user_id": "anthropic-user"}}, red) == "anthropic-user"
    assert end_user({"user": ["not", "a", "string"]}, red) is None
    assert end_user({"user": ""}, red) is None and end_user(None, red) is None


def test_tags_are_trimmed_deduplicated_bounded_and_redacted():
    red = Redactor().redact_text
    assert parse_tags(" team-a, batch ,, team-a,eval ", red) == ["team-a", "batch", "eval"]
    assert parse_tags("x" * 100, red) == ["x" * 64]
    assert parse_tags(",".join(f"t{i}" for i in range(40)), red) == [f"t{i}" for i in range(16)]
    assert parse_tags("owner:bob@example.com, ok", red) == ["owner:[REDACTED:email]", "ok"]
    assert parse_tags("", red) == [] and parse_tags(None, red) == []


async def test_attribution_reaches_spans_feed_and_filters_but_not_metric_labels():
    sim = await start_sim()
    proxy = await start_proxy(str(sim.make_url("/v1")), fingerprint_key="fixed-secret")
    expected_fp = Fingerprinter("fixed-secret").of(KEY_A)
    events: list = []
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(proxy.url("/api/live")) as live:
                reader = await reading(read_events(live, events, stop_on="request.end", count=2), events)
                body = {"model": "sim-gpt-4o", "user": "alice", "messages": [{"role": "user", "content": "hi"}]}
                async with s.post(
                    proxy.url("/v1/chat/completions"),
                    json=body,
                    headers={"Authorization": f"Bearer {KEY_A}", "X-Tokentail-Tags": "team-a, nightly"},
                ) as r:
                    rid_a = r.headers["x-tokentail-request-id"]
                    await r.read()
                async with s.post(
                    proxy.url("/v1/chat/completions"), json={**body, "user": "bob"}, headers={"x-api-key": KEY_B}
                ) as r:
                    rid_b = r.headers["x-tokentail-request-id"]
                    await r.read()
                await asyncio.wait_for(reader, 5)

            async def ids(**filters) -> set[str]:
                async with s.get(proxy.url("/api/requests"), params=filters) as r:
                    return {x["id"] for x in (await r.json())["requests"]}

            assert await ids(user="alice") == {rid_a}
            assert await ids(tag="nightly") == {rid_a}
            assert await ids(key=expected_fp) == {rid_a}
            assert await ids(user="bob") == {rid_b} and await ids(tag="none") == set()
            async with s.get(proxy.url("/api/requests")) as r:
                rows = {x["id"]: x for x in (await r.json())["requests"]}
        start = next(d for name, d in events if name == "request.start" and d["id"] == rid_a)
        assert (start["user"], start["tags"], start["key_fingerprint"]) == ("alice", ["team-a", "nightly"], expected_fp)
        assert rows[rid_a]["key_fingerprint"] == expected_fp and rows[rid_b]["key_fingerprint"] not in (
            None,
            expected_fp,
        )
        assert rows[rid_a]["tags"] == ["team-a", "nightly"] and rows[rid_b]["user"] == "bob"
        spans = {sp.attributes["tokentail.request.id"]: sp.attributes for sp in proxy.spans()}
        a = spans[rid_a]
        assert (a["tokentail.user"], tuple(a["tokentail.tags"]), a["tokentail.client.key_fingerprint"]) == (
            "alice",
            ("team-a", "nightly"),
            expected_fp,
        )
        assert "tokentail.tags" not in spans[rid_b]
        metrics = proxy.metrics()
        for value in ("alice", "bob", "team-a", "nightly", expected_fp):
            assert value not in metrics  # unbounded values never become labels
        everything = (
            json.dumps(events) + json.dumps(rows) + json.dumps([dict(v) for v in spans.values()], default=str) + metrics
        )
        assert KEY_A not in everything and KEY_B not in everything
    finally:
        await proxy.close()
        await sim.close()
