"""Replay: send a captured request again, to another variant, route or model, and compare.

``POST /_tt/replay`` ``{"request_id", "target": {"variant"?, "model"?, "route"?}}`` (a state
change: the dashboard's access policy applies, as to every ``/_tt/*`` action, admin token
included). What is replayed is what was captured: the *redacted* prompt and the request
parameters, read from the proxy's ring (the request as the client sent it) or else from the
collector's stored span (its ``gen_ai.input.messages`` turned back into chat messages). A
request whose capture was truncated, or whose content was not captured, is refused with a
409 saying so: sending a cut prompt would compare different requests. The copy streams
through the chosen proxy's ``/v1/...`` like any request (``actions._start_stream``, the
playground's path), with ``X-Tokentail-Replay-Of: <id>``: the proxy records ``replay_of``
(record, live feed, span) and never sends that header upstream.

The pure parts (the request to send, the word diff of two completions) are tested alone.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any

import flask

from . import actions
from .config import DashboardConfig, ProxySource
from .queries import Reader, SourceError

REPLAY_HEADER = "X-Tokentail-Replay-Of"
REPLAY_TAG = "replay"
TRUNCATION_MARK = "…[truncated]"  # proxy._spancap.TRUNCATION_MARK: the dashboard does not import the proxy
_PROMPT_KEYS = ("messages", "prompt", "input", "system", "instructions", "tools")
_CHAT = "/chat/completions"
_PARAM_ATTRS = {
    "gen_ai.request.temperature": "temperature",
    "gen_ai.request.top_p": "top_p",
    "gen_ai.request.max_tokens": "max_tokens",
    "gen_ai.request.seed": "seed",
    "gen_ai.request.frequency_penalty": "frequency_penalty",
    "gen_ai.request.presence_penalty": "presence_penalty",
}
_TARGET_KEYS = ("variant", "model", "route")


class Refused(ValueError):
    """The request cannot be replayed (answered 409 with this message)."""


def _has_mark(obj: Any, depth: int = 0) -> bool:
    if isinstance(obj, str):
        return TRUNCATION_MARK in obj
    if depth > 64:
        return False
    if isinstance(obj, list):
        return any(_has_mark(x, depth + 1) for x in obj)
    if isinstance(obj, dict):
        return any(_has_mark(x, depth + 1) for x in obj.values())
    return False


def from_live(detail: dict[str, Any]) -> dict[str, Any]:
    """The body to replay from a proxy ring record (``GET /api/requests/{id}``); ``Refused``."""
    if detail.get("truncated"):
        raise Refused("the capture of this request was truncated: replaying it would send a different request")
    if detail.get("parsed") is False:
        raise Refused("the request body was not JSON: nothing was captured to replay")
    prompt = {k: detail[k] for k in _PROMPT_KEYS if detail.get(k) is not None}
    if not any(k in prompt for k in ("messages", "prompt", "input")):
        raise Refused("the prompt of this request was not captured (content capture off): nothing to replay")
    if _has_mark(prompt):
        raise Refused("the capture of this request was truncated: replaying it would send a different request")
    body: dict[str, Any] = {"model": detail.get("model")}
    body.update(prompt)
    params = detail.get("params")
    params = params if isinstance(params, dict) else {}
    body.update({k: v for k, v in params.items() if k != "stream_options"})
    return body


def _text_of(parts: Any) -> str:
    if not isinstance(parts, list):
        raise Refused("the stored prompt has no message parts to replay")
    out = []
    for p in parts:
        if not isinstance(p, dict) or p.get("type") != "text" or not isinstance(p.get("content"), str):
            kind = p.get("type") if isinstance(p, dict) else type(p).__name__
            raise Refused(f"the stored prompt holds a {kind!r} part, which cannot be replayed from a span")
        out.append(p["content"])
    return "".join(out)


def from_span(span: dict[str, Any]) -> dict[str, Any]:
    """The chat body to replay from a stored span (``GET /api/spans/{id}``); ``Refused``."""
    attrs = span.get("attributes")
    attrs = attrs if isinstance(attrs, dict) else {}
    if attrs.get("tokentail.content.truncated"):
        raise Refused("the capture of this request was truncated: replaying it would send a different request")
    if span.get("endpoint") not in (None, _CHAT):
        raise Refused(f"only chat completions can be replayed from a stored span (this was {span.get('endpoint')})")
    msgs = span.get("input_messages")
    if not isinstance(msgs, list) or not msgs:
        raise Refused("the prompt of this request was not captured (content capture off): nothing to replay")
    if _has_mark(msgs) or _has_mark(span.get("system_instructions")):
        raise Refused("the capture of this request was truncated: replaying it would send a different request")
    messages = []
    system = span.get("system_instructions")
    if isinstance(system, list) and system:
        messages.append({"role": "system", "content": _text_of(system)})
    for m in msgs:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise Refused("the stored prompt has a message without a role")
        messages.append({"role": m["role"], "content": _text_of(m.get("parts"))})
    body: dict[str, Any] = {"model": span.get("model"), "messages": messages}
    body.update({p: attrs[a] for a, p in _PARAM_ATTRS.items() if a in attrs})
    return body


def retarget(body: dict[str, Any], target: dict[str, Any], endpoint: str) -> dict[str, Any]:
    """The body sent: the target's model (if any), streamed (usage asked on chat completions)."""
    out = dict(body)
    if target.get("model"):
        out["model"] = target["model"]
    if not isinstance(out.get("model"), str) or not out["model"]:
        raise Refused("the original request names no model: choose one in the target")
    out["stream"] = True
    if endpoint == _CHAT:
        out["stream_options"] = {"include_usage": True}
    return out


