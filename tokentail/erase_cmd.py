"""``tokentail erase``: erase captured content on the collector and the proxies, keep the numbers.

``tokentail erase --session ID | --request ID | --user U | --key FINGERPRINT | --before TIME``
(any combination: all must match) sends ``POST /api/erase`` to the collector and to every
proxy, with the admin token when one is set. ``--before`` takes epoch seconds, ISO 8601 or an
age (``30d``) and is resolved here, once, so every server erases up to the same instant.
Prints one line per server; exit 0 when every server erased, 1 when one could not (it is
named, with why: the erase is safe to run again), 2 for a selector that cannot be used.

``fan_out`` is the part the dashboard's "Erase content" button shares (it passes its own
``post``).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .erasure import Selector, SelectorError
from .settings import Option, SettingsError, parse_duration

SUMMARY = "erase captured prompts and completions (collector and proxies), keeping usage, timings and cost"
DESCRIPTION = """\
Erase the captured content (prompts, completions, tool arguments, previews) of the
requests selected, on the collector (its DuckDB file, space reclaimed) and on each proxy
(its live ring, replay log and raw views, and requests still in flight, which capture
nothing more). Metadata, usage, timings, cost and metrics stay; erased rows say when
(content_erased_at). Give at least one of --session, --request, --user, --key, --before;
several must all match. Erasing is an admin action: with TOKENTAIL_ADMIN_TOKEN set on the
servers, set it here too; without one, only loopback clients may erase.

Spans of an erased request that reach the collector later are stored without content.
"""

Post = Callable[..., tuple[int, Any]]
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

OPTIONS: list[Option] = [
    Option("session", "erase this session's requests", None, metavar="ID"),
    Option("request", "erase this request", None, metavar="ID"),
    Option("user", "erase this end user's requests (the OpenAI `user` field)", None, metavar="USER"),
    Option("key", "erase the requests made with this client key fingerprint", None, metavar="FINGERPRINT"),
    Option(
        "before",
        "erase requests started before TIME: epoch seconds, ISO 8601 (UTC unless a zone is given) or an age like 30d",
        None,
        metavar="TIME",
    ),
    Option("collector", "collector base URL ('' to skip it)", "http://127.0.0.1:8788", metavar="URL"),
    Option(
        "proxy",
        "proxy base URL, [VARIANT=]URL (repeatable; '' to skip the proxies)",
        ["http://127.0.0.1:8787"],
        multiple=True,
        metavar="URL",
    ),
    Option(
        "admin_token",
        "the servers' admin token (sent as Authorization: Bearer)",
        None,
        secret=True,
        env_aliases=("TOKENTAIL_ADMIN_TOKEN",),
    ),
    Option("timeout", "longest wait for each server (the collector compacts its file)", 120.0, parse_duration),
]


def base_url(text: str) -> str:
    """``[VARIANT=]URL`` (a proxy's as the dashboard takes it, or a base URL with ``/v1``) ->
    scheme://host:port/path without the ``/v1``, the query or credentials."""
    raw = text.strip()
    if "=" in raw.split("://", 1)[0]:
        raw = raw.split("=", 1)[1].strip()
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{text!r}: expected http(s)://HOST:PORT")
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[:-3]
    netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if ":" in (parts.hostname or ""):
        netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def post_json(url: str, body: Any, *, token: str | None, timeout: float) -> tuple[int, Any]:
    """POST JSON; (status, parsed body); a failure to connect is (0, {"error": {"message"}})."""
    headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "tokentail-erase"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read(1 << 20)
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read(1 << 20)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return 0, {"error": {"message": f"unreachable ({getattr(exc, 'reason', exc)})"}}
    try:
        return status, json.loads(raw or b"{}")
    except ValueError:
        return status, {"error": {"message": f"answered HTTP {status} without JSON"}}


def fan_out(
    selector: dict[str, Any],
    collector: str | None,
    proxies: list[str],
    *,
    token: str | None,
    timeout: float,
    post: Post = post_json,
) -> list[dict[str, Any]]:
    """``POST /api/erase`` to the collector, then each proxy; one result per server:
    ``{"server", "kind", "ok", "status", "body"}``."""
    targets = ([("collector", collector)] if collector else []) + [("proxy", p) for p in proxies]
    out = []
    for kind, url in targets:
        status, body = post(url + "/api/erase", selector, token=token, timeout=timeout)
        out.append({"server": url, "kind": kind, "ok": status == 200, "status": status, "body": body})
    return out


def describe(result: dict[str, Any]) -> str:
    """One line for a server's answer."""
    body = result["body"] if isinstance(result["body"], dict) else {}
    head = f"{result['kind']} {result['server']}"
    if not result["ok"]:
        msg = (body.get("error") or {}).get("message") if isinstance(body.get("error"), dict) else None
        status = f"HTTP {result['status']}: " if result["status"] else ""
        return f"{head}: NOT erased: {status}{msg or 'no reason given'}"
    erased = body.get("erased")
    if isinstance(erased, dict):
        return (
            f"{head}: erased {erased.get('live', 0)} in the live ring, {erased.get('in_flight', 0)} in flight, "
            f"{erased.get('raw', 0)} raw views"
        )
    return f"{head}: erased the content of {erased} stored spans"


def selector_of(settings: Any) -> dict[str, Any]:
    """The selector the options name, validated; ``before`` resolved to epoch seconds now."""
    given = {k: settings[k] for k in ("session", "request", "user", "key", "before") if settings[k] not in (None, "")}
    try:
        return Selector.from_json(given).as_json()
    except SelectorError as exc:
        flag = f"--{exc.field}" if exc.field != "body" else "the selector"
        raise SettingsError(f"{flag}: {exc}") from None


def main(settings: Any) -> int:
    selector = selector_of(settings)
    collector = base_url(settings["collector"]) if settings["collector"] else None
    proxies = [base_url(p) for p in settings["proxy"] or () if p.strip()]
    if not collector and not proxies:
        raise SettingsError("nothing to erase on: give --collector and/or --proxy")
    results = fan_out(selector, collector, proxies, token=settings["admin_token"] or None, timeout=settings["timeout"])
    for r in results:
        print(describe(r), file=sys.stdout if r["ok"] else sys.stderr)
    return 0 if all(r["ok"] for r in results) else 1
