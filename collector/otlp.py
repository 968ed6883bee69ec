"""OTLP/HTTP trace bodies -> ``spans`` rows (pure, no I/O).

``decode`` reads an ``ExportTraceServiceRequest`` from protobuf or OTLP/JSON (whose
trace and span ids are hex, not base64) with ``opentelemetry-proto``;
``spans_to_rows`` keeps the GenAI spans (a ``gen_ai.*`` attribute or a tokentail
request id), pulls the columns the dashboard filters and merges on out of their
attributes (names in ``tokentail.semconv``), takes prompt and completion from the
attributes or the ``gen_ai.client.inference.operation.details`` event, and keeps
the rest as JSON. Secrets never reach a row: attributes whose key looks like a
credential are dropped and URL-valued attributes lose their query string.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterable
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from .. import semconv as sc
from .config import strip_url

PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf")
JSON_TYPE = "application/json"


class OTLPError(ValueError):
    """A body that is not an OTLP trace export; ``unsupported`` marks a wrong media type.

    ``reason`` names the kind for the receiver's counters: ``invalid``, ``too_deep``
    (JSON nested deeper than the parser takes) or ``unsupported_media_type``."""

    def __init__(self, message: str, *, unsupported: bool = False, reason: str = "invalid") -> None:
        super().__init__(message)
        self.unsupported = unsupported
        self.reason = "unsupported_media_type" if unsupported else reason


def decode(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """Parse an OTLP/HTTP trace export body (protobuf or JSON) or raise ``OTLPError``."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    req = ExportTraceServiceRequest()
    if ctype in PROTOBUF_TYPES:
        try:
            req.ParseFromString(body)
        except (DecodeError, ValueError) as exc:
            raise OTLPError(f"invalid OTLP protobuf: {exc}") from None
        return req
    if ctype == JSON_TYPE:
        try:
            obj = json.loads(body)
        except RecursionError:
            # Python's parser gives up near the interpreter's recursion limit (~1000 levels);
            # an export is a dozen levels deep (protobuf's own limit on messages is 100).
            raise OTLPError("invalid OTLP JSON: nested too deep", reason="too_deep") from None
        except ValueError as exc:  # UnicodeDecodeError included
            raise OTLPError(f"invalid OTLP JSON: {str(exc)[:200]}") from None
        if not isinstance(obj, dict):
            raise OTLPError(f"invalid OTLP JSON: expected an object, got {type(obj).__name__}")
        try:
            _ids_to_base64(obj)
            json_format.ParseDict(obj, req, ignore_unknown_fields=True)
        except (ValueError, TypeError, AttributeError, RecursionError, json_format.ParseError) as exc:
            raise OTLPError(f"invalid OTLP JSON: {str(exc)[:200]}") from None
        return req
    raise OTLPError(
        f"unsupported Content-Type {ctype or '(none)'!r}: send application/x-protobuf or application/json",
        unsupported=True,
    )


def encode_response(as_json: bool) -> tuple[bytes, str]:
    """An empty ``ExportTraceServiceResponse`` (full success) in the request's encoding."""
    if as_json:
        return b"{}", JSON_TYPE
    return ExportTraceServiceResponse().SerializeToString(), PROTOBUF_TYPES[0]


_HEX = re.compile(r"^[0-9a-fA-F]*$")
_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _ids_to_base64(obj: Any) -> None:
    """OTLP/JSON carries ids as hex; protobuf's JSON mapping expects base64 for bytes."""
    for rs in _get(obj, "resourceSpans", "resource_spans"):
        for ss in _get(rs, "scopeSpans", "scope_spans"):
            for span in _get(ss, "spans"):
                for holder in (span, *_get(span, "links")):
                    for k in _ID_KEYS:
                        v = holder.get(k) if isinstance(holder, dict) else None
                        if isinstance(v, str) and v and len(v) % 2 == 0 and _HEX.match(v):
                            holder[k] = base64.b64encode(bytes.fromhex(v)).decode()


def _get(obj: Any, *keys: str) -> list[Any]:
    if isinstance(obj, dict):
        for k in keys:
            v = obj.get(k)
            if isinstance(v, list):
                return v
    return []


# --- attributes ---------------------------------------------------------------------

