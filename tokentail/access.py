"""Who may read captured content and change state: one pure decision for every server.

``decide(policy, ask) -> Decision`` is the whole rule; ``access_aiohttp`` (proxy,
collector) and ``access_flask`` (dashboard) only translate a request into an ``Ask`` and a
refusing ``Decision`` into a JSON answer, as prometheus_client's ``_bake_output`` is one
function behind every server. No I/O here.

What a path is (``classify``): *open* (``/healthz``, ``/metrics``, the proxy's ``/v1/*``
traffic: never checked), a *read* of captured content (GET/HEAD/OPTIONS under a protected
prefix, and POSTs the policy names as reads, e.g. Dash's callbacks), a *change* of state
(any other method there: cancel, route reload, runs, dashboard actions), span *ingest*
(``POST /v1/traces`` on the collector) or the dashboard's *unlock* (trading the admin
token for a cookie).

The checks, in order:

1. **Host** (every checked path). A browser page whose domain an attacker rebinds to
   127.0.0.1 reaches a loopback server with ``Host: attacker.example`` (DNS rebinding), so
   only these names are answered: ``localhost``, the bind address, any IP literal (an IP
   cannot be rebound: a page reaching it by IP *is* on that origin), and ``allowed_hosts``
   (``--allowed-host``: a service name in compose, a name behind a load balancer; given
   with a port it matches that port only). Others get 421.
2. **Reads** depend on the bind address: bound to loopback (or ``--insecure``) a server
   trusts its callers; bound elsewhere every read needs the read token
   (``TOKENTAIL_READ_TOKEN``) or the admin token.
3. **Cross-site** (changes, ingest, unlock). Browsers send ``Origin`` with every POST: it
   must be the server's own origin (scheme + the Host asked for) or a configured
   ``--allowed-origin``; ``Origin: null`` and ``Sec-Fetch-Site: cross-site`` are refused.
   No ``Origin`` (curl, the dashboard's server-side calls) passes.
4. **Tokens.** A change needs the admin token (``TOKENTAIL_ADMIN_TOKEN``) whenever one is
   configured, whatever the bind or ``--insecure`` (401 otherwise); without one only a
   loopback peer may (403). Behind a reverse proxy on the same machine every caller is a
   loopback peer: configure the admin token there. Ingest is telemetry, not an admin
   action: open on a loopback bind (or ``--insecure``), else the admin token.
5. **Content type.** A change carries ``application/json`` (or no body at all, typed
   nothing or ``application/octet-stream``: ``curl -X POST``), ingest ``application/x-protobuf`` or ``application/json``: a cross-site
   ``<form>`` or a no-CORS ``fetch`` can send neither (415).

Tokens come as ``Authorization: Bearer <token>`` (``bearer``), as ``?token=`` for
EventSource, which cannot set headers, or as the dashboard's HttpOnly cookies. CORS is
never a wildcard: only origins listed explicitly get ``Access-Control-Allow-Origin``.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:  # the aiohttp adapter's type only: this module does no I/O and imports no server
    pass


READ_TOKEN_ENV = "TOKENTAIL_READ_TOKEN"
ADMIN_TOKEN_ENV = "TOKENTAIL_ADMIN_TOKEN"

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
JSON_TYPES = frozenset({"application/json"})
OTLP_TYPES = frozenset({"application/x-protobuf", "application/protobuf", "application/json"})
# A POST without a body (``curl -X POST``, aiohttp's client) may say nothing or octet-stream:
# neither is what a cross-site <form> or no-CORS fetch sends (text/plain, form types).
BODILESS_TYPES = frozenset({None, "application/octet-stream", "application/json"})
WILDCARD_BINDS = frozenset({"0.0.0.0", "::", "[::]", ""})

Kind = Literal["open", "read", "change", "ingest", "unlock"]


def is_loopback_host(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_loopback_peer(remote: str | None) -> bool:
    """True for a connection from this machine (127.0.0.0/8, ::1, IPv4-mapped 127.x)."""
    if not remote:
        return False  # unknown peer (e.g. a Unix socket we do not serve): not trusted
    try:
        addr = ipaddress.ip_address(remote.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (any case), else None."""
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip() or None
    return None


