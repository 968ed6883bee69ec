"""A page's first screen, rendered on the server into the HTML the browser asked for.

Dash draws nothing until its scripts have run, its layout and callbacks have arrived and
the page's first callbacks have answered: with 10,000 sessions the Sessions and Requests
pages' rows appeared ~1.7–2 s after navigation, most of it Dash's boot. For those two lists
the HTML now carries the first screen (the frame, the filters a link chose, the first page
of rows) as static markup in ``#tt-first``, over the app until the app's own list is drawn;
``assets/tokentail_first.js`` then removes it. Its links are plain links; its controls are
drawn but wait for the app.

The collector is asked with a short timeout (``TIMEOUT``): a slow or unreachable collector
costs the page at most that, and then it loads as before, the app showing the error.
"""

from __future__ import annotations

import logging
from html import escape
from typing import Any

from dash import html

from . import layout, requests_page, sessions_page, static_html
from .config import DashboardConfig
from .queries import Reader, SourceError

log = logging.getLogger("tokentail.dashboard")

TIMEOUT = 0.5  # seconds the HTML may wait for the collector's first page


def render(config: DashboardConfig, reader: Reader, path: str, search: str, now: float) -> str | None:
    """The first view's HTML for ``path`` (``search``: the query string), or None where the
    app draws the page alone (not a list page, no collector, the collector did not answer)."""
    page = _PAGES.get(path)
    if page is None or not config.collector:
        return None
    try:
        body = page(config, reader, search, min(config.timeout, TIMEOUT), now)
    except SourceError:
        return None
    except Exception:
        log.exception("the first view of %s failed", path)
        return None
    name = path.strip("/")
    return wrap(name, [layout.header(config, active=name), _main(body)])


def _sessions(config: DashboardConfig, reader: Reader, search: str, timeout: float, now: float) -> list[Any]:
    filters = sessions_page.filters_from_search(search)
    rows, total = reader.sessions_page(timeout=timeout, **filters, limit=sessions_page.PAGE_SIZE)
    table, status = sessions_page.list_answer(rows, total, 0, now)
    return sessions_page.list_page(config, table=table, status=status, values=filters)


def _requests(config: DashboardConfig, reader: Reader, _search: str, timeout: float, now: float) -> list[Any]:
    # The page opens with its controls' defaults (it takes no filter from the URL): the same
    # search the app's first call makes.
    params = requests_page.search_params(dict(requests_page.DEFAULTS), now)
    body = reader.search(timeout=timeout, **params, limit=requests_page.PAGE_SIZE, offset=0)
    table, range_text, _ = requests_page.answer(body, 0)
    return requests_page.page(config, table=table, range_text=range_text)


_PAGES = {"/sessions": _sessions, requests_page.PATH: _requests}


def _main(body: list[Any]) -> html.Main:
    return html.Main(className="tt-main", children=html.Section(className="tt-page", children=body))


def wrap(page: str, children: list[Any]) -> str:
    """``#tt-first``: what ``assets/tokentail_first.js`` looks for, and removes once ``page``'s
    list is drawn by the app."""
    inner = static_html.render(html.Div(className="tt-app", children=children))
    return f'<div id="tt-first" class="tt-first" data-page="{escape(page)}" aria-busy="true">{inner}</div>'
