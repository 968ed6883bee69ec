"""Replay a whole run against another variant, model or route: a new run, compared with the first.

``POST /_tt/replay-run`` ``{"run_id", "target": {"variant"?, "model"?, "route"?}}`` (a state
change: the dashboard's access rule applies). The dashboard reads the run's stored spans from
the collector, keeps those that can be replayed (``replay.from_span``: captured, not
truncated; the others are counted as skipped), starts a collector run named after the
original, and sends the requests one after the other on a background thread, each with
``X-Tokentail-Replay-Of``, then ends the run. It answers at once (202) with the new run's id
and the Compare link: ``a=run:<original>`` against ``b=replays:<original>``, the replays of
that run's requests only (the new run's interval may also hold other traffic).
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import flask

from . import actions
from .config import DashboardConfig, ProxySource
from .queries import Reader, SourceError
from .replay import REPLAY_HEADER, REPLAY_TAG, Refused, check_target, from_span, pick_proxy, retarget

log = logging.getLogger("tokentail.dashboard")
MAX_REQUESTS = 200  # a run replay is for a test set, not a load test
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def plan(spans: list[dict[str, Any]], target: dict[str, str]) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """(request id, body to send) for each replayable span, oldest first; and how many were skipped."""
    out: list[tuple[str, dict[str, Any]]] = []
    skipped = 0
    for span in spans:
        rid = span.get("request_id")
        if not isinstance(rid, str) or (span.get("attributes") or {}).get("tokentail.replay_of"):
            skipped += 1  # a replay in the run is not replayed again
            continue
        try:
            out.append((rid, retarget(from_span(span), target, "/chat/completions")))
        except Refused:
            skipped += 1
    return out[:MAX_REQUESTS], skipped + max(0, len(out) - MAX_REQUESTS)


def send_one(proxy: ProxySource, rid: str, chat: dict[str, Any], key: str, timeout: float) -> None:
    """Send one replay and read its stream to the end (errors are the proxy's record, not ours)."""
    req = urllib.request.Request(
        proxy.openai_base + "/chat/completions",
        data=json.dumps(chat).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            "Authorization": f"Bearer {key}",
            "User-Agent": "tokentail-replay",
            "X-Tokentail-Tags": REPLAY_TAG,
            REPLAY_HEADER: rid,
        },
    )
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            while resp.read(65536):
                pass
    except (urllib.error.URLError, OSError, ValueError):
        log.info("replay of %s failed", rid, exc_info=True)


def start_background(fn: Callable[[], None]) -> None:
    threading.Thread(target=fn, name="replay-run", daemon=True).start()


def register(
    server: flask.Flask,
    config: DashboardConfig,
    reader: Reader,
    post: Callable[..., tuple[int, Any]] = actions.post_json,
    background: Callable[[Callable[[], None]], None] | None = None,
) -> None:
    """Add ``POST /_tt/replay-run`` (``background`` runs the sending; a thread unless a test passes one)."""
    busy = threading.Lock()

    @server.post("/_tt/replay-run")
    def replay_run():
        body = flask.request.get_json(silent=True)
        body = body if isinstance(body, dict) else {}
        run_id = body.get("run_id")
        if not isinstance(run_id, int) or isinstance(run_id, bool) or not 0 < run_id < 2**31:
            return actions.error(400, 'send {"run_id": <id>, "target": {...}}', "invalid_request")
        try:
            target = check_target(body.get("target"))
            proxy = pick_proxy(config.proxies, target)
        except Refused as exc:
            return actions.error(409, str(exc), "no_proxy")
        except ValueError as exc:
            return actions.error(400, str(exc), "invalid_request")
        if target.get("route"):
            return actions.error(400, "a run is replayed on a variant or a model", "invalid_request")
        if not config.collector:
            return actions.error(
                409, "no collector configured (--collector URL): runs live in the collector", "no_collector"
            )
        try:
            spans = reader.spans(limit=1000, run=run_id, order="asc")
        except SourceError as exc:
            return actions.error(502, str(exc), "unavailable")
        todo, skipped = plan(spans, target)
        if not todo:
            return actions.error(
                409, f"run {run_id} has no request that can be replayed ({skipped} skipped)", "not_replayable"
            )
        if not busy.acquire(blocking=False):
            return actions.error(429, "a run is already being replayed", "busy")
        what = ", ".join(f"{k} {v}" for k, v in target.items())
        status, run = post(
            config.collector + "/api/runs",
            {"name": f"replay of run {run_id} ({what})"[:200]},
            token=config.admin_token,
            timeout=config.timeout,
        )
        if status != 201 or not isinstance(run, dict) or not isinstance(run.get("id"), int):
            busy.release()
            return actions._relay(status, run)
        new_id = run["id"]
        key = config.playground_key or actions.PLAYGROUND_PLACEHOLDER_KEY

        def work() -> None:
            try:
                for rid, chat in todo:
                    send_one(proxy, rid, chat, key, max(config.timeout, 60.0))
            finally:
                post(f"{config.collector}/api/runs/{new_id}/end", {}, token=config.admin_token, timeout=config.timeout)
                busy.release()

        (background or start_background)(work)
        compare = f"/compare?a=run:{run_id}&b=replays:{run_id}"
        return flask.jsonify(
            {"run": new_id, "replay_of_run": run_id, "requests": len(todo), "skipped": skipped, "compare": compare}
        ), 202
