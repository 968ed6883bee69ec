"""The Playground (``/playground``): send a chat through a proxy and watch it stream.

Send posts the form to this dashboard's server (``actions.py``), which sends the chat
through the chosen proxy with ``stream: true`` (so no API key is in the page) and
answers with the request id. The page then shows that request's completion as it grows
from the live feed it already follows (``assets/tokentail_pages.js``): the request is in
Live like any other, tagged ``playground``.
"""

from __future__ import annotations

from typing import Any

from dash import dcc, html

from ._components import data, empty_state
from .config import DashboardConfig

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_SYSTEM = "You are a helpful assistant."


def page(config: DashboardConfig) -> list[Any]:
    if not config.proxies:
        return [
            html.Div(className="tt-toolbar", children=[html.H1("Playground", className="tt-h1")]),
            empty_state(
                "No proxy to send through",
                "Start the dashboard with --proxy URL: the playground sends its chats through a proxy, "
                "so they show up in Live like any request.",
            ),
        ]
    proxies = [{"label": p.name, "value": p.name} for p in config.proxies]
    form = html.Div(
        className="tt-card tt-play-form",
        children=[
            html.Div(
                className="tt-field-row",
                children=[
                    html.Div(
                        [
                            "Proxy",
                            dcc.RadioItems(
                                id="play-proxy",
                                options=proxies,
                                value=proxies[0]["value"],
                                inline=True,
                                className="tt-segmented",
                            ),
                        ],
                        className="tt-field",
                    ),
                    html.Label(
                        [
                            "Model",
                            dcc.Input(
                                id="play-model",
                                type="text",
                                value=DEFAULT_MODEL,
                                className="tt-input",
                                list="tt-play-models",
                                autoComplete="off",
                                maxLength=200,
                            ),
                        ],
                        className="tt-field",
                    ),
                    html.Label(
                        [
                            "Temperature",
                            dcc.Input(
                                id="play-temperature",
                                type="number",
                                value=0.7,
                                min=0,
                                max=2,
                                step=0.1,
                                className="tt-input tt-input-short",
                            ),
                        ],
                        className="tt-field",
                    ),
                ],
            ),
            # Filled by tokentail_pages.js with the models seen on the live feed.
            html.Datalist(id="tt-play-models"),
            html.Label(
                [
                    "System prompt",
                    dcc.Textarea(id="play-system", value=DEFAULT_SYSTEM, className="tt-textarea", rows=2),
                ],
                className="tt-field",
            ),
            html.Label(
                [
                    "Message",
                    dcc.Textarea(
                        id="play-message", value="", className="tt-textarea", rows=4, placeholder="Ask something…"
                    ),
                ],
                className="tt-field",
            ),
            html.Div(
                className="tt-field-row",
                children=[
                    html.Button(
                        "Send", id="play-send", className="tt-btn tt-btn-primary", **data(tt_action="play-send")
                    ),
                    html.Button(
                        "Cancel",
                        id="play-cancel",
                        className="tt-btn tt-btn-danger",
                        disabled=True,
                        **data(tt_action="play-cancel"),
                    ),
                    html.Span(id="tt-play-status", className="tt-muted"),
                ],
            ),
        ],
    )
    answer = html.Div(
        className="tt-card",
        children=[
            html.Div(
                className="tt-card-head",
                children=[
                    html.Span("Completion", className="tt-card-title"),
                    html.A(
                        id="tt-play-link",
                        className="tt-link tt-small",
                        href="#",
                        style={"display": "none"},
                        children="open in request detail →",
                    ),
                ],
            ),
            html.Pre(
                id="tt-play-text",
                className="tt-text tt-completion-full",
                **data(empty="Send a message: the completion appears here token by token."),
            ),
        ],
    )
    return [
        html.Div(className="tt-toolbar", children=[html.H1("Playground", className="tt-h1")]),
        html.P(
            "Sent through the proxy by this dashboard's server (the page holds no API key) and followed on the "
            "live feed: it shows up in Live too, tagged playground.",
            className="tt-muted tt-lead",
        ),
        html.Div(className="tt-detail-grid", children=[form, answer]),
    ]
