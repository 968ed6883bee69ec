"""Model routes: which upstream a request goes to, chosen by the model it asks for.

Routes are ``[[proxy.routes]]`` tables in the config file (or a JSON list in
``--routes`` / ``TOKENTAIL_PROXY_ROUTES``)::

    [[proxy.routes]]
    name = "claude"                      # shown on spans, the live feed, /api/routes
    prefix = "claude-"                   # or: match = "exact-model-name" (one of the two)
    upstream = "https://api.anthropic.com/v1"
    model = "claude-sonnet-4-5"          # optional: rewrite the request's model
    api_key_env = "ANTHROPIC_API_KEY"    # optional: inject this variable's value ...
    auth_header = "x-api-key"            # ... as this header (default: Authorization: Bearer)
    probe = true                         # optional: include in the --probe-interval health probe
    capture = "metadata"                 # optional: full | metadata | none (only lowers --capture)

Matching is pure: an exact ``match`` first, then the longest ``prefix``; no match (or no
model, e.g. ``GET /v1/models``) goes to ``--upstream``. A request can only choose among
configured upstreams. When a route injects a key, every credential-looking header the
client sent (``*auth*``, ``*key*``, ``*token*``, ``*secret*``, cookies) and a ``?key=``
query parameter are dropped first, so the client's own key never reaches that upstream.
The key's value lives only in the ``Route`` (never in its repr, ``describe()``, logs, spans
or the live feed).

``RouteTable.explain`` answers "where would MODEL go, and why" without sending anything
(``GET /api/routes/match``, ``tokentail routes check``).

``parse_routes`` validates everything at once and raises ``SettingsError`` with one line
naming the route; ``load_routes`` re-reads the config file for a reload, and
``reload_routes`` (SIGHUP, ``POST /api/routes/reload``) swaps the new table into the app's
``RouteState``, keeping the old one when it raises.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from yarl import URL

from tokentail.erasure import CaptureError, parse_capture
from tokentail.settings import SettingsError, load_config_file

if TYPE_CHECKING:  # state imports this module at run time
    from .state import RouteState

__all__ = [
    "AUTH_HEADERS",
    "Explanation",
    "Route",
    "RouteTable",
    "load_routes",
    "parse_routes",
    "parse_routes_json",
    "reload_routes",
]

log = logging.getLogger("tokentail.proxy")

# auth_header value -> (header name, value prefix)
AUTH_HEADERS = {
    "authorization": ("Authorization", "Bearer "),
    "x-api-key": ("x-api-key", ""),  # Anthropic
    "api-key": ("api-key", ""),  # Azure OpenAI
    "x-goog-api-key": ("x-goog-api-key", ""),  # Google
}
_KEYS = frozenset({"name", "match", "prefix", "upstream", "model", "api_key_env", "auth_header", "probe", "capture"})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Route:
    name: str
    upstream: URL
    match: str | None = None
    prefix: str | None = None
    model: str | None = None  # the model name sent upstream instead of the client's
    api_key_env: str | None = None
    auth_header: str = "authorization"
    probe: bool = False  # probed by --probe-interval (off by default: paid APIs count the calls)
    capture: str | None = None  # full | metadata | none: this route's capture level (None: the proxy's)
    key: str | None = field(default=None, repr=False, compare=False)  # the secret: never shown

    def auth(self) -> tuple[str, str] | None:
        """The (header, value) to inject, or None when the client's headers pass through."""
        if self.key is None:
            return None
        name, prefix = AUTH_HEADERS[self.auth_header]
        return name, prefix + self.key

    def describe(self) -> dict[str, Any]:
        """What ``GET /api/routes`` shows: no key value, only the variable's name."""
        return {
            "name": self.name,
            "match": self.match,
            "prefix": self.prefix,
            "upstream": str(self.upstream),
            "upstream_host": self.upstream.host,
            "model": self.model,
            "api_key_env": self.api_key_env,
            "auth_header": self.auth_header if self.api_key_env else None,
            "capture": self.capture,
        }


