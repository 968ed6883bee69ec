"""The access rules of tokentail/access.py, shared by the proxy and the collector.

Reads of captured content depend on the bind address (and --insecure); state changes
depend only on the admin token and the caller: with a token configured they always need
it, without one they are allowed from loopback peers only."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from aiohttp.test_utils import make_mocked_request

from tokentail.access import AccessPolicy, check, is_loopback_peer

LOCAL, REMOTE = "127.0.0.1", "203.0.113.7"


def request(method: str, path: str, peer: str | None = LOCAL, token: str | None = None, query_token: str | None = None):
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (peer, 5555) if name == "peername" else default
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if query_token:
        path += f"?token={query_token}"
    return make_mocked_request(method, path, headers=headers, transport=transport)


def status(policy: AccessPolicy, req) -> int:
    denied = check(policy, req)
    return 200 if denied is None else denied.status


@pytest.mark.parametrize("bind", ["127.0.0.1", "0.0.0.0"])
@pytest.mark.parametrize("insecure", [False, True])
@pytest.mark.parametrize("peer", [LOCAL, REMOTE])
def test_with_an_admin_token_every_state_change_needs_it(bind, insecure, peer):
    policy = AccessPolicy(bind_host=bind, admin_token="adm", read_token="rd", insecure=insecure)
    for path in ("/api/requests/abc/cancel", "/api/routes/reload", "/api/runs"):
        assert status(policy, request("POST", path, peer)) == 401
        assert status(policy, request("POST", path, peer, token="rd")) == 401  # the read token is not enough
        assert status(policy, request("DELETE", path, peer, token="wrong")) == 401
        assert status(policy, request("POST", path, peer, token="adm")) == 200
        assert status(policy, request("POST", path, peer, query_token="adm")) == 200


@pytest.mark.parametrize("bind", ["127.0.0.1", "0.0.0.0"])
@pytest.mark.parametrize("insecure", [False, True])
def test_without_an_admin_token_state_changes_are_for_loopback_peers_only(bind, insecure):
    policy = AccessPolicy(bind_host=bind, insecure=insecure, read_token="rd")
    for peer in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"):
        assert status(policy, request("POST", "/api/requests/x/cancel", peer)) == 200
    for peer in (REMOTE, "10.0.0.2", "::ffff:10.0.0.2", "fe80::1", None):
        denied = check(policy, request("POST", "/api/requests/x/cancel", peer, token="anything"))
        assert denied is not None and denied.status == 403
        body = json.loads(denied.body)
        assert "TOKENTAIL_ADMIN_TOKEN" in body["error"]["message"] and body["error"]["code"] == "forbidden"
        assert denied.content_type == "application/json"


def test_reads_still_follow_the_bind_address():
    loop_bind = AccessPolicy(bind_host="127.0.0.1", admin_token="adm")
    assert status(loop_bind, request("GET", "/api/requests", REMOTE)) == 200
    open_bind = AccessPolicy(bind_host="0.0.0.0", read_token="rd", admin_token="adm")
    assert status(open_bind, request("GET", "/api/requests", LOCAL)) == 401
    assert status(open_bind, request("GET", "/api/requests", REMOTE, token="rd")) == 200
    assert status(open_bind, request("HEAD", "/api/live", REMOTE, token="adm")) == 200  # admin reads too
    assert status(AccessPolicy(bind_host="0.0.0.0"), request("GET", "/api/requests")) == 403
    assert status(AccessPolicy(bind_host="0.0.0.0", insecure=True), request("GET", "/api/requests", REMOTE)) == 200


def test_unprotected_paths_are_never_gated():
    strict = AccessPolicy(bind_host="0.0.0.0", read_token="rd", admin_token="adm")
    for method in ("GET", "POST"):
        assert check(strict, request(method, "/v1/chat/completions", REMOTE)) is None  # proxied traffic
        assert check(strict, request(method, "/healthz", REMOTE)) is None
    collector = AccessPolicy(bind_host="0.0.0.0", protected_prefixes=("/api/", "/v1/"))
    assert status(collector, request("POST", "/v1/traces", REMOTE)) == 403
    assert status(collector, request("POST", "/v1/traces", LOCAL)) == 200


@pytest.mark.parametrize(
    "remote,expected",
    [
        ("127.0.0.1", True),
        ("127.255.0.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("[::1]", True),
        ("10.0.0.1", False),
        ("192.168.1.2", False),
        ("::ffff:192.168.1.2", False),
        ("0.0.0.0", False),
        ("localhost", False),
        ("", False),
        (None, False),
        ("not-an-ip", False),
    ],
)
def test_loopback_peers(remote, expected):
    assert is_loopback_peer(remote) is expected
