"""The one access decision (tokentail/access.py): every rule and branch, as a table, no server.

Reads of captured content depend on the bind address (and --insecure); state changes on the
admin token and the caller: with a token configured they always need it, without one they
are allowed from loopback peers only. On top: only allowed Host names are answered (DNS
rebinding), and a state change from another site's page or without a JSON body is refused.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokentail.access import (
    AccessPolicy,
    Ask,
    allowed_host,
    bearer,
    classify,
    cors_headers_for,
    decide,
    is_loopback_peer,
    media_type,
    parse_hosts,
    split_host,
    token_matches,
)

LOCAL, REMOTE = "127.0.0.1", "203.0.113.7"
HOST = "127.0.0.1:8787"
COLLECTOR = AccessPolicy(ingest_paths=frozenset({"/v1/traces"}))
DASHBOARD = AccessPolicy(
    protected_prefixes=("/",), read_post_prefixes=("/_dash-",), unlock_paths=frozenset({"/_tt/admin"})
)


def ask(method="GET", path="/api/requests", peer=LOCAL, host=HOST, **kw) -> Ask:
    if method not in ("GET", "HEAD", "OPTIONS") and "content_type" not in kw and kw.get("has_body", True):
        kw.setdefault("content_type", "application/json")
        kw.setdefault("has_body", True)
    return Ask(method=method, path=path, peer=peer, host=host, **kw)


def status(policy: AccessPolicy, a: Ask) -> int:
    d = decide(policy, a)
    return 200 if d.allowed else d.status


# --- which rule a path falls under ---------------------------------------------------


@pytest.mark.parametrize(
    "policy, method, path, kind",
    [
        (AccessPolicy(), "GET", "/v1/chat/completions", "open"),  # proxied traffic
        (AccessPolicy(), "POST", "/v1/chat/completions", "open"),
        (AccessPolicy(), "GET", "/healthz", "open"),
        (AccessPolicy(), "GET", "/metrics", "open"),  # Prometheus scrapes by IP or service name
        (AccessPolicy(), "GET", "/api/live", "read"),
        (AccessPolicy(), "HEAD", "/api/requests", "read"),
        (AccessPolicy(), "OPTIONS", "/api/requests", "read"),
        (AccessPolicy(), "POST", "/api/requests/x/cancel", "change"),
        (AccessPolicy(), "DELETE", "/api/routes", "change"),
        (COLLECTOR, "POST", "/v1/traces", "ingest"),
        (COLLECTOR, "GET", "/v1/traces", "open"),
        (COLLECTOR, "POST", "/api/runs", "change"),
        (DASHBOARD, "GET", "/", "read"),
        (DASHBOARD, "GET", "/_dash-layout", "read"),
        (DASHBOARD, "POST", "/_dash-update-component", "read"),  # a callback only reads
        (DASHBOARD, "POST", "/_tt/runs", "change"),
        (DASHBOARD, "POST", "/_tt/admin", "unlock"),
        (AccessPolicy(open_paths=frozenset({"/api/ping"})), "GET", "/api/ping", "open"),
    ],
)
def test_classify(policy, method, path, kind):
    assert classify(policy, method, path) == kind


# --- Host: DNS rebinding --------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:8787",
        "127.0.0.1",
        "localhost:8787",
        "LocalHost.",
        "[::1]:8787",
        "[::1]",
        "10.1.2.3:8787",  # an IP literal cannot be rebound: a page reaching it is on that origin
        None,  # no Host header: not a browser
    ],
)
def test_loopback_names_and_ip_literals_are_answered(host):
    for method, path in (("GET", "/api/live"), ("POST", "/api/requests/x/cancel")):
        assert status(AccessPolicy(), ask(method, path, host=host)) == 200


@pytest.mark.parametrize(
    "host", ["attacker.example", "attacker.example:8787", "127.0.0.1.nip.io:8787", "", "a b", "[::1"]
)
@pytest.mark.parametrize("method, path", [("GET", "/api/live"), ("GET", "/api/requests"), ("POST", "/api/runs")])
def test_other_host_names_get_421_even_with_every_token(host, method, path):
    policy = AccessPolicy(read_token="rd", admin_token="adm")
    d = decide(policy, ask(method, path, host=host, tokens=("adm",)))
    assert d.status == 421 and d.code == "misdirected_request" and "--allowed-host" in d.message
    assert d.as_json()["error"]["code"] == "misdirected_request"


def test_open_paths_answer_any_host():
    for path in ("/v1/chat/completions", "/healthz", "/metrics"):
        assert decide(AccessPolicy(), ask("GET", path, host="attacker.example")).allowed


def test_bind_address_and_configured_hosts():
    named = AccessPolicy(bind_host="tokentail.lan", insecure=True)  # a name: reads need no token only so
    assert status(named, ask(host="tokentail.lan:8787")) == 200
    assert status(AccessPolicy(bind_host="0.0.0.0"), ask(host="0.0.0.0.evil:1", peer=LOCAL)) == 421
    lb = AccessPolicy(allowed_hosts=parse_hosts(["proxy", "llm.example.com:443"]))
    assert status(lb, ask(host="proxy:8787")) == 200  # a name without a port: any port
    assert status(lb, ask(host="PROXY")) == 200
    assert status(lb, ask(host="llm.example.com:443")) == 200
    assert status(lb, ask(host="llm.example.com:8443")) == 421  # with a port: that port only
    assert status(lb, ask(host="llm.example.com")) == 421
    assert status(lb, ask(host="proxy.evil")) == 421


def test_allowed_host_values():
    assert allowed_host(" Proxy:8787 ") == "proxy:8787"
    assert parse_hosts(["a,b", " c "]) == {"a", "b", "c"}
    for bad in ("http://x", "a:b", "x/y", "[::1", "h:0", "h:70000", ""):
        with pytest.raises(ValueError):
            allowed_host(bad)
    assert split_host("[::1]:80") == ("::1", 80) and split_host("::1") == ("::1", None)


@given(st.text(max_size=40))
def test_host_check_never_raises(host):
    AccessPolicy().host_allowed(host)


# --- reads ----------------------------------------------------------------------------


def test_reads_follow_the_bind_address():
    loop_bind = AccessPolicy(bind_host="127.0.0.1", admin_token="adm")
    assert status(loop_bind, ask(peer=REMOTE)) == 200
    open_bind = AccessPolicy(bind_host="0.0.0.0", read_token="rd", admin_token="adm")
    assert status(open_bind, ask()) == 401
    assert status(open_bind, ask(tokens=("wrong",))) == 401
    assert status(open_bind, ask(peer=REMOTE, tokens=("rd",))) == 200
    assert status(open_bind, ask("HEAD", "/api/live", REMOTE, tokens=("x", "adm"))) == 200  # admin reads too
    no_tokens = decide(AccessPolicy(bind_host="0.0.0.0"), ask())
    assert no_tokens.status == 403 and "TOKENTAIL_READ_TOKEN" in no_tokens.message
    assert status(AccessPolicy(bind_host="0.0.0.0", insecure=True), ask(peer=REMOTE)) == 200


def test_reads_ignore_origin_and_content_type():
    # A read from another origin is CORS's business (no Access-Control-Allow-Origin for it).
    a = ask(origin="https://evil.example", fetch_site="cross-site", content_type="text/plain")
    assert status(AccessPolicy(), a) == 200
    assert status(DASHBOARD, ask("POST", "/_dash-update-component", content_type="application/json")) == 200


# --- state changes: tokens and peers --------------------------------------------------


@pytest.mark.parametrize("bind", ["127.0.0.1", "0.0.0.0"])
@pytest.mark.parametrize("insecure", [False, True])
@pytest.mark.parametrize("peer", [LOCAL, REMOTE])
def test_with_an_admin_token_every_state_change_needs_it(bind, insecure, peer):
    policy = AccessPolicy(bind_host=bind, admin_token="adm", read_token="rd", insecure=insecure)
    for path in ("/api/requests/abc/cancel", "/api/routes/reload", "/api/runs"):
        assert status(policy, ask("POST", path, peer)) == 401
        assert status(policy, ask("POST", path, peer, tokens=("rd",))) == 401  # the read token is not enough
        assert status(policy, ask("DELETE", path, peer, tokens=("wrong",))) == 401
        assert status(policy, ask("POST", path, peer, tokens=("adm",))) == 200
        assert status(policy, ask("POST", path, peer, tokens=("rd", "adm"))) == 200


@pytest.mark.parametrize("bind", ["127.0.0.1", "0.0.0.0"])
@pytest.mark.parametrize("insecure", [False, True])
def test_without_an_admin_token_state_changes_are_for_loopback_peers_only(bind, insecure):
    policy = AccessPolicy(bind_host=bind, insecure=insecure, read_token="rd")
    for peer in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"):
        assert status(policy, ask("POST", "/api/requests/x/cancel", peer)) == 200
    for peer in (REMOTE, "10.0.0.2", "::ffff:10.0.0.2", "fe80::1", None):
        d = decide(policy, ask("POST", "/api/requests/x/cancel", peer, tokens=("anything",)))
        assert d.status == 403 and d.code == "forbidden" and "TOKENTAIL_ADMIN_TOKEN" in d.message


# --- state changes: other sites' pages ------------------------------------------------


@pytest.mark.parametrize(
    "origin, fetch_site, expected",
    [
        (None, None, 200),  # curl, the dashboard's server-side calls
        ("http://127.0.0.1:8787", "same-origin", 200),  # the server's own origin
        ("https://127.0.0.1:8787", None, 200),  # behind a TLS terminator
        ("http://dash.example:8050", "cross-site", 403),  # listed, but the browser says cross-site
        ("http://dash.example:8050", "same-site", 200),  # listed with --allowed-origin
        ("https://evil.example", None, 403),
        ("https://evil.example", "cross-site", 403),
        ("http://127.0.0.1:9999", "same-site", 403),  # another port is another origin
        ("http://localhost:8787", "cross-site", 403),  # another name for this machine: not its origin
        ("null", None, 403),  # a sandboxed frame, a file: page
        ("ftp://127.0.0.1:8787", None, 403),
        (None, "cross-site", 403),
        (None, "none", 200),  # typed in the address bar
    ],
)
def test_state_changes_only_from_the_servers_own_or_listed_origins(origin, fetch_site, expected):
    listed = frozenset({"http://dash.example:8050"})
    for policy, path, ctype in (
        (AccessPolicy(allowed_origins=listed), "/api/runs", "application/json"),
        (AccessPolicy(allowed_origins=listed, ingest_paths=frozenset({"/v1/traces"})), "/v1/traces", None),
        (AccessPolicy(allowed_origins=listed, **_dashboard()), "/_tt/admin", "application/json"),
    ):
        a = ask("POST", path, origin=origin, fetch_site=fetch_site, content_type=ctype or "application/x-protobuf")
        assert status(policy, a) == expected, (path, origin, fetch_site)


def _dashboard() -> dict:
    return {"protected_prefixes": ("/",), "unlock_paths": frozenset({"/_tt/admin"})}


def test_a_foreign_origin_is_refused_before_any_token_is_looked_at():
    policy = AccessPolicy(admin_token="adm")
    d = decide(policy, ask("POST", "/api/runs", origin="https://evil.example", tokens=("adm",)))
    assert d.status == 403 and "another site" in d.message


# --- state changes: JSON bodies -------------------------------------------------------


@pytest.mark.parametrize(
    "content_type, has_body, expected",
    [
        ("application/json", True, 200),
        ("application/json", False, 200),
        (None, False, 200),  # curl -X POST
        ("application/octet-stream", False, 200),  # aiohttp's client, no body
        ("text/plain", True, 415),  # what a cross-site <form> or no-CORS fetch sends
        ("text/plain", False, 415),
        ("application/x-www-form-urlencoded", True, 415),
        ("multipart/form-data", True, 415),
        ("application/octet-stream", True, 415),
        (None, True, 415),
    ],
)
def test_state_changes_need_a_json_body(content_type, has_body, expected):
    a = ask("POST", "/api/requests/x/cancel", content_type=content_type, has_body=has_body)
    d = decide(AccessPolicy(), a)
    assert (200 if d.allowed else d.status) == expected
    if expected == 415:
        assert d.code == "unsupported_media_type" and "application/json" in d.message


def test_the_token_is_checked_before_the_content_type():
    d = decide(AccessPolicy(admin_token="adm"), ask("POST", "/api/runs", content_type="text/plain"))
    assert d.status == 401


# --- span ingest ----------------------------------------------------------------------


@pytest.mark.parametrize("ctype", ["application/x-protobuf", "application/protobuf", "application/json"])
def test_ingest_is_open_on_loopback_and_needs_the_admin_token_elsewhere(ctype):
    post = ask("POST", "/v1/traces", peer=REMOTE, content_type=ctype)
    assert status(COLLECTOR, post) == 200  # loopback bind: the proxies export without a token
    assert status(AccessPolicy(bind_host="0.0.0.0", insecure=True, ingest_paths=COLLECTOR.ingest_paths), post) == 200
    remote = AccessPolicy(bind_host="0.0.0.0", read_token="rd", admin_token="adm", ingest_paths=COLLECTOR.ingest_paths)
    assert status(remote, post) == 401
    assert status(remote, Ask(**{**post.__dict__, "tokens": ("rd",)})) == 401  # reading is not writing
    assert status(remote, Ask(**{**post.__dict__, "tokens": ("adm",)})) == 200
    d = decide(AccessPolicy(bind_host="0.0.0.0", ingest_paths=COLLECTOR.ingest_paths), post)
    assert d.status == 403 and "TOKENTAIL_ADMIN_TOKEN" in d.message
    # Ingest does not use the loopback-peer rule of state changes: a remote exporter with the token is fine,
    # and with an admin token configured on a loopback bind, local exporters still need none.
    assert status(AccessPolicy(admin_token="adm", ingest_paths=COLLECTOR.ingest_paths), post) == 200


@pytest.mark.parametrize("ctype", ["text/plain", None, "application/x-www-form-urlencoded"])
def test_ingest_wants_protobuf_or_json(ctype):
    d = decide(COLLECTOR, ask("POST", "/v1/traces", content_type=ctype, has_body=True))
    assert d.status == 415 and "protobuf" in d.message
    assert decide(COLLECTOR, ask("POST", "/v1/traces", content_type=None, has_body=False)).status == 415


# --- the dashboard's unlock -----------------------------------------------------------


def test_unlock_needs_no_token_but_the_same_host_origin_and_json():
    policy = AccessPolicy(admin_token="adm", **_dashboard())
    assert status(policy, ask("POST", "/_tt/admin", peer=REMOTE)) == 200  # the handler checks the body's token
    assert status(policy, ask("POST", "/_tt/admin", host="attacker.example")) == 421
    assert status(policy, ask("POST", "/_tt/admin", origin="http://evil.example")) == 403
    assert status(policy, ask("POST", "/_tt/admin", content_type="text/plain")) == 415


# --- helpers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header, token",
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("BEARER abc", "abc"),
        ("Basic abc", None),
        ("Bearer ", None),
        ("Bearerabc", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer(header, token):
    assert bearer(header) == token


def test_token_roles_and_media_types():
    policy = AccessPolicy(read_token="rd", admin_token="adm")
    assert token_matches(policy, ["rd"]) == "read" and token_matches(policy, ["rd", "adm"]) == "admin"
    assert token_matches(policy, ["", "x"]) is None and token_matches(AccessPolicy(), ["x"]) is None
    assert media_type("Application/JSON; charset=utf-8") == "application/json"
    assert media_type("") is None and media_type(None) is None


def test_cors_only_for_listed_origins():
    class Req:
        def __init__(self, origin):
            self.headers = {"Origin": origin} if origin else {}

    policy = AccessPolicy(allowed_origins=frozenset({"http://dash:8050"}))
    assert cors_headers_for(policy, Req("http://dash:8050"))["Access-Control-Allow-Origin"] == "http://dash:8050"
    assert cors_headers_for(policy, Req("http://evil")) == {} and cors_headers_for(policy, Req(None)) == {}


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


@pytest.mark.parametrize("command", ["proxy", "collector", "dashboard"])
def test_every_server_takes_allowed_hosts_from_flags_and_the_environment(command):
    import importlib

    from tokentail.settings import SettingsError, resolve

    options = importlib.import_module(f"tokentail.{command}.command").OPTIONS
    env = {f"TOKENTAIL_{command.upper()}_ALLOWED_HOST": "Proxy, collector.lan:8788"}
    cli = {"upstream": "http://127.0.0.1:9/v1"} if command == "proxy" else {}
    s = resolve(command, options, cli, env=env, file_config={})
    assert s["allowed_host"] == ["proxy", "collector.lan:8788"]
    assert _policy_of(command, s).allowed_hosts == {"proxy", "collector.lan:8788"}
    with pytest.raises(SettingsError):
        resolve(command, options, cli, env={f"TOKENTAIL_{command.upper()}_ALLOWED_HOST": "http://x/"}, file_config={})


def _policy_of(command: str, s) -> AccessPolicy:
    if command == "proxy":
        from tokentail.proxy.services import _policy

        return _policy(s)
    if command == "collector":
        from tokentail.collector.config import CollectorConfig

        return AccessPolicy(allowed_hosts=CollectorConfig.from_settings(s).allowed_hosts)
    from tokentail.dashboard.config import DashboardConfig

    return DashboardConfig.from_settings(s).policy
