"""Dash components rendered to HTML on the server, for a page's first view (``first_view``).

Covers what the list pages are built from: ``dash.html`` elements, ``dcc.Link`` (a plain
link) and inert stand-ins for ``dcc.Input``, ``dcc.Dropdown`` and ``dcc.RadioItems`` (drawn
as they will look, working once the app has taken over). Stores, intervals and any other component render
nothing. Every text and attribute value is escaped (the lists hold what clients sent:
session ids, users, tags); ids are left out, because the app's own elements, which carry
them, are in the same document; links keep only same-site or http(s) targets.

Pure: no I/O, no Dash app needed.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

from dash.development.base_component import Component

# Elements with no end tag.
_VOID = frozenset(
    ["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"]
)
# Dash ``html`` props that become attributes as they are (besides data-*, aria-*).
_PLAIN = {"title": "title", "role": "role", "type": "type", "lang": "lang", "colSpan": "colspan", "rowSpan": "rowspan"}
_BOOLEAN = {"hidden": "hidden", "disabled": "disabled", "open": "open"}
# CSS properties React writes without a unit when given a number.
_UNITLESS = frozenset(["opacity", "zIndex", "flex", "flexGrow", "flexShrink", "fontWeight", "lineHeight", "order"])
_SAFE_HREF = re.compile(r"(?:/(?![/\\])|\?|#|https?://)", re.IGNORECASE)
_UPPER = re.compile(r"[A-Z]")
# The dropdown's chevron, as Dash 4 draws it (so the stand-in looks like what replaces it).
_CHEVRON = (
    '<svg width="15" height="15" viewBox="0 0 15 15" aria-hidden="true"><path d="M4.2 6.2a.45.45 0 0 1 .6 0'
    'L7.5 8.9l2.7-2.7a.45.45 0 1 1 .6.6l-3 3a.45.45 0 0 1-.6 0l-3-3a.45.45 0 0 1 0-.6z" fill="currentColor"/></svg>'
)


def render(node: Any) -> str:
    """``node`` (a component, text, a number, a list of them, or None) as HTML."""
    if node is None or isinstance(node, bool):
        return ""  # React draws neither
    if isinstance(node, str | int | float):
        return escape(str(node), quote=False)
    if isinstance(node, list | tuple):
        return "".join(render(n) for n in node)
    if not isinstance(node, Component):
        return ""
    props: dict[str, Any] = node.to_plotly_json()["props"]
    kind = f"{node._namespace}.{node._type}"  # set on every generated class
    if node._namespace == "dash_html_components":
        return _element(node._type.lower(), props, props.get("children"))
    if kind == "dash_core_components.Link":
        return _element("a", props, props.get("children"))
    if kind == "dash_core_components.Input":
        return _input(props)
    if kind == "dash_core_components.Dropdown":
        return _dropdown(props)
    if kind == "dash_core_components.RadioItems":
        return _radio_items(props)
    return ""  # Store, Interval, Location, graphs: nothing to draw before the app


def _element(tag: str, props: dict[str, Any], children: Any, extra_class: str = "") -> str:
    attrs = _attributes(props, tag, extra_class)
    if tag in _VOID:
        return f"<{tag}{attrs}>"
    return f"<{tag}{attrs}>{render(children)}</{tag}>"


def _attributes(props: dict[str, Any], tag: str, extra_class: str = "") -> str:
    out: list[tuple[str, str | None]] = []
    cls = " ".join(c for c in (str(props.get("className") or ""), extra_class) if c)
    if cls:
        out.append(("class", cls))
    if isinstance(props.get("style"), dict) and props["style"]:
        out.append(("style", style_text(props["style"])))
    if tag == "a" and isinstance(props.get("href"), str) and _SAFE_HREF.match(props["href"]):
        out.append(("href", props["href"]))
    for name, value in props.items():
        if name in _PLAIN and value is not None and not isinstance(value, dict | list):
            out.append((_PLAIN[name], str(value)))
        elif name in _BOOLEAN and value:
            out.append((_BOOLEAN[name], None))
        elif name.startswith(("data-", "aria-")) and value is not None:
            out.append((name, str(value)))
    return "".join(f" {k}" if v is None else f' {k}="{escape(v, quote=True)}"' for k, v in out)


def style_text(style: dict[str, Any]) -> str:
    """A React style object as CSS declarations: ``{"minWidth": 3, "--chip": "#fff"}`` ->
    ``min-width:3px;--chip:#fff`` (custom properties as they are)."""
    parts = []
    for key, value in style.items():
        if value is None or isinstance(value, bool | dict | list):
            continue
        name = key if key.startswith("--") else _UPPER.sub(lambda m: "-" + m.group().lower(), key)
        if isinstance(value, int | float) and not key.startswith("--") and key not in _UNITLESS:
            text = f"{value}px"
        else:
            text = str(value)
        parts.append(f"{name}:{text}")
    return ";".join(parts)


def _input(props: dict[str, Any]) -> str:
    # dcc.Input puts its className on a wrapper around the input itself.
    inner = {"type": props.get("type") or "text", "disabled": True}
    attrs = _attributes(inner, "input")
    for name in ("placeholder", "value"):
        if props.get(name) not in (None, ""):
            attrs += f' {name}="{escape(str(props[name]), quote=True)}"'
    return f"<div{_attributes(_look(props), 'div')}><input{attrs}></div>"


def _dropdown(props: dict[str, Any]) -> str:
    value = props.get("value")
    values = value if isinstance(value, list) else [] if value in (None, "") else [value]
    labels = {o.get("value"): o.get("label") for o in props.get("options") or [] if isinstance(o, dict)}
    text = ", ".join(str(labels.get(v, v)) for v in values) or str(props.get("placeholder") or "")
    shown = _element("span", {"className": "tt-first-value" if values else "tt-first-placeholder"}, text)
    # Inside a wrapper as Dash 4 draws it: the wrapper is what a flex row sizes.
    box = f'<div{_attributes(_look(props), "div", "tt-first-select")} aria-disabled="true">{shown}{_CHEVRON}</div>'
    return f'<div class="dash-dropdown-wrapper">{box}</div>'


def _radio_items(props: dict[str, Any]) -> str:
    # A label per option around an inert radio input, the chosen one checked (the page's CSS
    # styles a segmented control by ``label:has(input:checked)``).
    labels = []
    for opt in props.get("options") or []:
        if not isinstance(opt, dict):
            continue
        checked = " checked" if opt.get("value") == props.get("value") else ""
        labels.append(f'<label><input type="radio" disabled{checked}>{render(opt.get("label"))}</label>')
    return f"<div{_attributes(_look(props), 'div')}>{''.join(labels)}</div>"


def _look(props: dict[str, Any]) -> dict[str, Any]:
    # What a control's wrapper keeps: how it looks, never its inputs' props (type, options...).
    return {k: v for k, v in props.items() if k in ("className", "style")}
