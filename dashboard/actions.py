"""The dashboard's state-changing routes: runs, cancel, the playground (server-side calls).

The page never holds the admin token. It POSTs same-origin JSON to these routes; this
server checks who asks and then calls the collector or the proxy itself, with the
admin token from its own configuration (``TOKENTAIL_ADMIN_TOKEN``) when one is set:

- ``POST /_tt/runs`` ``{"name", "scope"?}`` (the scope as the form's text, see ``run_scope``)
  and ``POST /_tt/runs/<id>/<pause|resume|end>``: the collector's ``/api/runs``;
- ``POST /_tt/cancel`` ``{"id", "proxy"?}``: ``POST {proxy}/api/requests/{id}/cancel`` on
  the proxy that holds the request (``proxy`` names it; otherwise each is asked);
- ``POST /_tt/playground`` ``{"proxy"?, "model", "system", "message", "temperature"}``:
  a streamed chat sent through the proxy by a background thread that reads it to the
  end; the answer carries the request id, and the page follows that request on the
  live feed it already has (no second stream);
- ``POST /_tt/erase`` ``{"session"|"request": ID}``: ``POST /api/erase`` on the collector and
  every proxy (``tokentail.erase_cmd.fan_out``); 200 when all erased, else 502 naming who did not;
- ``POST /_tt/admin`` ``{"token"}``: trades the admin token for an HttpOnly cookie.

Who may: the one access policy of the proxies and the collector (``tokentail.access``,
applied to every request by ``tokentail.access_flask``, see ``DashboardConfig.policy``):
only this machine's own names in ``Host`` (a rebound DNS name gets 421); from a browser,
only this page's own origin and never ``Sec-Fetch-Site: cross-site``; a JSON body (a plain
form cannot send one, and a cross-site fetch with it needs a CORS preflight this server
never grants); then, with an admin token configured, the request must present it
(``Authorization: Bearer``, or the cookie), without one only loopback clients may.
``/_tt/admin`` passes the same Host, Origin and JSON checks and checks the token it is sent.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import flask

from . import run_scope
from .config import DashboardConfig, ProxySource, display_url

log = logging.getLogger("tokentail.dashboard")

ADMIN_COOKIE = "tokentail_admin"
PLAYGROUND_PLACEHOLDER_KEY = "sk-tokentail-playground"  # the simulator and local servers take any key
PLAYGROUND_TAG = "playground"
MAX_PLAYGROUND_STREAMS = 4
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_MAX_TEXT = 100_000


def error(status: int, message: str, code: str) -> tuple[flask.Response, int]:
    return flask.jsonify({"error": {"message": message, "type": code, "code": code}}), status


def _matches(presented: str | None, expected: str) -> bool:
    return presented is not None and presented != "" and hmac.compare_digest(presented.encode(), expected.encode())


def post_json(url: str, body: Any, *, token: str | None, timeout: float) -> tuple[int, Any]:
    """POST JSON; (status, parsed body). Connection failures are (502, an error body)."""
    data = json.dumps(body if body is not None else {}).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "tokentail-dashboard"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read(1 << 20)
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read(1 << 20)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return 502, {"error": {"message": f"{display_url(url)} is unreachable ({reason})", "code": "unreachable"}}
    try:
        return status, json.loads(raw or b"{}")
    except ValueError:
        return 502, {
            "error": {"message": f"{display_url(url)} did not answer JSON (HTTP {status})", "code": "bad_gateway"}
        }


def _relay(status: int, body: Any) -> tuple[flask.Response, int]:
    return flask.jsonify(body), status


def _body(req: flask.Request) -> dict[str, Any] | None:
    body = req.get_json(silent=True)
    return body if isinstance(body, dict) else None


def register(server: flask.Flask, config: DashboardConfig, post: Callable[..., tuple[int, Any]] = post_json) -> None:
    """Add the routes to the dashboard's Flask server (``post`` is injectable for tests)."""
    streams = _Streams(MAX_PLAYGROUND_STREAMS)

    def collector(path: str, body: Any) -> tuple[flask.Response, int]:
        if not config.collector:
            return error(409, "no collector configured (--collector URL): runs live in the collector", "no_collector")
        return _relay(*post(config.collector + path, body, token=config.admin_token, timeout=config.timeout))

    @server.post("/_tt/runs")
    def run_start():
        body = _body(flask.request)
        if body is None or not isinstance(body.get("name"), str):
            return error(400, 'send {"name": "...", "scope"?: {...}}', "invalid_request")
        try:  # the Runs page's scope form, as text fields (run_scope.scope_from_form)
            scope = run_scope.scope_from_form(body.get("scope"))
        except run_scope.ScopeFormError as exc:
            return error(400, str(exc), "invalid_scope")
        return collector("/api/runs", {"name": body["name"]} | ({"scope": scope} if scope else {}))

    @server.post("/_tt/runs/<int:run_id>/<action>")
    def run_action(run_id: int, action: str):
        if action not in ("pause", "resume", "end"):
            return error(400, f"unknown action {action!r} (pause, resume, end)", "invalid_request")
        return collector(f"/api/runs/{run_id}/{action}", {})

    @server.post("/_tt/cancel")
    def cancel():
        body = _body(flask.request) or {}
        rid = body.get("id")
        if not isinstance(rid, str) or not rid or len(rid) > 200:
            return error(400, 'send {"id": "<request id>"}', "invalid_request")
        proxies = [p for p in config.proxies if p.name == body.get("proxy")] or list(config.proxies)
        if not proxies:
            return error(409, "no proxy configured (--proxy URL)", "no_proxy")
        path = f"/api/requests/{urllib.parse.quote(rid, safe='')}/cancel"
        answer: tuple[int, Any] = (
            404,
            {"error": {"message": "no proxy holds this request in flight", "code": "not_found"}},
        )
        for p in proxies:
            status, got = post(p.url + path, {}, token=config.admin_token, timeout=config.timeout)
            if status != 404:
                return _relay(status, got)
        return _relay(*answer)

    @server.post("/_tt/erase")
    def erase():
        from tokentail.erase_cmd import describe, fan_out

        body = _body(flask.request) or {}
        selector = {k: body[k] for k in ("session", "request") if isinstance(body.get(k), str) and body[k]}
        if len(selector) != 1 or len(next(iter(selector.values()))) > 200:
            return error(400, 'send {"session": "<id>"} or {"request": "<id>"}', "invalid_request")
        proxies = [p.url for p in config.proxies]
        if not config.collector and not proxies:
            return error(409, "no collector or proxy configured", "no_backend")
        results = fan_out(
            selector,
            config.collector or None,
            proxies,
            token=config.admin_token,
            timeout=max(config.timeout, 60.0),  # the collector compacts its file
            post=post,
        )
        if any(r["status"] == 401 for r in results):
            return error(401, "the collector or a proxy refused the admin token", "unauthorized")
        ok = all(r["ok"] for r in results)
        return flask.jsonify({"ok": ok, "results": [describe(r) for r in results]}), 200 if ok else 502

    @server.post("/_tt/playground")
    def playground():
        body = _body(flask.request) or {}
        try:
            chat = playground_request(body)
        except ValueError as exc:
            return error(400, str(exc), "invalid_request")
        proxy = next((p for p in config.proxies if p.name == body.get("proxy")), None) or (
            config.proxies[0] if config.proxies else None
        )
        if proxy is None:
            return error(409, "no proxy configured (--proxy URL): the playground sends through one", "no_proxy")
        if not streams.acquire():
            return error(429, f"{MAX_PLAYGROUND_STREAMS} playground requests are already streaming", "busy")
        started = _start_stream(
            proxy, chat, config.playground_key or PLAYGROUND_PLACEHOLDER_KEY, streams, timeout=max(config.timeout, 30.0)
        )
        if "error" in started and not started.get("id"):
            return _relay(started.pop("status", 502), started)
        return flask.jsonify({**started, "proxy": proxy.name})

    @server.get("/_tt/models")
    def models():  # the Playground's model list: the proxy's GET /v1/models (its upstream's)
        proxy = next((p for p in config.proxies if p.name == flask.request.args.get("proxy")), None) or (
            config.proxies[0] if config.proxies else None
        )
        if proxy is None:
            return flask.jsonify({"models": []})
        return flask.jsonify({"models": list_models(proxy, config.playground_key or PLAYGROUND_PLACEHOLDER_KEY)})

    @server.post("/_tt/admin")
    def unlock():
        if not config.admin_token:
            return error(409, "no admin token is configured: state changes are open to loopback clients", "no_token")
        body = _body(flask.request) or {}  # Host, Origin and JSON: checked by the access policy
        if not _matches(body.get("token") if isinstance(body.get("token"), str) else None, config.admin_token):
            return error(401, "wrong admin token", "unauthorized")
        resp = flask.jsonify({"unlocked": True})
        resp.set_cookie(
            ADMIN_COOKIE, config.admin_token, httponly=True, samesite="Strict", secure=flask.request.is_secure
        )
        return resp


