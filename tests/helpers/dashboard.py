"""Dashboard test data: collector answers shaped like the real ones, a span row, a Reader
that answers from memory, and a walk over Dash component trees."""

from __future__ import annotations

from tokentail.dashboard.queries import Reader, SourceError

__all__ = ["SPAN", "T0", "FakeReader", "metrics_response", "walk"]

T0 = 1_700_000_000.0


def metrics_response(groups: dict[str, dict], n: int = 3, step: float = 5.0) -> dict:
    """An /api/metrics answer shaped like the collector's (only the keys the dashboard reads)."""
    return {
        "range": "5m",
        "by": "variant",
        "step": step,
        "resolution": "5s",
        "start": T0,
        "end": T0 + n * step,
        "timestamps": [T0 + i * step for i in range(n)],
        "units": {"request_rate": "req/s"},
        "groups": [
            {"name": name, "metrics": g.get("metrics", {}), "summary": g.get("summary", {})}
            for name, g in groups.items()
        ],
    }


SPAN = {
    "request_id": "r-1",
    "trace_id": "ab" * 16,
    "start_time": T0,
    "variant": "canary",
    "model": "gpt-x",
    "response_model": "gpt-x-2024",
    "endpoint": "/chat/completions",
    "stream": True,
    "status": "ok",
    "http_status": 200,
    "input_tokens": 12,
    "output_tokens": 34,
    "cached_input_tokens": 0,
    "usage_source": "reported",
    "ttft_ms": 210.0,
    "latency_ms": 900.0,
    "output_tps": 40.0,
    "finish_reasons": ["stop"],
    "input_messages": [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "What is a ring buffer?"}]},
    ],
    "output_messages": [
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "content": "think"},
                {"type": "text", "content": "A fixed-size queue."},
                {"type": "tool_call", "id": "call_1", "name": "lookup", "arguments": {"q": "ring"}},
            ],
            "finish_reason": "stop",
        }
    ],
    "system_instructions": None,
}


class FakeReader(Reader):
    """A Reader whose collector answers from memory (or is down)."""

    def __init__(self, config, down=False, sessions=None, requests=None, legacy=False):
        super().__init__(config)
        self.down = down
        self.legacy = legacy  # a collector from before /api/spans?received_since
        self.calls = []
        self.timeouts = []  # each call's own timeout (None: the configured one)
        self.sessions_rows = sessions or []
        self.request_rows = requests or []

    def _collector(self, path, params=None, timeout=None):
        self.calls.append((path, params))
        self.timeouts.append(timeout)
        if self.down:
            raise SourceError("http://127.0.0.1:8788/api/metrics is unreachable (Connection refused)")
        if path == "/api/metrics":
            return metrics_response(
                {
                    "production": {"summary": {"requests": 5}, "metrics": {"request_rate": [1, 2, 3]}},
                    "canary": {"summary": {"requests": 2}},
                }
            )
        if path == "/api/status":
            return {
                "variants": [
                    {"name": "production", "up": True, "targets_up": 1, "targets": 1, "current": {"in_flight": 2}}
                ]
            }
        if path == "/api/spans":
            if self.legacy and "received_since" in (params or {}):
                raise SourceError("unknown parameter: received_since", status=400)
            return {"spans": [SPAN]} if self.legacy else {"spans": [SPAN], "received_before": 1700000100.25}
        if path == "/api/sessions":
            return {"sessions": self.sessions_rows, "total": len(self.sessions_rows)}
        if path == "/api/requests/search":
            return {"requests": self.request_rows, "total": len(self.request_rows)}
        raise SourceError("404", status=404)

    def live_request(self, request_id):
        return None, []


def walk(node):
    """Every component in a Dash component tree."""
    yield node
    children = getattr(node, "children", None)
    for c in children if isinstance(children, list) else [children]:
        if hasattr(c, "to_plotly_json"):
            yield from walk(c)