class RouteTable:
    """Routes by model: exact matches first, then the longest prefix."""

    def __init__(self, routes: list[Route] | tuple[Route, ...] = ()) -> None:
        self.routes = tuple(routes)
        self._exact = {r.match: r for r in self.routes if r.match is not None}
        self._prefixes = sorted(
            (r for r in self.routes if r.prefix is not None), key=lambda r: len(r.prefix or ""), reverse=True
        )

    def __len__(self) -> int:
        return len(self.routes)

    def match(self, model: str | None) -> Route | None:
        if not model or not self.routes:
            return None
        route = self._exact.get(model)
        if route is not None:
            return route
        for r in self._prefixes:
            if model.startswith(r.prefix):  # type: ignore[arg-type]
                return r
        return None

    def describe(self) -> list[dict[str, Any]]:
        return [r.describe() for r in self.routes]

    def explain(self, model: str | None, default: URL) -> Explanation:
        """Where a request for ``model`` would go, and why; ``match`` decides, this only explains."""
        route = self.match(model)
        if route is None:
            why = "no model in the request" if not model else "no route matches: the default --upstream"
            return Explanation(None, default, model, "default", why)
        if route.match is not None:
            why = f"exact match of route {route.name!r}"
            kind = "exact"
        else:
            why = f"longest prefix {route.prefix!r} of route {route.name!r}"
            kind = "prefix"
        return Explanation(route, route.upstream, route.model or model, kind, why)


@dataclass(frozen=True)
class Explanation:
    """The answer of ``RouteTable.explain``: the route (None: the default upstream), the
    upstream, the model name sent upstream, how it matched (exact | prefix | default) and why."""

    route: Route | None
    upstream: URL
    upstream_model: str | None
    how: str
    why: str

    def describe(self) -> dict[str, Any]:
        return {
            "route": self.route.name if self.route is not None else None,
            "upstream": str(self.upstream),
            "upstream_host": self.upstream.host,
            "upstream_model": self.upstream_model,
            "match": self.how,
            "why": self.why,
            "injects_key": bool(self.route is not None and self.route.api_key_env),
        }


def parse_routes_json(text: str) -> list[Any]:
    """``--routes`` / ``TOKENTAIL_PROXY_ROUTES``: a JSON list of route objects."""
    value = json.loads(text) if text.strip() else []
    if not isinstance(value, list):
        raise ValueError("routes must be a JSON list of objects")
    return value


def parse_routes(raw: Any, env: Mapping[str, str]) -> RouteTable:
    """Validate route definitions (a list of tables) and read their keys from ``env``."""
    if raw is None:
        return RouteTable()
    if not isinstance(raw, list):
        raise SettingsError("routes: expected a list of [[proxy.routes]] tables")
    routes: list[Route] = []
    names: set[str] = set()
    exact: dict[str, str] = {}
    prefixes: dict[str, str] = {}
    for i, entry in enumerate(raw, 1):
        if not isinstance(entry, Mapping):
            raise SettingsError(f"route #{i}: expected a table with name, match or prefix, and upstream")
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise SettingsError(
                f"route #{i}: 'name' is required: 1-64 letters, digits, '_', '.', ':' or '-' (got {name!r})"
            )
        where = f"route {name!r}"
        unknown = sorted(set(entry) - _KEYS)
        if unknown:
            raise SettingsError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(_KEYS))})")
        if name in names:
            raise SettingsError(f"{where}: the name is used twice")
        names.add(name)
        match, prefix = entry.get("match"), entry.get("prefix")
        if (match is None) == (prefix is None):
            raise SettingsError(f"{where}: give exactly one of 'match' (an exact model name) or 'prefix'")
        for kind, value, seen in (("match", match, exact), ("prefix", prefix, prefixes)):
            if value is None:
                continue
            if not isinstance(value, str) or not value:
                raise SettingsError(f"{where}: '{kind}' must be a non-empty string")
            if value in seen:
                raise SettingsError(f"{where}: {kind} {value!r} is already taken by route {seen[value]!r}")
            seen[value] = name
        upstream = parse_upstream(entry.get("upstream"), where)
        model = entry.get("model")
        if model is not None and (not isinstance(model, str) or not model):
            raise SettingsError(f"{where}: 'model' must be a non-empty string (the model name sent upstream)")
        key_env, key = entry.get("api_key_env"), None
        auth_header = entry.get("auth_header")
        if key_env is not None:
            if not isinstance(key_env, str) or not _ENV_NAME.fullmatch(key_env):
                raise SettingsError(f"{where}: 'api_key_env' must be an environment variable name (got {key_env!r})")
            key = env.get(key_env)
            if not key:
                raise SettingsError(f"{where}: environment variable {key_env} (api_key_env) is not set or empty")
            if any(c in key for c in "\r\n\0"):
                raise SettingsError(f"{where}: environment variable {key_env} holds a control character")
        if auth_header is not None:
            if key_env is None:
                raise SettingsError(f"{where}: 'auth_header' needs 'api_key_env' (the key to send in it)")
            if not isinstance(auth_header, str) or auth_header.lower() not in AUTH_HEADERS:
                raise SettingsError(
                    f"{where}: 'auth_header' must be one of {', '.join(AUTH_HEADERS)} (got {auth_header!r})"
                )
            auth_header = auth_header.lower()
        probe = entry.get("probe", False)
        if not isinstance(probe, bool):
            raise SettingsError(f"{where}: 'probe' must be true or false")
        capture = entry.get("capture")
        if capture is not None:
            try:
                capture = parse_capture(capture, f"{where}: 'capture'")
            except CaptureError as exc:
                raise SettingsError(str(exc)) from None
        routes.append(
            Route(
                name=name,
                upstream=upstream,
                match=match,
                prefix=prefix,
                model=model,
                api_key_env=key_env,
                auth_header=auth_header or "authorization",
                probe=probe,
                key=key,
                capture=capture,
            )
        )
    return RouteTable(routes)