def playground_request(body: dict[str, Any]) -> dict[str, Any]:
    """The chat completion the playground sends (``ValueError`` naming a bad field)."""
    model, system, message = body.get("model"), body.get("system") or "", body.get("message")
    if not isinstance(model, str) or not model.strip() or len(model) > 200:
        raise ValueError("model: a model name is required")
    if not isinstance(message, str) or not message.strip():
        raise ValueError("message: write a message to send")
    if not isinstance(system, str) or len(system) + len(message) > _MAX_TEXT:
        raise ValueError(f"system and message: text, at most {_MAX_TEXT} characters together")
    temperature = body.get("temperature")
    messages = ([{"role": "system", "content": system}] if system.strip() else []) + [
        {"role": "user", "content": message}
    ]
    chat: dict[str, Any] = {"model": model.strip(), "stream": True, "messages": messages}
    if temperature not in (None, ""):
        try:
            t = float(temperature)
        except (TypeError, ValueError):
            t = -1.0
        if not 0.0 <= t <= 2.0:
            raise ValueError("temperature: a number from 0 to 2")
        chat["temperature"] = t
    return chat


class _Streams:
    """A bound on the playground's background streams."""

    def __init__(self, limit: int) -> None:
        self._sem = threading.BoundedSemaphore(limit)

    def acquire(self) -> bool:
        return self._sem.acquire(blocking=False)

    def release(self) -> None:
        self._sem.release()


