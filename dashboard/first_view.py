"""A page's first screen, rendered on the server into the HTML the browser asked for.

Dash draws nothing until its scripts have run, its layout and callbacks have arrived and
the page's first callbacks have answered: with 10,000 sessions the Sessions page's rows
appeared ~2 s after navigation, most of it Dash's boot. For the Sessions list the HTML now
carries that first screen (the frame, the filters a link chose, the first page of rows)
as static markup in ``#tt-first``, over the app until the app's own list is drawn;
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

from . import layout, sessions_page, static_html
from .config import DashboardConfig
from .queries import Reader, SourceError

log = logging.getLogger("tokentail.dashboard")

TIMEOUT = 0.5  # seconds the HTML may wait for the collector's first page


def render(config: DashboardConfig, reader: Reader, path: str, search: str, now: float) -> str | None:
    """The first view's HTML for ``path`` (``search``: the query string), or None where the
    app draws the page alone (not a list page, no collector, the collector did not answer)."""
    if path != "/sessions" or not config.collector:
        return None
    filters = sessions_page.filters_from_search(search)
    try:
        rows, total = reader.sessions_page(
            timeout=min(config.timeout, TIMEOUT), **filters, limit=sessions_page.PAGE_SIZE
        )
    except SourceError:
        return None
    except Exception:
        log.exception("the Sessions page's first view failed")
        return None
    table, status = sessions_page.list_answer(rows, total, 0, now)
    body = sessions_page.list_page(config, table=table, status=status, values=filters)
    return wrap("sessions", [layout.header(config, active="sessions"), _main(body)])


def _main(body: list[Any]) -> html.Main:
    return html.Main(className="tt-main", children=html.Section(className="tt-page", children=body))


def wrap(page: str, children: list[Any]) -> str:
    """``#tt-first``: what ``assets/tokentail_first.js`` looks for, and removes once ``page``'s
    list is drawn by the app."""
    inner = static_html.render(html.Div(className="tt-app", children=children))
    return f'<div id="tt-first" class="tt-first" data-page="{escape(page)}" aria-busy="true">{inner}</div>'