def load_routes(env: Mapping[str, str], flag_value: Any = None) -> tuple[RouteTable, str | None]:
    """Routes as they stand now: ``flag_value`` (the ``--routes`` the process started with),
    else ``TOKENTAIL_PROXY_ROUTES``, else the config file's ``[[proxy.routes]]`` (re-read).
    Returns the table and the config file's path. Raises ``SettingsError``."""
    if flag_value is not None:
        return parse_routes(flag_value, env), None
    text = env.get("TOKENTAIL_PROXY_ROUTES")
    if text:
        try:
            return parse_routes(parse_routes_json(text), env), None
        except ValueError as exc:
            if isinstance(exc, SettingsError):
                raise
            raise SettingsError(f"--routes (environment): {exc}") from None
    file_config, path = load_config_file(None, env)
    table = file_config.get("proxy", {})
    raw = table.get("routes") if isinstance(table, Mapping) else None
    return parse_routes(raw, env), path


def reload_routes(state: RouteState) -> RouteTable:
    """Re-read the routes (config file, or ``TOKENTAIL_PROXY_ROUTES``) and swap them in.

    On any error the routes in effect stay, the reason is logged and ``SettingsError``
    raised. SIGHUP and ``POST /api/routes/reload`` both land here.
    """
    try:
        table, path = load_routes(state.env, state.flag_value)
    except SettingsError as exc:
        log.error("routes not reloaded (the %d route(s) in effect stay): %s", len(state.table), exc)
        raise
    state.table, state.config_file, state.loaded_at = table, path, state.clock()
    log.info(
        "routes reloaded%s: %s",
        f" from {path}" if path else "",
        ", ".join(r.name for r in table.routes) or "none (everything goes to --upstream)",
    )
    return table


def parse_upstream(url: Any, where: str) -> URL:
    """A base URL an upstream may have (http(s), a host, no credentials, query or fragment);
    ``where`` names the setting in the one-line error (``--upstream``, ``route 'x'``)."""
    if not isinstance(url, str) or not url:
        raise SettingsError(f"{where}: 'upstream' is required (a base URL like https://api.openai.com/v1)")
    try:
        parsed = URL(url)
    except ValueError as exc:
        raise SettingsError(f"{where}: upstream {url!r} is not a URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise SettingsError(f"{where}: upstream must be an http:// or https:// URL with a host")
    if parsed.user is not None or parsed.password is not None:
        raise SettingsError(f"{where}: upstream must not carry credentials (use api_key_env)")
    if parsed.query_string or parsed.fragment:
        raise SettingsError(f"{where}: upstream must not carry a query string or fragment")
    return URL(str(parsed).rstrip("/"))