_SECRET = re.compile(r"auth|key|token|secret|cookie|passw|credential", re.I)
# The last part of a token-count key (gen_ai.usage.input_tokens, max_tokens) is no secret...
_COUNT = re.compile(r"^[a-z0-9_]*_tokens$")
# ...unless it names one (api_tokens, access_tokens).
_COUNT_SECRET = re.compile(r"api|access|refresh|bearer|auth|key|secret|id_|csrf|xsrf", re.I)
_URL_VALUE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_DROP_KEYS = frozenset({"url.query", "http.request.query"})
# A keyed hash of the client's API key, made by the proxy to tell keys apart: no secret.
_NOT_SECRET = frozenset({sc.TT_KEY_FINGERPRINT})


def is_secret_key(key: str) -> bool:
    """True for attribute keys that may carry a credential (``*auth*``, ``*key*``, ``*token*``, ...)."""
    k = key.lower()
    if k in _DROP_KEYS:
        return True
    if k in _NOT_SECRET:
        return False
    if k.startswith("tokentail."):
        k = k[len("tokentail.") :]  # "tokentail" itself contains "token"
    head, _, last = k.rpartition(".")
    if _COUNT.match(last) and not _COUNT_SECRET.search(last):
        k = head
    return bool(_SECRET.search(k))


def clean_value(key: str, value: Any) -> Any:
    """Strip query strings from URL-valued strings; clean nested maps recursively."""
    if isinstance(value, str):
        if _URL_VALUE.match(value):
            return strip_url(value)
        lk = key.lower()
        if "?" in value and (lk.endswith(("url", ".target", ".path"))):
            return value.split("?", 1)[0]
        return value
    if isinstance(value, dict):
        return clean_attributes(value)
    if isinstance(value, list):
        return [clean_value(key, v) for v in value]
    return value