def split_host(host: str) -> tuple[str, int | None]:
    """``name[:port]`` or ``[v6][:port]`` → (lowercased name without brackets or final dot, port).
    ``ValueError`` when it is not a host."""
    h = host.strip().lower()
    port: str | None = None
    if h.startswith("["):
        end = h.find("]")
        if end < 0:
            raise ValueError(host)
        name, rest = h[1:end], h[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(host)
            port = rest[1:]
    elif h.count(":") == 1:
        name, port = h.split(":")
    elif ":" in h:
        name = h  # a bare IPv6 literal (never in a Host header, but in a --allowed-host)
    else:
        name = h
    name = name.rstrip(".")
    if not name or any(c in name for c in "/?#@ \\"):
        raise ValueError(host)
    if port is None or port == "":
        return name, None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(host)
    return name, int(port)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class AccessPolicy:
    bind_host: str = "127.0.0.1"
    read_token: str | None = None
    admin_token: str | None = None
    insecure: bool = False
    allowed_origins: frozenset[str] = field(default_factory=frozenset)
    # Path prefixes that read captured content (GET) or change state (other methods).
    protected_prefixes: tuple[str, ...] = ("/api/",)
    # --allowed-host: more names this server answers to (``name`` any port, ``name:port`` that one).
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    # Exact paths whose POST is span ingest (the collector's /v1/traces).
    ingest_paths: frozenset[str] = field(default_factory=frozenset)
    # Exact paths whose POST presents the admin token in its body (the dashboard's unlock).
    unlock_paths: frozenset[str] = field(default_factory=frozenset)
    # Prefixes whose POSTs only read (Dash's /_dash-update-component callbacks).
    read_post_prefixes: tuple[str, ...] = ()
    # Exact paths never checked even under a protected prefix (a liveness probe).
    open_paths: frozenset[str] = field(default_factory=frozenset)

    @property
    def open_access(self) -> bool:
        """True when reads need no token: loopback bind, or --insecure (state changes: see
        the module docstring)."""
        return self.insecure or is_loopback_host(self.bind_host)

    def host_allowed(self, host: str | None) -> bool:
        """May a request naming ``host`` (its Host header) be answered? None: no header
        (HTTP/1.0, not a browser), nothing to rebind."""
        if host is None:
            return True
        try:
            name, port = split_host(host)
        except ValueError:
            return False
        if name == "localhost" or _is_ip(name):
            return True
        if self.bind_host.lower() not in WILDCARD_BINDS and name == self.bind_host.lower().strip("[]"):
            return True
        for entry in self.allowed_hosts:
            try:
                want, want_port = split_host(entry)
            except ValueError:
                continue
            if want == name and (want_port is None or want_port == port):
                return True
        return False

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        """No Origin (not a browser), the server's own origin, or a configured one."""
        if origin is None:
            return True
        if origin in self.allowed_origins:
            return True
        if origin == "null" or host is None:
            return False
        scheme, sep, netloc = origin.partition("://")
        return bool(sep) and scheme in ("http", "https") and netloc.lower() == host.strip().lower()


@dataclass(frozen=True)
class Ask:
    """What the decision looks at, taken from a request by an adapter."""

    method: str
    path: str
    host: str | None = None  # the Host header as sent
    peer: str | None = None  # the connection's remote address
    origin: str | None = None
    fetch_site: str | None = None  # Sec-Fetch-Site
    content_type: str | None = None  # the media type, without parameters
    has_body: bool = False
    tokens: tuple[str, ...] = ()  # every token presented: bearer, ?token=, cookies


@dataclass(frozen=True)
class Decision:
    """Allowed (status 0), or the status, error code and message of the refusal."""

    status: int = 0
    code: str = ""
    message: str = ""

    @property
    def allowed(self) -> bool:
        return self.status == 0

    def as_json(self) -> dict[str, dict[str, str]]:
        return {"error": {"message": self.message, "type": self.code, "code": self.code}}


ALLOW = Decision()


def classify(policy: AccessPolicy, method: str, path: str) -> Kind:
    method = method.upper()
    if path in policy.open_paths:
        return "open"
    if method not in READ_METHODS:
        if path in policy.ingest_paths:
            return "ingest"
        if path in policy.unlock_paths:
            return "unlock"
    if not any(path.startswith(p) for p in policy.protected_prefixes):
        return "open"
    if method in READ_METHODS or any(path.startswith(p) for p in policy.read_post_prefixes):
        return "read"
    return "change"


def token_matches(policy: AccessPolicy, tokens: Iterable[str]) -> Literal["admin", "read"] | None:
    """The strongest role a presented token grants (admin tokens read too)."""
    role: Literal["admin", "read"] | None = None
    for t in tokens:
        if _matches(t, policy.admin_token):
            return "admin"
        if _matches(t, policy.read_token):
            role = "read"
    return role


def decide(policy: AccessPolicy, ask: Ask) -> Decision:
    """The access rule (see the module docstring): allow, or why not."""
    kind = classify(policy, ask.method, ask.path)
    if kind == "open":
        return ALLOW
    if not policy.host_allowed(ask.host):
        return Decision(
            421,
            "misdirected_request",
            f"this server does not answer to the host name {ask.host!r} (a page whose name was rebound "
            "to this machine?); add it with --allowed-host if it is yours",
        )
    if kind == "read":
        return _read(policy, ask)
    if not policy.origin_allowed(ask.origin, ask.host) or (ask.fetch_site or "").lower() == "cross-site":
        return Decision(
            403,
            "forbidden",
            f"state changes are refused from another site's page (Origin {ask.origin or '-'}, "
            f"Sec-Fetch-Site {ask.fetch_site or '-'}); list a trusted origin with --allowed-origin",
        )
    if kind == "change":
        denied = _change_token(policy, ask)
        types = JSON_TYPES
    elif kind == "ingest":
        denied = _ingest_token(policy, ask)
        types = OTLP_TYPES
    else:  # unlock: the handler checks the token in the body
        denied = ALLOW
        types = JSON_TYPES
    if not denied.allowed:
        return denied
    ctype = (ask.content_type or "").lower() or None
    if ctype in types or (kind != "ingest" and not ask.has_body and ctype in BODILESS_TYPES):
        return ALLOW
    want = "application/json" if kind != "ingest" else "application/x-protobuf or application/json"
    return Decision(415, "unsupported_media_type", f"send the body as {want}, not {ctype or 'without a type'}")


def _read(policy: AccessPolicy, ask: Ask) -> Decision:
    if policy.open_access or token_matches(policy, ask.tokens):
        return ALLOW
    if not policy.read_token and not policy.admin_token:
        return Decision(
            403,
            "forbidden",
            f"reading captured content from a non-loopback address needs {READ_TOKEN_ENV} "
            "to be configured (or --insecure)",
        )
    return Decision(401, "unauthorized", "missing or wrong read token (Authorization: Bearer <token>)")


def _change_token(policy: AccessPolicy, ask: Ask) -> Decision:
    if policy.admin_token:
        if token_matches(policy, ask.tokens) == "admin":
            return ALLOW
        return Decision(401, "unauthorized", "missing or wrong admin token (Authorization: Bearer <token>)")
    if is_loopback_peer(ask.peer):
        return ALLOW
    return Decision(
        403,
        "forbidden",
        f"state changes from another machine need an admin token: set {ADMIN_TOKEN_ENV} "
        "on this server and send it as Authorization: Bearer <token> (without it, state "
        "changes are allowed from loopback only)",
    )


def _ingest_token(policy: AccessPolicy, ask: Ask) -> Decision:
    if policy.open_access or token_matches(policy, ask.tokens) == "admin":
        return ALLOW
    if not policy.admin_token:
        return Decision(
            403,
            "forbidden",
            f"receiving spans on a non-loopback address needs {ADMIN_TOKEN_ENV} to be configured (or --insecure)",
        )
    return Decision(401, "unauthorized", "missing or wrong admin token (Authorization: Bearer <token>)")


def _matches(presented: str | None, expected: str | None) -> bool:
    return bool(presented and expected and hmac.compare_digest(presented.encode(), expected.encode()))


def media_type(content_type: str | None) -> str | None:
    """``application/json; charset=utf-8`` → ``application/json``; None when absent."""
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


class _HasHeaders(Protocol):
    @property
    def headers(self) -> Mapping[str, str]: ...


def cors_headers(origin: str, *, preflight: bool) -> dict[str, str]:
    h = {"Access-Control-Allow-Origin": origin, "Vary": "Origin", "Access-Control-Allow-Credentials": "true"}
    if preflight:
        h["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        h["Access-Control-Allow-Headers"] = "Authorization, Content-Type, Last-Event-ID"
        h["Access-Control-Max-Age"] = "600"
    return h


def cors_headers_for(policy: AccessPolicy, request: _HasHeaders) -> dict[str, str]:
    """CORS headers for a streamed response (prepared before a middleware can add them)."""
    origin = request.headers.get("Origin")
    if origin and origin in policy.allowed_origins:
        return cors_headers(origin, preflight=False)
    return {}


def allowed_host(text: str) -> str:
    """One ``--allowed-host`` value, checked and lowercased (``ValueError`` when not NAME[:PORT])."""
    try:
        split_host(text)
    except ValueError:
        raise ValueError(f"expected NAME or NAME:PORT, got {text!r}") from None
    return text.strip().lower()


def parse_hosts(values: Iterable[str]) -> frozenset[str]:
    """``--allowed-host`` values (repeatable or comma-separated) → the policy's set;
    ``ValueError`` naming a bad one."""
    out: set[str] = set()
    for value in values:
        for raw in str(value).split(","):
            raw = raw.strip()
            if not raw:
                continue
            try:
                split_host(raw)
            except ValueError:
                raise ValueError(f"--allowed-host {raw!r}: expected NAME or NAME:PORT") from None
            out.add(raw.lower())
    return frozenset(out)