def model_ids(body: Any) -> list[str]:
    """The ids of an OpenAI ``GET /v1/models`` answer, sorted, chat models before embeddings."""
    data = body.get("data") if isinstance(body, dict) else None
    ids = {str(m["id"]) for m in data or [] if isinstance(m, dict) and isinstance(m.get("id"), str) and m["id"]}
    return sorted(ids, key=lambda m: ("embedding" in m, m))


def list_models(proxy: ProxySource, key: str, timeout: float = 3.0) -> list[str]:
    """The models the proxy's upstream lists; empty when it cannot say (the page keeps its own)."""
    req = urllib.request.Request(
        proxy.openai_base + "/models",
        headers={"Authorization": f"Bearer {key}", "User-Agent": "tokentail-playground"},
    )
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return model_ids(json.loads(resp.read(1 << 20) or b"{}"))
    except (urllib.error.URLError, OSError, ValueError):
        return []


def _start_stream(
    proxy: ProxySource,
    chat: dict[str, Any],
    key: str,
    streams: _Streams,
    *,
    timeout: float,
    path: str = "/chat/completions",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Send ``chat`` through ``proxy`` on a thread that reads the stream to its end.

    Returns once the proxy answered (its headers carry the request id), with ``id`` and
    the HTTP ``status``; the page follows the request on the live feed from there.
    """
    started = threading.Event()
    out: dict[str, Any] = {}
    req = urllib.request.Request(
        proxy.openai_base + path,
        data=json.dumps(chat).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            "Authorization": f"Bearer {key}",
            "User-Agent": "tokentail-playground",
            "X-Tokentail-Tags": PLAYGROUND_TAG,
            **(headers or {}),  # a replay's X-Tokentail-Replay-Of and tag
        },
    )

    def run() -> None:
        try:
            try:
                resp = _OPENER.open(req, timeout=timeout)
            except urllib.error.HTTPError as exc:  # answered, with an error: the live feed shows it too
                out.update(id=exc.headers.get("x-tokentail-request-id"), status=exc.code)
                try:
                    err = json.loads(exc.read(65536) or b"{}").get("error") or {}
                    out["error"] = {"message": str(err.get("message") or exc.reason)[:500], "code": "upstream"}
                except (ValueError, AttributeError, OSError):
                    out["error"] = {"message": f"HTTP {exc.code}", "code": "upstream"}
                return
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", exc)
                out.update(
                    status=502,
                    error={"message": f"{display_url(proxy.url)} is unreachable ({reason})", "code": "unreachable"},
                )
                return
            with resp:
                out.update(id=resp.headers.get("x-tokentail-request-id"), status=resp.status)
                started.set()
                while resp.read(65536):
                    pass  # the page reads the text from the live feed; this only keeps the stream going
        except Exception:  # a cancelled or dropped stream ends here; never a thread traceback
            log.debug("playground stream ended early", exc_info=True)
        finally:
            started.set()
            streams.release()

    threading.Thread(target=run, name="playground-stream", daemon=True).start()
    if not started.wait(timeout):
        return {"status": 504, "error": {"message": "the proxy did not answer in time", "code": "timeout"}}
    return dict(out)
