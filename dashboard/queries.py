"""The dashboard's data: reads from the collector and the proxies, and their reshaping.

``Reader`` is the only I/O here: short JSON GETs with the read token in an
``Authorization`` header (never in a URL the page could show), each failure turned
into a ``SourceError`` with a one-line reason. Everything else is pure and takes the
JSON those endpoints return: series for the charts, cards per variant, the per-model
table, a stored span as a live-list row, and one view of a request from whatever
knows it (a proxy's memory while it streams, the collector once stored).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ._messages import (
    args_text,
    as_list,
    message_from_openai,
    message_from_parts,
    messages_from_prompt,
    parts_text,
    prompt_preview,
)
from .config import DashboardConfig, display_url

__all__ = [
    "Reader",
    "SourceError",
    "get_json",
    "history_rows",
    "message_from_openai",
    "message_from_parts",
    "messages_from_prompt",
    "prompt_preview",
    "request_view",
    "series",
    "span_row",
]

RANGES = ("5m", "15m", "1h", "6h", "24h", "7d")
DEFAULT_RANGE = "15m"
HISTORY_LIMIT = 200
PREVIEW_CHARS = 600  # completion text kept on a history row (the detail page has it all)
_MAX_BODY = 32 << 20
# No proxy from the environment: the sources are on addresses the user gave, often loopback.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SourceError(Exception):
    """A source that could not be read; ``str()`` is one line fit for a banner."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# --- I/O ------------------------------------------------------------------------------


