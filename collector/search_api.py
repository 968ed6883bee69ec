"""History search routes: ``GET /api/requests/search`` and ``GET /api/requests/export``.

Thin handlers around ``search`` (plans and encoding are pure there). The export streams:
the ids of the result are read in order first (at most ``search.MAX_EXPORT``), then the rows
in pages of ``search.EXPORT_PAGE`` on the reader thread, each page encoded and written before
the next is read, so memory stays bounded by a page (plus the ids).
"""

from __future__ import annotations

import time

import duckdb
from aiohttp import web

from . import search
from ._http import STORE, unavailable
from .query import QueryError


async def requests_search(request: web.Request) -> web.Response:
    """``{"requests": [...summary rows], "total", "limit", "offset"}`` (see ``search``)."""
    try:
        plan = search.plan_search(request.query)
    except QueryError as exc:
        return web.json_response(exc.as_json(), status=400)
    try:
        body = await request.app[STORE].read(search.fetch_page, plan)
    except duckdb.Error as exc:
        return unavailable(exc)
    return web.json_response(body)


async def requests_export(request: web.Request) -> web.StreamResponse:
    """The search result as a CSV or JSONL download, at most ``MAX_EXPORT`` rows."""
    try:
        plan, fmt = search.plan_export(request.query)
    except QueryError as exc:
        return web.json_response(exc.as_json(), status=400)
    store = request.app[STORE]
    columns = search.export_columns(fmt)
    try:  # the ids before the headers: a database error is still a clean 503
        ids = await store.read(search.export_ids, plan)
        page = await store.read(search.fetch_by_ids, columns, ids[: search.EXPORT_PAGE])
    except duckdb.Error as exc:
        return unavailable(exc)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson; charset=utf-8",
            "Content-Disposition": f'attachment; filename="tokentail-requests-{stamp}.{fmt}"',
            "Cache-Control": "no-store",
        }
    )
    await resp.prepare(request)
    if fmt == "csv":
        await resp.write(search.csv_header().encode())
    encode = search.csv_rows if fmt == "csv" else search.jsonl_rows
    for start in range(0, len(ids), search.EXPORT_PAGE):
        if start:
            page = await store.read(search.fetch_by_ids, columns, ids[start : start + search.EXPORT_PAGE])
        await resp.write(encode(page).encode())
    await resp.write_eof()
    return resp


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/requests/search", requests_search)
    app.router.add_get("/api/requests/export", requests_export)
