"""Pure helpers behind the live hub (``live.py``): event and summary payloads, SSE encoding.

Builds the ``request.end`` data and the ``/api/requests`` summaries, previews the prompt
and completion, matches a search needle, estimates a value's memory, caps text at a UTF-8
byte budget and encodes one SSE message. No state, no I/O, no asyncio: ``live.py`` keeps
the entries and the pub/sub and calls these.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .record import CANCELLED, ERROR, OK, RequestRecord
from .redact import Redactor

if TYPE_CHECKING:
    from .live import _Entry

SSE_HEARTBEAT = b": ping\n\n"  # a comment line; the HTTP layer sends it every 15 s
PREVIEW_CHARS = 200


def _end_data(rec: RequestRecord, red: Redactor) -> dict[str, Any]:
    status = rec.status
    if status not in (OK, ERROR, CANCELLED):  # on_end means the request is over
        status = ERROR if rec.error else OK
    return {
        "id": rec.id,
        "status": status,
        "usage": rec.usage.as_dict(),
        "latency_ms": rec.latency_ms,
        "ttft_ms": rec.ttft_ms,
        "output_tps": rec.output_tps,
        "finish_reason": rec.finish_reason,
        "error": rec.error,
        # An upstream error body may echo the key: redact it like any text.
        "error_message": red.redact_text(rec.error_message) if rec.error_message else None,
        "http_status": rec.http_status,
        "response_model": rec.response_model,
        "truncated": rec.truncated,
        "malformed": rec.malformed,  # the response had something the tap could not parse
        "cost_usd": rec.cost_usd,  # null: unknown (no price for the model, or usage unknown)
    }


def _summary(e: _Entry) -> dict[str, Any]:
    st, end = e.start, e.end or {}
    if e.text is not None:
        text = e.text
    else:  # in flight: decode only the head of the buffer
        text = bytes(e.buf[: PREVIEW_CHARS * 4]).decode("utf-8", "ignore")
    return {
        "id": st["id"],
        "time": st["time"],
        "variant": st["variant"],
        "model": st["model"],
        "endpoint": st["endpoint"],
        "stream": st["stream"],
        "status": e.status,
        "usage": end.get("usage"),
        "latency_ms": end.get("latency_ms"),
        "ttft_ms": e.ttft_ms,
        "output_tps": end.get("output_tps"),
        "finish_reason": end.get("finish_reason"),
        "error": end.get("error"),
        "truncated": e.truncated,
        "session_id": st["session_id"],
        "user": st["user"],
        "tags": st["tags"],
        "key_fingerprint": st["key_fingerprint"],
        "route": st["route"],
        "cost_usd": end.get("cost_usd"),
        "text_preview": _preview(text),
        "prompt_preview": _preview(_prompt_preview(st)),
    }


def _preview(s: str) -> str:
    return s if len(s) <= PREVIEW_CHARS else s[: PREVIEW_CHARS - 1] + "…"


def _content_text(content: Any) -> str:
    """The text of a message ``content``: a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") if isinstance(p, dict) else p for p in content]
        return " ".join(p for p in parts if isinstance(p, str))
    return ""


def _prompt_preview(prompt: dict[str, Any]) -> str:
    """The last user turn (chat, Responses input) or the completion prompt."""
    for key in ("messages", "input", "prompt"):
        value = prompt.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, list) and value:
            if all(isinstance(v, str) for v in value):
                return str(value[0])
            msgs = [m for m in value if isinstance(m, dict)]
            users = [m for m in msgs if m.get("role") == "user"] or msgs
            if users:
                return _content_text(users[-1].get("content"))
    return ""


def _strings(obj: Any) -> Iterator[str]:
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, str):
            yield o
        elif isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, (list, tuple)):
            stack.extend(o)


def _matches(e: _Entry, needle: str) -> bool:
    if needle in e.current_text().casefold():
        return True
    return any(needle in s.casefold() for s in _strings([e.start[k] for k in e.prompt_keys]))


def _approx_size(obj: Any) -> int:
    """Rough memory of a JSON-like value: string lengths plus a little per node."""
    total = 0
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, str):
            total += len(o) + 50
        elif isinstance(o, dict):
            total += 100
            stack.extend(o.values())
        elif isinstance(o, (list, tuple)):
            total += 60
            stack.extend(o)
        else:
            total += 24
    return total


def _cap(s: str, limit: int) -> tuple[str, bool]:
    """``s`` cut to at most ``limit`` UTF-8 bytes, and whether it was cut."""
    if len(s) * 4 <= limit:  # cheap: cannot be over
        return s, False
    if limit <= 0:
        return "", True
    raw = s.encode("utf-8", "replace")
    if len(raw) <= limit:
        return s, False
    return raw[:limit].decode("utf-8", "ignore"), True


def finite(obj: Any) -> Any:
    """A copy with NaN/inf replaced by None (JSON.parse rejects them)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def encode_sse(sse_id: str, event: str, data: dict[str, Any]) -> bytes:
    """One SSE message: ``id: ...\\nevent: ...\\ndata: <compact JSON>\\n\\n``.

    Compact JSON escapes newlines, so ``data`` is always one line; NaN/inf become
    null; characters UTF-8 cannot encode (lone surrogates) become ``?``.
    """
    try:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError:
        body = json.dumps(finite(data), ensure_ascii=False, separators=(",", ":"), default=str)
    return f"id: {sse_id}\nevent: {event}\ndata: {body}\n\n".encode("utf-8", "replace")