def clean_attributes(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes without secrets: see ``is_secret_key`` and ``clean_value``."""
    return {k: clean_value(k, v) for k, v in attrs.items() if not is_secret_key(k)}


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return getattr(v, kind)


def _attrs(kvs: Iterable[Any]) -> dict[str, Any]:
    return clean_attributes({kv.key: _value(kv.value) for kv in kvs})


# --- rows ---------------------------------------------------------------------------


def _text(v: Any) -> str | None:
    """Messages as JSON text: kept as sent when already a string."""
    if v is None:
        return None
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def _num(v: Any, cast: type = float) -> Any:
    try:
        return cast(v) if v is not None and v != "" else None
    except (TypeError, ValueError):
        return None


def _str(v: Any, limit: int = 200) -> str | None:
    if v is None or v == "":
        return None
    return str(v)[:limit]


def _cost(v: Any) -> float | None:
    """A cost in USD; anything else (absent, negative, not finite) is unknown, never zero."""
    c = _num(v)
    return c if c is not None and math.isfinite(c) and c >= 0 else None


def _tags(v: Any) -> list[str] | None:
    """Tags as a list of distinct non-empty strings (an exporter may send one comma-separated string)."""
    items = v if isinstance(v, list) else str(v).split(",") if v not in (None, "") else []
    out: list[str] = []
    for t in items:
        t = str(t).strip()[:100]
        if t and t not in out:
            out.append(t)
    return out[:50] or None


def _bool(v: Any) -> bool | None:
    if v is None:
        return None
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes")
    return bool(v)


def is_genai(attrs: dict[str, Any]) -> bool:
    return sc.TT_REQUEST_ID in attrs or any(k.startswith("gen_ai.") for k in attrs)


def spans_to_rows(req: ExportTraceServiceRequest, *, received_at: float) -> tuple[list[dict[str, Any]], int]:
    """Rows for the GenAI spans of ``req``, and how many other spans were skipped."""
    rows, skipped = [], 0
    for rs in req.resource_spans:
        resource = _attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                attrs = _attrs(span.attributes)
                if not is_genai(attrs):
                    skipped += 1
                    continue
                rows.append(_row(span, attrs, resource, received_at))
    return rows, skipped


def _row(span: Any, attrs: dict[str, Any], resource: dict[str, Any], received_at: float) -> dict[str, Any]:
    trace_id, span_id = span.trace_id.hex(), span.span_id.hex()
    start = span.start_time_unix_nano / 1e9
    end = span.end_time_unix_nano / 1e9 if span.end_time_unix_nano else None
    details: dict[str, Any] = {}
    events = []
    for ev in span.events:
        ev_attrs = _attrs(ev.attributes)
        if ev.name == sc.EVENT_OPERATION_DETAILS:
            details.update(ev_attrs)
        else:
            events.append({"name": ev.name, "time": ev.time_unix_nano / 1e9, "attributes": ev_attrs})
    take = attrs.pop
    status = take(sc.TT_STATUS, None)
    if status is None:
        status = "error" if span.status.code == Status.STATUS_CODE_ERROR else "ok"
    latency = _num(take(sc.TT_LATENCY_MS, None))
    if latency is None and end is not None:
        latency = round((end - start) * 1000.0, 3)
    finish = take(sc.RESPONSE_FINISH_REASONS, None)
    row = {
        "request_id": str(take(sc.TT_REQUEST_ID, None) or f"{trace_id}-{span_id}"),
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": span.parent_span_id.hex() or None,
        "name": span.name,
        "start_time": start,
        "end_time": end,
        "variant": take(sc.TT_VARIANT, None) or resource.get(sc.TT_VARIANT),
        "model": take(sc.REQUEST_MODEL, None),
        "response_model": take(sc.RESPONSE_MODEL, None),
        "operation": take(sc.OPERATION_NAME, None),
        "provider": take(sc.PROVIDER_NAME, None),
        "endpoint": take(sc.TT_ENDPOINT, None),
        "stream": _bool(take(sc.TT_STREAM, None)),
        "status": str(status),
        "http_status": _num(take(sc.HTTP_STATUS_CODE, None), int),
        "error_type": take(sc.ERROR_TYPE, None) or (span.status.message or None if status == "error" else None),
        "input_tokens": _num(take(sc.USAGE_INPUT_TOKENS, None), int),
        "output_tokens": _num(take(sc.USAGE_OUTPUT_TOKENS, None), int),
        "cached_input_tokens": _num(take(sc.USAGE_CACHE_READ_INPUT_TOKENS, None), int),
        "usage_source": take(sc.TT_USAGE_SOURCE, None),
        "ttft_ms": _num(take(sc.TT_TTFT_MS, None)),
        "latency_ms": latency,
        "output_tps": _num(take(sc.TT_OUTPUT_TPS, None)),
        "finish_reasons": json.dumps(finish if isinstance(finish, list) else [finish]) if finish else None,
        "session_id": _str(take(sc.TT_SESSION_ID, None)),
        "conversation_id": _str(take(sc.CONVERSATION_ID, None)),
        "cost_usd": _cost(take(sc.TT_COST_USD, None)),
        "user_id": _str(take(sc.TT_USER, None)),
        "tags": _tags(take(sc.TT_TAGS, None)),
        "key_fingerprint": _str(take(sc.TT_KEY_FINGERPRINT, None)),
        "route": _str(take(sc.TT_ROUTE, None)),
        "input_messages": _text(take(sc.INPUT_MESSAGES, None) or details.pop(sc.INPUT_MESSAGES, None)),
        "output_messages": _text(take(sc.OUTPUT_MESSAGES, None) or details.pop(sc.OUTPUT_MESSAGES, None)),
        "system_instructions": _text(take(sc.SYSTEM_INSTRUCTIONS, None) or details.pop(sc.SYSTEM_INSTRUCTIONS, None)),
        "received_at": received_at,
        "service_name": resource.get("service.name"),
    }
    for k in (sc.INPUT_MESSAGES, sc.OUTPUT_MESSAGES, sc.SYSTEM_INSTRUCTIONS):
        details.pop(k, None)
    if details:
        events.append({"name": sc.EVENT_OPERATION_DETAILS, "attributes": details})
    row["events"] = json.dumps(events, ensure_ascii=False) if events else None
    row["attributes"] = json.dumps(attrs, ensure_ascii=False, default=str)
    row["resource"] = json.dumps(resource, ensure_ascii=False, default=str)
    row["size_bytes"] = sum(
        len(row[k] or "") for k in ("input_messages", "output_messages", "system_instructions", "events", "attributes")
    )
    return row
