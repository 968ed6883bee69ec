"""A run's scope in the dashboard: the form that starts a scoped run, the form's values as the
collector's ``scope`` (``collector/run_stats.validate_scope`` checks it again), and a scope
in words. Pure: no I/O.

The form's inputs are plain text: ``tags`` takes a comma-separated list (as the
``X-Tokentail-Tags`` header does) and a request must carry every tag listed; every other
field is one exact value. Empty fields leave the scope open on that field; an empty form
starts a run of all traffic.
"""

from __future__ import annotations

from typing import Any

from dash import dcc, html

from ._components import data

# field -> (label, placeholder): the collector's scope fields, in the form's order.
FIELDS: dict[str, tuple[str, str]] = {
    "tags": ("Tags", "eval, prompt-v2 (X-Tokentail-Tags: all of them)"),
    "user": ("User", "the request body's user"),
    "session": ("Session", "session id"),
    "variant": ("Variant", "production"),
    "model": ("Model", "gpt-4o"),
    "key_fingerprint": ("Key", "key fingerprint, as the Live page shows it"),
}
ALL_TRAFFIC = "includes all traffic"
MAX_VALUE = 200  # characters, as the collector allows
MAX_TAGS = 20


class ScopeFormError(ValueError):
    """A form value the collector would refuse, said in the form's words."""


def input_id(field: str) -> str:
    return f"runs-scope-{field.replace('_', '-')}"


def scope_from_form(values: object) -> dict[str, Any] | None:
    """The form's raw strings (``{"tags": "a, b", "user": " bob "}``) as the collector's scope,
    or None when every field is empty (a run of all traffic)."""
    if values is None:
        return None
    if not isinstance(values, dict):
        raise ScopeFormError("the scope must be an object of text fields")
    out: dict[str, Any] = {}
    for field, raw in values.items():
        if field not in FIELDS:
            raise ScopeFormError(f"unknown scope field {field!r}")
        if raw is None:
            continue
        if not isinstance(raw, str):
            raise ScopeFormError(f"{FIELDS[field][0]}: send text")
        if field == "tags":
            tags = sorted({t.strip() for t in raw.split(",") if t.strip()})
            if len(tags) > MAX_TAGS:
                raise ScopeFormError(f"Tags: at most {MAX_TAGS}")
            if any(len(t) > MAX_VALUE for t in tags):
                raise ScopeFormError(f"Tags: each at most {MAX_VALUE} characters")
            if tags:
                out["tags"] = tags
            continue
        value = raw.strip()
        if len(value) > MAX_VALUE:
            raise ScopeFormError(f"{FIELDS[field][0]}: at most {MAX_VALUE} characters")
        if value:
            out[field] = value
    return out or None


def describe(scope: dict[str, Any] | None) -> str:
    """``tags #eval, #v2 · user bob · model gpt-4o``; ``includes all traffic`` for no scope."""
    if not scope:
        return ALL_TRAFFIC
    parts = []
    for field in FIELDS:
        value = scope.get(field)
        if not value:
            continue
        if field == "tags":
            tags = value if isinstance(value, list) else [value]
            parts.append(("tag " if len(tags) == 1 else "tags ") + ", ".join(f"#{t}" for t in tags))
        else:
            parts.append(f"{FIELDS[field][0].lower()} {value}")
    return " · ".join(parts) if parts else ALL_TRAFFIC


def scope_line(scope: dict[str, Any] | None) -> html.Div:
    """A run's scope as its page and the list show it (``data-scope`` says which kind)."""
    text = describe(scope)
    return html.Div(
        ("Scope: " + text) if scope else "Unscoped: " + text,
        className="tt-run-scope tt-muted",
        **data(scope="scoped" if scope else "all"),
    )


def scope_form(variants: list[str]) -> html.Details:
    """The Runs page's optional scope: one text input per field (variants offered as a list)."""
    inputs = []
    for field, (label, placeholder) in FIELDS.items():
        extra: dict[str, Any] = {"list": "runs-scope-variants"} if field == "variant" else {}
        inputs.append(
            html.Label(
                className="tt-scope-field",
                children=[
                    html.Span(label, className="tt-scope-label"),
                    dcc.Input(
                        id=input_id(field),
                        type="text",
                        placeholder=placeholder,
                        className="tt-input",
                        maxLength=MAX_VALUE * (MAX_TAGS if field == "tags" else 1),
                        autoComplete="off",
                        **extra,
                    ),
                ],
            )
        )
    return html.Details(
        id="runs-scope",
        className="tt-card tt-runs-scope",
        children=[
            html.Summary("Scope (optional): record only matching requests"),
            html.P(
                "A request is recorded when it matches every field filled in; leave them all empty to "
                "record all traffic through every proxy.",
                className="tt-muted tt-small",
            ),
            html.Div(className="tt-scope-grid", children=inputs),
            html.Datalist(id="runs-scope-variants", children=[html.Option(value=v) for v in variants]),
        ],
    )