def get_json(url: str, *, token: str | None = None, timeout: float = 3.0) -> Any:
    """GET ``url`` as JSON; ``SourceError`` with a short reason on any failure."""
    headers = {"Accept": "application/json", "User-Agent": "tokentail-dashboard"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    shown = display_url(url)
    try:
        with _OPENER.open(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
            body = resp.read(_MAX_BODY)
    except urllib.error.HTTPError as exc:
        raise SourceError(f"{shown} answered {exc.code}: {_error_message(exc)}", status=exc.code) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SourceError(f"{shown} is unreachable ({_short(reason)})") from None
    try:
        return json.loads(body)
    except ValueError:
        raise SourceError(f"{shown} did not answer JSON") from None


def _short(reason: Any) -> str:
    text = str(getattr(reason, "strerror", None) or reason).strip() or type(reason).__name__
    return text.splitlines()[0][:160]


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read(65536) or b"{}")
        msg = body.get("error", {}).get("message") if isinstance(body, dict) else None
    except (ValueError, AttributeError, OSError):
        msg = None
    return _short(msg or exc.reason or "error")


@dataclass
class Reader:
    """Reads the collector and the proxies named in ``config``."""

    config: DashboardConfig
    fetch: Any = field(default=get_json)  # tests inject a fake

    def _get(self, base: str, path: str, params: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v not in (None, "")})
        url = f"{base}{path}" + (f"?{query}" if query else "")
        return self.fetch(url, token=self.config.read_token, timeout=timeout or self.config.timeout)

    def _collector(self, path: str, params: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        if not self.config.collector:
            raise SourceError("no collector configured (--collector URL)")
        return self._get(self.config.collector, path, params, timeout)

    def metrics(self, rng: str, by: str = "variant", model: str | None = None) -> dict[str, Any]:
        return self._collector("/api/metrics", {"range": rng, "by": by, "model": model or None})

    def status(self) -> dict[str, Any]:
        return self._collector("/api/status")

    def spans(self, since: float | None = None, limit: int = HISTORY_LIMIT, **filters: Any) -> list[dict[str, Any]]:
        """Stored spans, newest first; ``filters`` are /api/spans parameters (session, user, tag, key, run...)."""
        body = self._collector("/api/spans", {"since": since, "limit": limit, **filters})
        return list(body.get("spans") or []) if isinstance(body, dict) else []

    def history(
        self, since: float | None = None, limit: int = HISTORY_LIMIT, received_since: float | None = None
    ) -> tuple[list[dict[str, Any]], float | None]:
        """The Live page's history: the newest spans (``since``: started from then on), or with
        ``received_since`` those the collector received from then on, oldest received first;
        and the collector's ``received_before``, the next call's ``received_since``. A collector
        from before receipt paging refuses the parameter (400): then the spans that started in
        the 30 s before it, and None (the page pages by start time, as it did)."""
        params: dict[str, Any] = {"since": since, "limit": limit}
        if received_since is not None:
            params = {"received_since": received_since, "limit": limit}
        try:
            body = self._collector("/api/spans", params)
        except SourceError as exc:
            if exc.status != 400 or received_since is None:
                raise
            return self.spans(received_since - 30, limit), None
        if not isinstance(body, dict):
            return [], None
        before = body.get("received_before")
        return list(body.get("spans") or []), before if isinstance(before, (int, float)) else None

    def sessions(self, **filters: Any) -> list[dict[str, Any]]:
        body = self._collector("/api/sessions", filters)
        return list(body.get("sessions") or []) if isinstance(body, dict) else []

    def search(self, timeout: float | None = None, **params: Any) -> dict[str, Any]:
        """``/api/requests/search``: ``{"requests": [...], "total", "limit", "offset"}``;
        ``timeout`` instead of the configured one."""
        body = self._collector("/api/requests/search", params, timeout)
        return body if isinstance(body, dict) else {"requests": [], "total": 0}

    def sessions_page(self, timeout: float | None = None, **filters: Any) -> tuple[list[dict[str, Any]], int | None]:
        """A page of ``/api/sessions`` (``limit``, ``offset``) and the total (None from a
        collector that does not count them yet); ``timeout`` instead of the configured one."""
        try:
            body = self._collector("/api/sessions", filters, timeout)
        except SourceError as exc:
            # A collector from before paging refuses offset and q (400): its one list, unpaged.
            if exc.status != 400 or not ({"offset", "q"} & {k for k, v in filters.items() if v}):
                raise
            legacy = {k: v for k, v in filters.items() if k not in ("offset", "q")}
            body = self._collector("/api/sessions", {**legacy, "limit": 200}, timeout)
        if not isinstance(body, dict):
            return [], 0
        total = body.get("total")
        return list(body.get("sessions") or []), total if isinstance(total, int) else None

    def facets(self, since: float | None = None) -> dict[str, Any]:
        return self._collector("/api/facets", {"since": since})

    def runs(self) -> dict[str, Any]:
        return self._collector("/api/runs")

    def run(self, run_id: int, what_if: str | None = None) -> dict[str, Any] | None:
        try:
            return self._collector(f"/api/runs/{int(run_id)}", {"what_if": what_if})
        except SourceError as exc:
            if exc.status == 404:
                return None
            raise

    def run_requests(self, run_id: int, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        body = self._collector(f"/api/runs/{int(run_id)}/requests", {"limit": limit, "offset": offset})
        return body if isinstance(body, dict) else {"requests": [], "total": 0}

    def compare(self, a: int, b: int) -> dict[str, Any]:
        return self._collector("/api/runs/compare", {"a": int(a), "b": int(b)})

    def pricing(self) -> dict[str, Any]:
        return self._collector("/api/pricing")

    def span(self, request_id: str) -> dict[str, Any] | None:
        try:
            return self._collector(f"/api/spans/{urllib.parse.quote(request_id, safe='')}")
        except SourceError as exc:
            if exc.status == 404:
                return None
            raise

    def live_request(self, request_id: str) -> tuple[dict[str, Any] | None, list[str]]:
        """The request from the first proxy that holds it in memory; and what failed on the way."""
        errors: list[str] = []
        for p in self.config.proxies:
            try:
                return self._get(p.url, f"/api/requests/{urllib.parse.quote(request_id, safe='')}"), errors
            except SourceError as exc:
                if exc.status != 404:
                    errors.append(str(exc))
        return None, errors


# --- metrics: charts, cards, tables ---------------------------------------------------


@dataclass(frozen=True)
class Series:
    name: str  # the group: a variant or a model
    x: list[datetime]
    y: list[float | None]


def series(resp: dict[str, Any], metric: str, scale: float = 1.0) -> list[Series]:
    """One ``Series`` per group of an ``/api/metrics`` answer, local time on x, gaps as None."""
    xs = [datetime.fromtimestamp(t) for t in resp.get("timestamps") or []]
    out = []
    for g in resp.get("groups") or []:
        ys = (g.get("metrics") or {}).get(metric) or []
        ys = [None if v is None else v * scale for v in ys][: len(xs)]
        out.append(Series(str(g.get("name")), xs[: len(ys)], ys))
    return out


def has_data(resp: dict[str, Any] | None) -> bool:
    """True when some group had a request in the range."""
    if not resp:
        return False
    return any(((g.get("summary") or {}).get("requests") or 0) > 0 for g in resp.get("groups") or [])


def window(resp: dict[str, Any]) -> tuple[datetime, datetime] | None:
    if resp.get("start") is None or resp.get("end") is None:
        return None
    return datetime.fromtimestamp(resp["start"]), datetime.fromtimestamp(resp["end"])


def first_data_time(resp: dict[str, Any]) -> float | None:
    """The earliest timestamp at which any group has any value, or None."""
    ts = resp.get("timestamps") or []
    first = None
    for g in resp.get("groups") or []:
        for ys in (g.get("metrics") or {}).values():
            i = next((i for i, v in enumerate(ys or []) if v is not None and i < len(ts)), None)
            if i is not None and (first is None or ts[i] < first):
                first = ts[i]
    return first


def data_window(resp: dict[str, Any], min_span_s: float = 120.0) -> tuple[datetime, datetime] | None:
    """The chart's x range: the requested window, unless it is the default range and data
    starts late in it (a fresh stack's first minute would be squeezed at the right edge of
    15 m): then from a little before the first value, at least ``min_span_s`` wide. A range
    the user picked is shown whole."""
    if resp.get("start") is None or resp.get("end") is None:
        return None
    if resp.get("range") not in (None, DEFAULT_RANGE):
        return window(resp)
    start, end = float(resp["start"]), float(resp["end"])
    first = first_data_time(resp)
    if first is None or first - start < 0.25 * (end - start):
        return window(resp)
    shown = max(start, min(first - 0.1 * (end - first), end - min_span_s))
    return datetime.fromtimestamp(shown), datetime.fromtimestamp(end)


CARD_FIELDS = (
    # (key in the collector's values, label, unit)
    ("request_rate", "Requests", "req/s"),
    ("input_tokens_rate", "Tokens in", "tokens/s"),
    ("output_tokens_rate", "Tokens out", "tokens/s"),
    ("latency_p50_ms", "Latency p50", "ms"),
    ("latency_p95_ms", "Latency p95", "ms"),
    ("latency_p99_ms", "Latency p99", "ms"),
    ("ttft_p50_ms", "TTFT p50", "ms"),
    ("ttft_p95_ms", "TTFT p95", "ms"),
    ("output_tps", "Output speed", "tokens/s"),
    ("error_rate", "Errors", "ratio"),
    ("in_flight", "In flight", "requests"),
)


def variant_order(name: str) -> tuple:
    """production, then canary, then the rest by name: the usual comparison reads left to right."""
    return ({"production": 0, "canary": 1}.get(name, 2), name)


def variant_cards(metrics: dict[str, Any] | None, status: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Per variant: the range's summary values, with up/down and in-flight from the live status.

    Variants known only to the status (configured, no data yet) still get a card.
    """
    live = {v.get("name"): v for v in (status or {}).get("variants") or []}
    summaries = {g.get("name"): g.get("summary") or {} for g in (metrics or {}).get("groups") or []}
    cards = []
    for name in sorted(set(summaries) | set(live), key=variant_order):
        values = dict(summaries.get(name) or {})
        cur = (live.get(name) or {}).get("current") or {}
        if cur.get("in_flight") is not None:
            values["in_flight"] = cur["in_flight"]  # now, not the range's mean
        info = live.get(name)
        cards.append(
            {
                "name": name,
                "up": None if info is None else bool(info.get("up")),
                "targets": None if info is None else f"{info.get('targets_up', 0)}/{info.get('targets', 0)}",
                "requests": values.get("requests"),
                "values": {key: values.get(key) for key, _, _ in CARD_FIELDS},
            }
        )
    return cards


MODEL_COLUMNS = (
    ("requests", "Requests", "requests"),
    ("request_rate", "Req/s", "req/s"),
    ("input_tokens_rate", "In tok/s", "tokens/s"),
    ("output_tokens_rate", "Out tok/s", "tokens/s"),
    ("latency_p50_ms", "p50", "ms"),
    ("latency_p95_ms", "p95", "ms"),
    ("ttft_p50_ms", "TTFT p50", "ms"),
    ("output_tps", "Speed", "tokens/s"),
    ("error_rate", "Errors", "ratio"),
)


def model_rows(resp: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The per-model table: models with requests in the range, busiest first."""
    rows = []
    for g in (resp or {}).get("groups") or []:
        s = g.get("summary") or {}
        if not s.get("requests"):
            continue
        rows.append({"name": g.get("name"), **{k: s.get(k) for k, _, _ in MODEL_COLUMNS}})
    rows.sort(key=lambda r: (-(r.get("requests") or 0), str(r["name"])))
    return rows


def models_in(resp: dict[str, Any] | None) -> list[str]:
    return sorted(str(g.get("name")) for g in (resp or {}).get("groups") or [] if g.get("name"))


# --- requests: history rows and the detail view ----------------------------------------


def _finish(v: Any) -> str | None:
    lst = as_list(v)
    return str(lst[0]) if lst else None


def span_row(span: dict[str, Any]) -> dict[str, Any]:
    """A stored span as a live-list row (the shape ``assets/tokentail.js`` merges by id)."""
    inputs = [message_from_parts(m) for m in as_list(span.get("input_messages"))]
    outputs = [message_from_parts(m) for m in as_list(span.get("output_messages"))]
    text = "\n".join(m["text"] for m in outputs if m["text"])
    tools = [t for m in outputs for t in m["tool_calls"]]
    if not text and tools:
        text = ", ".join(f"{t['name']}(…)" for t in tools)
    return {
        "id": span.get("request_id") or span.get("id"),
        "time": span.get("start_time"),
        "variant": span.get("variant"),
        "model": span.get("model") or span.get("response_model"),
        "endpoint": span.get("endpoint"),
        "stream": span.get("stream"),
        "status": span.get("status") or "ok",
        "usage": {
            "input_tokens": span.get("input_tokens"),
            "output_tokens": span.get("output_tokens"),
            "cached_input_tokens": span.get("cached_input_tokens"),
            "source": span.get("usage_source"),
        },
        "ttft_ms": span.get("ttft_ms"),
        "latency_ms": span.get("latency_ms"),
        "output_tps": span.get("output_tps"),
        "finish_reason": _finish(span.get("finish_reasons")),
        "error": span.get("error_type"),
        "http_status": span.get("http_status"),
        "prompt_preview": prompt_preview(inputs)[:PREVIEW_CHARS],
        "text_preview": text[:PREVIEW_CHARS],
        "trace_id": span.get("trace_id"),
        "received_at": span.get("received_at"),  # the collector's receipt: the page's history cursor
        **attribution(span),
    }


def attribution(d: dict[str, Any]) -> dict[str, Any]:
    """Who and what a request was for, from a span (``user_id``) or a live event (``user``);
    ``cost_usd`` None is an unknown price (the page says "unknown", never $0)."""
    tags = d.get("tags")
    return {
        "session_id": d.get("session_id"),
        "user": d.get("user_id", d.get("user")),
        "tags": [str(t) for t in tags] if isinstance(tags, list) else [],
        "key_fingerprint": d.get("key_fingerprint"),
        "route": d.get("route"),
        "cost_usd": d.get("cost_usd"),
    }


def history_rows(spans: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = [span_row(s) for s in spans if isinstance(s, dict)]
    return [r for r in rows if r["id"]]


def _pick(*values: Any) -> Any:
    return next((v for v in values if v not in (None, "", [], {})), None)


_LIVE_BODY_KEYS = ("messages", "input", "prompt", "system", "instructions")
_SPAN_HIDDEN = ("input_messages", "output_messages", "system_instructions")


def request_view(live: dict[str, Any] | None, span: dict[str, Any] | None) -> dict[str, Any]:
    """One request as the detail page shows it, from a proxy's memory and/or the collector.

    While a request streams only the proxy knows it; once stored both may. The proxy's
    copy wins for text (it is what streamed); the stored span fills what memory lost.
    """
    live = live or {}
    span = span or {}
    found = bool(live or span)
    stored_in = [message_from_parts(m) for m in as_list(span.get("input_messages"))]
    sys_parts = as_list(span.get("system_instructions"))
    if sys_parts:
        stored_in.insert(
            0,
            {"role": "system", "text": parts_text(sys_parts), "tool_calls": [], "tool_call_id": None, "reasoning": ""},
        )
    stored_out = [message_from_parts(m) for m in as_list(span.get("output_messages"))]
    messages = messages_from_prompt(live) if live else stored_in
    usage = live.get("usage") or {}
    status = live.get("status") or span.get("status") or ("in_flight" if live else None)
    text = live.get("text") if live else "\n".join(m["text"] for m in stored_out if m["text"])
    tool_calls = []
    for tc in live.get("tool_calls") or []:
        fn = (tc.get("function") or {}) if isinstance(tc, dict) else {}
        tool_calls.append(
            {
                "id": tc.get("id") if isinstance(tc, dict) else None,
                "name": fn.get("name") or (tc.get("name") if isinstance(tc, dict) else None),
                "arguments": args_text(fn.get("arguments", tc.get("arguments") if isinstance(tc, dict) else None)),
            }
        )
    if not live:
        tool_calls = [t for m in stored_out for t in m["tool_calls"]]
    request_body = {k: live[k] for k in _LIVE_BODY_KEYS if k in live}
    if live:
        request_body = {"model": live.get("model"), **request_body, **(live.get("params") or {})}
    elif span:
        request_body = {
            "model": span.get("model"),
            "input_messages": span.get("input_messages"),
            "system_instructions": span.get("system_instructions"),
        }
    response = {k: v for k, v in span.items() if k not in _SPAN_HIDDEN} if span else {}
    if live:
        response = {
            k: live.get(k)
            for k in (
                "status",
                "http_status",
                "response_model",
                "finish_reason",
                "usage",
                "ttft_ms",
                "latency_ms",
                "output_tps",
                "error",
                "error_message",
                "truncated",
                "deltas",
            )
            if k in live
        }
    return {
        "id": _pick(live.get("id"), span.get("request_id")),
        "found": found,
        "in_memory": bool(live),
        "stored": bool(span),
        # Why there is no text: erased (tokentail erase), or captured in metadata mode.
        "content_erased": bool(live.get("content_erased") or span.get("content_erased_at")),
        "capture": live.get("capture") or "full",
        "status": status,
        "in_flight": status == "in_flight",
        "time": _pick(live.get("time"), span.get("start_time")),
        "variant": _pick(live.get("variant"), span.get("variant")),
        "model": _pick(live.get("model"), span.get("model")),
        "response_model": _pick(live.get("response_model"), span.get("response_model")),
        "endpoint": _pick(live.get("endpoint"), span.get("endpoint")),
        "stream": _pick(live.get("stream"), span.get("stream")),
        "trace_id": _pick(live.get("trace_id"), span.get("trace_id")),
        **{k: _pick(a, b) for (k, a), b in zip(attribution(live).items(), attribution(span).values())},
        "ttft_ms": _pick(live.get("ttft_ms"), span.get("ttft_ms")),
        "latency_ms": _pick(live.get("latency_ms"), span.get("latency_ms")),
        "output_tps": _pick(live.get("output_tps"), span.get("output_tps")),
        "usage": {
            "input_tokens": _pick(usage.get("input_tokens"), span.get("input_tokens")),
            "output_tokens": _pick(usage.get("output_tokens"), span.get("output_tokens")),
            "cached_input_tokens": _pick(usage.get("cached_input_tokens"), span.get("cached_input_tokens")),
            "source": _pick(usage.get("source"), span.get("usage_source")),
        },
        "finish_reason": _pick(live.get("finish_reason"), _finish(span.get("finish_reasons"))),
        "http_status": _pick(live.get("http_status"), span.get("http_status")),
        "error": _pick(live.get("error"), span.get("error_type")),
        "error_message": live.get("error_message"),
        "truncated": bool(live.get("truncated")),
        "messages": messages,
        "completion": text or "",
        "reasoning": live.get("reasoning") or "".join(m["reasoning"] for m in stored_out),
        "tool_calls": tool_calls,
        "params": live.get("params") or {},
        "request_json": request_body,
        "response_json": response,
    }
