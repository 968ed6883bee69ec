"""The runs API: ``/api/runs`` (list, start), ``/api/runs/{id}`` (stats, ``?what_if=``),
``/api/runs/{id}/pause|resume|end``, ``/api/runs/compare`` and ``/api/pricing``.

Thin handlers around ``runs`` (SQL) and ``run_stats`` (pure). Starting, pausing, resuming
and ending are POSTs under ``/api/``: the app's access middleware holds them to the rule
for state changes (``tokentail.access.decide``: an allowed Host and Origin, a JSON body, and
the admin token once one is configured, else a loopback peer), whatever the bind address.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
from aiohttp import web

from ..pricing import PriceTable, PricingError
from ..settings import SettingsError
from . import run_stats, runs, search
from ._http import COLLECTOR, PRICES, STORE, error, unavailable
from .query import QueryError, check_known, number_param

MAX_RUNS = 500


def _run_id(request: web.Request) -> int:
    return int(request.match_info["id"])  # the route only matches digits


async def _json_object(request: web.Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    """The request's JSON object body ({} when empty); QueryError naming what is wrong."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise QueryError("body", "the body must be a JSON object", list(allowed)) from None
    if not isinstance(body, dict):
        raise QueryError("body", "the body must be a JSON object", list(allowed))
    for key in body:
        if key not in allowed:
            raise QueryError(key, f"unknown field {key!r}", list(allowed))
    return body


async def runs_list(request: web.Request) -> web.Response:
    """``{"runs": [...]}`` newest first, each with a short summary; ``current``: the run recording, if any."""
    try:
        check_known(request.query, ("limit",))
        limit = int(number_param(request.query, "limit", 1, MAX_RUNS, integer=True) or 100)
    except QueryError as exc:
        return web.json_response(exc.as_json(), status=400)
    now = request.app[COLLECTOR].clock()
    try:
        rows = await request.app[STORE].read(runs.list_runs, limit, now)
    except duckdb.Error as exc:
        return unavailable(exc)
    current = next((r for r in rows if r["status"] != run_stats.ENDED), None)
    return web.json_response({"runs": rows, "current": current})


async def run_start(request: web.Request) -> web.Response:
    """``POST /api/runs {"name", "scope"?}``: 201 with the run, 409 while another is active or paused.

    ``scope`` (optional): ``{"tags": [...], "key_fingerprint", "user", "session", "variant",
    "model"}``, any combination; the run then counts only the spans matching all of it."""
    try:
        body = await _json_object(request, ("name", "scope"))
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > runs.MAX_NAME:
            raise QueryError("name", f"name must be a non-empty string of at most {runs.MAX_NAME} characters")
        try:
            scope = run_stats.validate_scope(body.get("scope"))
        except run_stats.ScopeError as exc:
            raise QueryError(exc.field, str(exc), list(run_stats.SCOPE_FIELDS)) from None
    except QueryError as exc:
        return web.json_response(exc.as_json(), status=400)
    store = request.app[STORE]
    try:
        run = await store.write(store.transaction, runs.create, name.strip(), request.app[COLLECTOR].clock(), scope)
    except runs.RunConflict as exc:
        return error(409, str(exc), "conflict")
    except duckdb.Error as exc:
        return unavailable(exc)
    return web.json_response(run, status=201)


async def run_action(request: web.Request) -> web.Response:
    """``POST /api/runs/{id}/pause|resume|end``: the run after it; 409 naming its state when not allowed."""
    action = request.match_info["action"]
    if action not in run_stats.ACTIONS:
        return web.json_response(
            QueryError("action", f"unknown action {action!r}", run_stats.ACTIONS).as_json(), status=400
        )
    store, rid = request.app[STORE], _run_id(request)
    try:
        run = await store.write(store.transaction, runs.act, rid, action, request.app[COLLECTOR].clock())
    except runs.RunNotFound:
        return error(404, f"no run {rid}", "not_found")
    except run_stats.TransitionError as exc:
        return error(409, str(exc), "conflict", run_status=exc.status)
    except duckdb.Error as exc:
        return unavailable(exc)
    return web.json_response(run)


