"""Small component builders every page uses, in a leaf module.

``layout.page`` assembles the pages from ``sessions_page``, ``runs_page`` and
``playground_page``; were these helpers in ``layout``, each page module would import
``layout`` back, and the page modules and the frame could not be read one without the other.
"""

from __future__ import annotations

from typing import Any

from dash import html


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
