"""The request detail's Replay panel and the side-by-side view of a request and its replay.

``panel`` sits under the request detail (``layout.page``), filled by ``register``'s callback
for the request on screen: the Replay controls (target variant, model or route; the button
is ``assets/tokentail_replay.js``, which POSTs ``/_tt/replay`` as the other actions do, then
opens the copy), what a replay sends (the captured, redacted prompt), and, when the request
is a replay or has been replayed, both side by side: tokens, TTFT, latency, cost and the
completions with a word diff (``replay.word_diff``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote

from dash import Dash, Input, Output, dcc, html, no_update

from . import _format as fmt
from ._components import data
from .config import DashboardConfig
from .queries import Reader, SourceError, request_view
from .replay import Refused, from_live, from_span, word_diff

PREFIX = "/request/"


def panel() -> html.Div:
    return html.Div(id="replay-panel", className="tt-replay")


def request_id(path: str | None) -> str | None:
    if not path or not path.startswith(PREFIX) or len(path) <= len(PREFIX):
        return None
    return unquote(path[len(PREFIX) :].split("/")[0])


def replayable(live: dict[str, Any] | None, span: dict[str, Any] | None) -> str | None:
    """None when the request can be replayed, else why not (the same rules as ``/_tt/replay``)."""
    try:
        if live and live.get("id"):
            from_live(live)
        elif span:
            from_span(span)
        else:
            return "the request is not held by a proxy or the collector"
    except Refused as exc:
        return str(exc)
    return None


def controls(rid: str, config: DashboardConfig, why_not: str | None) -> html.Div:
    variants = [p.name for p in config.proxies]
    return html.Div(
        className="tt-replay-controls",
        children=[
            html.H4("Replay"),
            html.P(
                "A replay sends the captured request again, through a proxy like any request: the "
                "redacted prompt (secrets stay replaced, inline media stays a placeholder) and its "
                "parameters. The copy is linked to this request both ways.",
                className="tt-muted",
            ),
            html.Div(
                className="tt-toolbar",
                children=[
                    html.Label(
                        [
                            "variant ",
                            html.Select(
                                [html.Option(v, value=v) for v in variants], id="replay-variant", className="tt-input"
                            ),
                        ]
                    ),
                    html.Label(
                        ["model ", dcc.Input(id="replay-model", placeholder="same model", className="tt-input")]
                    ),
                    html.Label(["route ", dcc.Input(id="replay-route", placeholder="optional", className="tt-input")]),
                    html.Button(
                        "Replay",
                        id="replay-send",
                        className="tt-btn",
                        disabled=why_not is not None,
                        title=why_not or "",
                        **data(tt_replay=rid),
                    ),
                ],
            ),
            html.P(f"Cannot replay: {why_not}", className="tt-warn", id="replay-refused") if why_not else None,
        ],
    )


def _cost(live: dict[str, Any] | None, span: dict[str, Any] | None) -> float | None:
    for src in (live, span):
        if src and src.get("cost_usd") is not None:
            return float(src["cost_usd"])
    return None


def _side(title: str, rid: str, v: dict[str, Any], cost: float | None) -> html.Div:
    usage = v["usage"]
    return html.Div(
        className="tt-side",
        children=[
            html.H5([title, " ", dcc.Link(rid[:8], href=PREFIX + quote(rid, safe=""))]),
            html.Div(f"{v['variant'] or '?'} · {v['model'] or '?'} · {v['status'] or '?'}", className="tt-muted"),
            html.Table(
                className="tt-table",
                children=[
                    html.Tr(
                        [
                            html.Td("tokens"),
                            html.Td(
                                f"{fmt.count(usage.get('input_tokens'))} → {fmt.count(usage.get('output_tokens'))}"
                            ),
                        ]
                    ),
                    html.Tr([html.Td("TTFT"), html.Td(fmt.ms(v["ttft_ms"]))]),
                    html.Tr([html.Td("latency"), html.Td(fmt.ms(v["latency_ms"]))]),
                    html.Tr([html.Td("cost"), html.Td(fmt.usd(cost))]),
                ],
            ),
        ],
    )


def diff_view(a: str, b: str) -> html.Pre:
    cls = {"=": "tt-diff-same", "-": "tt-diff-del", "+": "tt-diff-ins"}
    return html.Pre(
        [html.Span(t, className=cls[op]) for op, t in word_diff(a, b)], className="tt-diff", id="replay-diff"
    )


def side_by_side(
    original: tuple[str, dict[str, Any] | None, dict[str, Any] | None],
    copy: tuple[str, dict[str, Any] | None, dict[str, Any] | None],
) -> html.Div:
    (oid, olive, ospan), (cid, clive, cspan) = original, copy
    vo, vc = request_view(olive, ospan), request_view(clive, cspan)
    return html.Div(
        className="tt-replay-compare",
        id="replay-compare",
        children=[
            html.H4("Original and replay"),
            html.Div(
                className="tt-sides",
                children=[
                    _side("original", oid, vo, _cost(olive, ospan)),
                    _side("replay", cid, vc, _cost(clive, cspan)),
                ],
            ),
            html.P(
                "Completions, word by word (struck: only the original; marked: only the replay).", className="tt-muted"
            ),
            diff_view(vo["completion"], vc["completion"]),
        ],
    )


def _fetch(reader: Reader, rid: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    live, _ = reader.live_request(rid)
    try:
        span = reader.span(rid)
    except SourceError:
        span = None
    return (live if isinstance(live, dict) else None), span


def register(app: Dash, config: DashboardConfig, reader: Reader) -> None:
    @app.callback(Output("replay-panel", "children"), Input("url", "pathname"), Input("detail-tick", "data"))
    def show(path: str | None, _tick: Any) -> list[Any]:
        rid = request_id(path)
        if rid is None:
            return no_update  # type: ignore[return-value]
        try:
            live, span = _fetch(reader, rid)
        except SourceError:
            return []
        if not live and not span:
            return []
        out: list[Any] = [controls(rid, config, replayable(live, span))]
        replay_of = (live or {}).get("replay_of") or (span or {}).get("replay_of")
        replays = list((span or {}).get("replays") or [])
        try:
            if replay_of:
                out.append(html.P(["A replay of ", dcc.Link(replay_of, href=PREFIX + quote(replay_of, safe=""))]))
                out.append(side_by_side((replay_of, *_fetch(reader, replay_of)), (rid, live, span)))
            elif replays:
                out.append(
                    html.P(["Replayed as "] + [dcc.Link(r[:8] + " ", href=PREFIX + quote(r, safe="")) for r in replays])
                )
                out.append(side_by_side((rid, live, span), (replays[-1], *_fetch(reader, replays[-1]))))
        except SourceError:
            pass  # the other side is unavailable: the controls still show
        return out