async def _run_with_stats(request: web.Request, rid: int) -> dict[str, Any] | None:
    now = request.app[COLLECTOR].clock()

    def read(cur):
        run = runs.get(cur, rid, now)
        if run is not None:
            run["stats"] = run_stats.summarize(runs.stat_groups(cur, rid), run["wall_time_s"])
            run["stats"]["distributions"] = runs.distributions(cur, rid)
        return run

    return await request.app[STORE].read(read)


async def run_detail(request: web.Request) -> web.Response:
    """A run with its stats; ``?what_if=MODEL`` adds its tokens priced at MODEL."""
    try:
        check_known(request.query, ("what_if",))
    except QueryError as exc:
        return web.json_response(exc.as_json(), status=400)
    rid = _run_id(request)
    try:
        run = await _run_with_stats(request, rid)
    except duckdb.Error as exc:
        return unavailable(exc)
    if run is None:
        return error(404, f"no run {rid}", "not_found")
    model = request.query.get("what_if")
    if model:
        run["what_if"] = _what_if(request.app[PRICES], run["stats"], model)
    return web.json_response(run)


async def run_compare(request: web.Request) -> web.Response:
    """``?a=ID&b=ID``: both runs with stats, and per metric a, b, b - a and b / a."""
    q = request.query
    try:
        check_known(q, ("a", "b"))
        ids = []
        for name in ("a", "b"):
            value = number_param(q, name, 1, 2**31 - 1, integer=True)
            if value is None:
                raise QueryError(name, f"{name} is required: a run id", ["1.."])
            ids.append(int(value))
    except QueryError as exc:
        return web.json_response(exc.as_json(), status=400)
    try:
        a, b = [await _run_with_stats(request, rid) for rid in ids]
    except duckdb.Error as exc:
        return unavailable(exc)
    if a is None or b is None:
        return error(404, f"no run {ids[0] if a is None else ids[1]}", "not_found")
    return web.json_response({"a": a, "b": b, "metrics": run_stats.compare(a["stats"], b["stats"])})


async def run_requests(request: web.Request) -> web.Response:
    """``GET /api/runs/{id}/requests?limit=&offset=``: the run's requests (in its intervals and
    scope), newest first, as search summary rows: ``{"requests", "total", "limit", "offset"}``."""
    q = request.query
    try:
        check_known(q, ("limit", "offset"))
        limit = int(number_param(q, "limit", 1, search.MAX_LIMIT, integer=True) or 100)
        offset = int(number_param(q, "offset", 0, 10**9, integer=True) or 0)
    except QueryError as exc:
        return web.json_response(exc.as_json(), status=400)
    rid = _run_id(request)
    plan = search.SearchPlan(runs.in_run_sql("spans"), [rid], "start_time DESC, request_id DESC", limit, offset)
    now = request.app[COLLECTOR].clock()

    def read(cur: Any) -> dict[str, Any] | None:
        return search.fetch_page(cur, plan) if runs.get(cur, rid, now) is not None else None

    try:
        body = await request.app[STORE].read(read)
    except duckdb.Error as exc:
        return unavailable(exc)
    if body is None:
        return error(404, f"no run {rid}", "not_found")
    return web.json_response(body)


async def pricing_view(request: web.Request) -> web.Response:
    """The prices the what-if uses: ``{"models": [{"model", "input", "output", ...}], "path"}``."""
    table = request.app[PRICES]
    return web.json_response(
        {"models": sorted((p.as_dict() for p in table.models()), key=lambda p: p["model"]), "path": table.path}
    )


def load_prices(path: str | None) -> PriceTable:
    """The pricing table for what-if totals (``--pricing``, else the packaged one); a file that
    cannot be used is a ``SettingsError`` (one line at start), as for the proxy."""
    try:
        return PriceTable.load(path)
    except PricingError as exc:
        raise SettingsError(str(exc)) from None


def _what_if(table: PriceTable, stats: dict[str, Any], model: str) -> dict[str, Any]:
    return run_stats.what_if(stats, model, table.what_if, known=table.price_for(model) is not None)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/runs", runs_list)
    app.router.add_post("/api/runs", run_start)
    app.router.add_get("/api/runs/compare", run_compare)
    app.router.add_get(r"/api/runs/{id:\d{1,9}}", run_detail)
    app.router.add_get(r"/api/runs/{id:\d{1,9}}/requests", run_requests)
    app.router.add_post(r"/api/runs/{id:\d{1,9}}/{action}", run_action)
    app.router.add_get("/api/pricing", pricing_view)
