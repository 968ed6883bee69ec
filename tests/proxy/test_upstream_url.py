"""The upstream URL never leaves the upstream's base path; the query goes byte for byte."""

from __future__ import annotations

import posixpath
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from tokentail.proxy.upstream_url import PathRefused, upstream_url, without_key_param

BASE = URL("http://upstream.test:8000/openai/v1")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/../../admin",
        "/v1/chat/../../admin",
        "/v1/%2e%2e/%2e%2e/admin",
        "/v1/%2E%2E/admin",
        "/v1/.%2e/admin",
        "/v1/..%2fadmin",
        "/v1/..%2Fadmin",
        "/v1/a%2fb",
        "/v1/a%5cb",
        "/v1/a\\..\\admin",
        "/v1/./models",
        "/v1/%2e/models",
        "/v1/..;x/admin",
        "/v1/%2e%2e;jsessionid=1/admin",
        "/v1/%252e%252e/admin",
        "/v1/a%252fb",
    ],
)
def test_dot_segments_and_encoded_separators_are_refused(path):
    with pytest.raises(PathRefused):
        upstream_url(BASE, path, "")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/chat/completions", "/openai/v1/chat/completions"),
        ("/v1/models/gpt-4o%3Amini", "/openai/v1/models/gpt-4o%3Amini"),  # kept encoded, not re-encoded
        ("/v1/files/file..name", "/openai/v1/files/file..name"),  # dots inside a name are not a dot segment
        ("/v1/", "/openai/v1/"),
    ],
)
def test_ordinary_paths_are_kept_as_sent(path, expected):
    assert upstream_url(BASE, path, "").raw_path == expected


def test_query_goes_byte_for_byte():
    raw = "x=%26key%3Dabc&y=a%2Fb&&z=b%20c+d"
    url = upstream_url(BASE, "/v1/models", raw)
    assert url.raw_query_string == raw
    assert str(url) == "http://upstream.test:8000/openai/v1/models?" + raw


def test_key_param_dropped_only_when_a_route_injects_its_own():
    raw = "alt=sse&key=AIzaSECRET&k%65y=x&monkey=1"
    assert upstream_url(BASE, "/v1/x", raw).raw_query_string == raw
    assert upstream_url(BASE, "/v1/x", raw, drop_key_param=True).raw_query_string == "alt=sse&monkey=1"
    assert without_key_param("key=a") == ""


def test_repeated_targets_give_the_same_url_per_base_and_a_refused_path_stays_refused():
    # Targets without a query are built once per (base, path) and kept: a second request
    # for the same path gets the same URL, another base (a route's) its own, and a refused
    # path is refused every time (the refusal is not remembered as a URL).
    other = URL("http://other.test/v1")
    first = upstream_url(BASE, "/v1/chat/completions", "")
    assert upstream_url(BASE, "/v1/chat/completions", "") == first
    assert str(upstream_url(other, "/v1/chat/completions", "")) == "http://other.test/v1/chat/completions"
    assert str(upstream_url(BASE, "/v1/chat/completions", "")) == "http://upstream.test:8000/openai/v1/chat/completions"
    assert str(upstream_url(BASE, "/v1/chat/completions", "a=1")).endswith("/chat/completions?a=1")
    long_path = "/v1/" + "a" * 600  # past what is kept: built each time, the same way
    assert upstream_url(BASE, long_path, "").raw_path == "/openai/v1/" + "a" * 600
    for _ in range(2):
        with pytest.raises(PathRefused):
            upstream_url(BASE, "/v1/../admin", "")


def test_a_path_outside_v1_is_refused():
    with pytest.raises(PathRefused):
        upstream_url(BASE, "/admin", "")


_SEGMENT = st.one_of(
    st.text(alphabet=list("./%2eEfF5cC;a\\"), max_size=8),
    st.lists(st.sampled_from([".", "%2e", "%2E", "%252e", "%2f", "%252F", "%5c", ";", "a", "%25"]), max_size=4).map(
        "".join
    ),
)


@given(st.lists(_SEGMENT, min_size=1, max_size=6))
def test_any_accepted_path_stays_under_the_base_path(segments):
    raw = "/v1/" + "/".join(segments)
    try:
        url = upstream_url(BASE, raw, "")
    except PathRefused:
        return
    # What a server that decodes (up to three times) and then resolves dot segments would see.
    seen = unquote(unquote(unquote(url.raw_path))).replace("\\", "/")
    resolved = posixpath.normpath(seen)
    assert resolved == "/openai/v1" or resolved.startswith("/openai/v1/"), (raw, url.raw_path, resolved)