def check_target(target: Any) -> dict[str, str]:
    if not isinstance(target, dict) or not target or any(k not in _TARGET_KEYS for k in target):
        raise ValueError('target: {"variant"?, "model"?, "route"?}, at least one')
    for k, v in target.items():
        if not isinstance(v, str) or not v.strip() or len(v) > 200:
            raise ValueError(f"target.{k}: a non-empty name of at most 200 characters")
    return {k: v.strip() for k, v in target.items()}


def pick_proxy(proxies: tuple[ProxySource, ...] | list[ProxySource], target: dict[str, str]) -> ProxySource:
    if target.get("variant"):
        for p in proxies:
            if p.name == target["variant"]:
                return p
        raise ValueError(f"target.variant: no proxy named {target['variant']!r}")
    if not proxies:
        raise Refused("no proxy configured (--proxy URL): a replay is sent through one")
    return proxies[0]


def model_for_route(routes: Any, name: str, model: str) -> str:
    """A model name the proxy routes to route ``name`` (routes match by model): its exact
    ``match``, or ``model`` itself when it already has the route's ``prefix``."""
    for r in routes if isinstance(routes, list) else []:
        if isinstance(r, dict) and r.get("name") == name:
            if r.get("match"):
                return str(r["match"])
            if r.get("prefix") and model.startswith(str(r["prefix"])):
                return model
            raise Refused(f"route {name!r} matches models starting {r.get('prefix')!r}: choose such a model too")
    raise Refused(f"the proxy has no route named {name!r}")


_WORD = re.compile(r"\s+|[^\s]+")


def word_diff(a: str, b: str) -> list[tuple[str, str]]:
    """Two completions as ``(op, text)`` runs, op ``=`` (both), ``-`` (only A), ``+`` (only B), by word.

    Whitespace runs are tokens too, so joining the ``=`` and ``-`` runs gives back A exactly,
    and the ``=`` and ``+`` runs give back B.
    """
    ta, tb = _WORD.findall(a), _WORD.findall(b)
    out: list[tuple[str, str]] = []

    def add(op: str, toks: list[str]) -> None:
        if not toks:
            return
        text = "".join(toks)
        if out and out[-1][0] == op:
            out[-1] = (op, out[-1][1] + text)
        else:
            out.append((op, text))

    sm = difflib.SequenceMatcher(a=ta, b=tb, autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            add("=", ta[i1:i2])
        else:
            add("-", ta[i1:i2])
            add("+", tb[j1:j2])
    return out


def source_body(reader: Reader, request_id: str) -> tuple[dict[str, Any], str]:
    """(body, endpoint) of the original, from a proxy's ring or the collector; Refused / LookupError."""
    live, _errors = reader.live_request(request_id)
    if isinstance(live, dict) and live.get("id"):
        return from_live(live), str(live.get("endpoint") or _CHAT)
    try:
        span = reader.span(request_id)
    except SourceError:
        span = None
    if span is None:
        raise LookupError("no proxy or collector holds this request")
    return from_span(span), str(span.get("endpoint") or _CHAT)


def register(
    server: flask.Flask,
    config: DashboardConfig,
    reader: Reader,
    start: Callable[..., dict[str, Any]] | None = None,
) -> None:
    """Add ``POST /_tt/replay`` (``start`` is injectable for tests: ``actions._start_stream``'s shape)."""
    streams = actions._Streams(actions.MAX_PLAYGROUND_STREAMS)
    send = start or actions._start_stream

    @server.post("/_tt/replay")
    def replay():
        body = flask.request.get_json(silent=True)
        body = body if isinstance(body, dict) else {}
        rid = body.get("request_id")
        if not isinstance(rid, str) or not rid or len(rid) > 200:
            return actions.error(
                400, 'send {"request_id": "<id>", "target": {"variant"|"model"|"route": ...}}', "invalid_request"
            )
        try:
            target = check_target(body.get("target"))
            proxy = pick_proxy(config.proxies, target)
        except Refused as exc:
            return actions.error(409, str(exc), "no_proxy")
        except ValueError as exc:
            return actions.error(400, str(exc), "invalid_request")
        try:
            original, endpoint = source_body(reader, rid)
            chat = retarget(original, target, endpoint)
        except Refused as exc:
            return actions.error(409, str(exc), "not_replayable")
        except LookupError as exc:
            return actions.error(404, str(exc), "not_found")
        except SourceError as exc:
            return actions.error(502, str(exc), "unavailable")
        if target.get("route"):
            try:
                routes = reader._get(proxy.url, "/api/routes")
                chat["model"] = model_for_route(
                    routes.get("routes") if isinstance(routes, dict) else None, target["route"], chat["model"]
                )
            except Refused as exc:
                return actions.error(409, str(exc), "no_route")
            except SourceError as exc:
                return actions.error(502, str(exc), "unavailable")
        if not streams.acquire():
            return actions.error(429, f"{actions.MAX_PLAYGROUND_STREAMS} replays are already streaming", "busy")
        started = send(
            proxy,
            chat,
            config.playground_key or actions.PLAYGROUND_PLACEHOLDER_KEY,
            streams,
            timeout=max(config.timeout, 30.0),
            path=endpoint,
            headers={REPLAY_HEADER: rid, "X-Tokentail-Tags": REPLAY_TAG},
        )
        if "error" in started and not started.get("id"):
            return actions._relay(started.pop("status", 502), started)
        return flask.jsonify({**started, "replay_of": rid, "proxy": proxy.name, "model": chat["model"]})
