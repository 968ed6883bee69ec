"""Small component builders every page uses, in a leaf module.

``layout.page`` assembles the pages from ``sessions_page``, ``runs_page`` and
``playground_page``; were these helpers in ``layout``, each page module would import
``layout`` back, and the page modules and the frame could not be read one without the other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from dash import html

log = logging.getLogger("tokentail.dashboard")

# The request statuses, as the filters list them.
STATUSES = [("in_flight", "In flight"), ("ok", "OK"), ("error", "Error"), ("cancelled", "Cancelled")]


def data(**attrs: str | None) -> dict[str, Any]:
    """HTML ``data-*`` attributes for a component: ``**data(tt_action="x")`` renders ``data-tt-action="x"``.

    Dash's typed component signatures take these only through ``**kwargs``; a literal dict of
    strings unpacked into the call would also have to fit every typed keyword parameter.
    """
    return {"data-" + name.replace("_", "-"): value for name, value in attrs.items()}


def empty_state(title: str, *lines: Any, code: str | None = None, extra_class: str = "") -> html.Div:
    children: list[Any] = [html.Div(title, className="tt-empty-title")]
    children += [html.P(line, className="tt-empty-text") for line in lines]
    if code:
        children.append(html.Pre(code, className="tt-empty-code"))
    return html.Div(className=f"tt-empty {extra_class}".strip(), children=children)


def guard(log_what: str, fallback: Callable[[], Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run a page callback; on an unexpected error log it and show ``fallback`` (never a traceback)."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def inner(*args: Any) -> Any:
            try:
                return fn(*args)
            except Exception:
                log.exception("%s failed", log_what)
                return fallback()

        inner.__name__ = fn.__name__
        return inner

    return wrap


def oops() -> html.Div:
    """What a page shows when its callback failed."""
    return empty_state("Could not show this page", "See the dashboard's log for the reason.")
