"""GenAI semantic-convention vocabulary shared by the metrics and span observers (pure).

Maps what the proxy knows (endpoint, upstream URL, the record's error code) onto the
OpenTelemetry GenAI names, and converts captured prompts/completions of the OpenAI Chat,
Completions and Responses APIs and of Anthropic Messages into the parts-based
``gen_ai.input.messages`` / ``gen_ai.output.messages`` /
``gen_ai.system_instructions`` structures. No I/O, no OpenTelemetry imports.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .record import CANCELLED, ERR_CONNECT, ERR_DISCONNECT, ERR_INCOMPLETE, ERR_STATUS, ERR_TIMEOUT, RequestRecord

# The opt-in token the GenAI SIG defined for OTEL_SEMCONV_STABILITY_OPT_IN: "emit the latest
# experimental version of GenAI conventions and do not emit the old one".
GENAI_OPT_IN = "gen_ai_latest_experimental"

# Endpoint label values (bounded): anything else is "other".
ENDPOINTS = ("/chat/completions", "/completions", "/responses", "/messages", "/embeddings", "/models")
_PREFIX_ENDPOINTS = ("/models/", "/responses/")

# gen_ai.operation.name of the inference endpoints; other endpoints are not GenAI operations.
_OPERATIONS = {
    "/chat/completions": "chat",
    "/responses": "chat",  # the OpenAI conventions file maps the Responses API to "chat"
    "/messages": "chat",
    "/completions": "text_completion",
    "/embeddings": "embeddings",
}

# Well-known gen_ai.provider.name values by upstream host (suffix match).
_PROVIDER_HOSTS = (
    ("api.openai.com", "openai"),
    ("openai.azure.com", "azure.ai.openai"),
    ("services.ai.azure.com", "azure.ai.inference"),
    ("api.anthropic.com", "anthropic"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    ("api.groq.com", "groq"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.deepseek.com", "deepseek"),
    ("api.x.ai", "x_ai"),
    ("api.perplexity.ai", "perplexity"),
    ("api.moonshot.ai", "moonshot_ai"),
    ("api.moonshot.cn", "moonshot_ai"),
    ("api.cohere.ai", "cohere"),
    ("api.cohere.com", "cohere"),
    ("amazonaws.com", "aws.bedrock"),
)

_ERROR_TYPES = {ERR_CONNECT, ERR_TIMEOUT, ERR_DISCONNECT, ERR_INCOMPLETE}

# Provider finish reasons -> the output-message enum (stop|length|content_filter|tool_call|error).
_FINISH = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "completed": "stop",
    "length": "length",
    "max_tokens": "length",
    "incomplete": "length",
    "tool_calls": "tool_call",
    "function_call": "tool_call",
    "tool_use": "tool_call",
    "content_filter": "content_filter",
    "refusal": "content_filter",
}


def parse_opt_in(value: str | None) -> bool:
    """True when ``OTEL_SEMCONV_STABILITY_OPT_IN`` (comma-separated) asks for the latest GenAI names."""
    if not value:
        return False
    return any(tok.strip().lower() == GENAI_OPT_IN for tok in value.split(","))


def endpoint_label(endpoint: str | None) -> str:
    """The bounded ``endpoint`` label: a known path below /v1, else ``other``."""
    if not endpoint:
        return "other"
    path = endpoint.split("?", 1)[0]
    if len(path) > 1:
        path = path.rstrip("/")
    if path in ENDPOINTS:
        return path
    for prefix in _PREFIX_ENDPOINTS:
        if path.startswith(prefix):
            return prefix[:-1]
    return "other"


def operation_name(endpoint: str | None) -> str | None:
    """``gen_ai.operation.name`` for an inference endpoint; None for the rest (e.g. /models)."""
    if not endpoint:
        return None
    path = endpoint.split("?", 1)[0]
    if len(path) > 1:
        path = path.rstrip("/")
    return _OPERATIONS.get(path)


def upstream_address(upstream_url: str) -> tuple[str | None, int | None]:
    """``server.address`` and ``server.port`` of the upstream (host only: never a path or query)."""
    try:
        parts = urlsplit(upstream_url)
        port = parts.port
    except ValueError:
        return None, None
    if port is None and parts.scheme in ("http", "https"):
        port = 443 if parts.scheme == "https" else 80
    return parts.hostname, port


def host_provider(host: str | None) -> str:
    """``gen_ai.provider.name`` from the upstream host.

    Unknown hosts (vLLM, Ollama, llama.cpp, LM Studio, gateways) speak the OpenAI wire format,
    and the conventions define the provider name as the discriminator of the telemetry
    *flavor*, set to the instrumentation's best knowledge, so they are ``openai``, as the
    OpenAI SDK's own instrumentation reports when pointed at them.
    """
    if host:
        host = host.lower()
        for suffix, name in _PROVIDER_HOSTS:
            if host == suffix or host.endswith("." + suffix):
                return name
    return "openai"


def provider_for(default: str, endpoint: str | None) -> str:
    """The provider of one request: Anthropic's Messages format wins over the host default."""
    if endpoint and endpoint.split("?", 1)[0].rstrip("/") == "/messages":
        return "anthropic"
    return default


def error_type(rec: RequestRecord) -> str | None:
    """``error.type`` of a finished record: None when it did not fail.

    Upstream HTTP errors use the status code (``"503"``), as the conventions' examples do;
    transport failures use the record's reason code. A client cancellation is not an error
    of the operation (``tokentail.cancelled`` says what happened).
    """
    if rec.status == CANCELLED or rec.error is None:
        return None
    if rec.error == ERR_STATUS:
        return str(rec.http_status) if rec.http_status else ERR_STATUS
    if rec.error in _ERROR_TYPES:
        return rec.error
    return "_OTHER"


def output_finish_reason(rec: RequestRecord) -> str:
    if rec.finish_reason:
        return _FINISH.get(rec.finish_reason, rec.finish_reason)
    return "stop" if rec.error is None and rec.status != CANCELLED else "error"


# --- messages in the parts-based format ---------------------------------------------------

Redact = Callable[[str], str]


def _identity(s: str) -> str:
    return s


def _text(content: Any) -> dict[str, Any]:
    return {"type": "text", "content": content if isinstance(content, str) else json.dumps(content)}


def _strip_query(url: str) -> str:
    # Image URLs may be signed (keys in the query string): never exported.
    return url.split("?", 1)[0] if not url.startswith("data:") else "data:"


def _arguments(raw: Any, redact: Redact) -> Any:
    """Tool-call arguments as an object when they are JSON text (redacted first), else as given."""
    if isinstance(raw, str):
        raw = redact(raw)
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _openai_part(p: Any) -> dict[str, Any]:
    if not isinstance(p, dict):
        return _text(p)
    kind = p.get("type")
    if kind in ("text", "input_text", "output_text"):
        return _text(p.get("text", ""))
    if kind == "refusal":
        return _text(p.get("refusal", ""))
    if kind in ("image_url", "input_image"):
        img = p.get("image_url")
        url = img.get("url") if isinstance(img, dict) else img
        return {"type": "uri", "modality": "image", "uri": _strip_query(url) if isinstance(url, str) else ""}
    if kind == "input_audio":
        audio = p.get("input_audio") or {}
        fmt = audio.get("format") if isinstance(audio, dict) else None
        return {"type": "blob", "modality": "audio", "mime_type": f"audio/{fmt}" if fmt else None, "content": ""}
    if kind in ("tool_result", "tool_call_response"):
        return _anthropic_block(p, _identity)
    # Anything else keeps its type; the conventions allow provider-specific parts.
    return {"type": str(kind or "unknown")}


def _content_parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [_text(content)]
    if isinstance(content, list):
        return [_openai_part(p) for p in content]
    return [_text(content)]


def _tool_call(tc: Any, redact: Redact) -> dict[str, Any]:
    """A tool call in OpenAI (``function: {name, arguments}``), flat or Anthropic ``tool_use`` shape."""
    if not isinstance(tc, dict):
        return {"type": "tool_call", "id": None, "name": "", "arguments": None}
    function = tc.get("function")
    fn = function if isinstance(function, dict) else tc
    args = fn.get("arguments", tc.get("input"))
    return {
        "type": "tool_call",
        "id": tc.get("id") or tc.get("call_id"),
        "name": fn.get("name") or "",
        "arguments": _arguments(args, redact),
    }


def _anthropic_block(b: Any, redact: Redact) -> dict[str, Any]:
    if not isinstance(b, dict):
        return _text(b)
    kind = b.get("type")
    if kind == "text":
        return _text(b.get("text", ""))
    if kind == "tool_use":
        return _tool_call(b, redact)
    if kind == "tool_result":
        content = b.get("content")
        if isinstance(content, list):
            content = "".join(c.get("text", "") for c in content if isinstance(c, dict))
        return {"type": "tool_call_response", "id": b.get("tool_use_id"), "response": content}
    if kind in ("thinking", "redacted_thinking"):
        return {"type": "reasoning", "content": b.get("thinking", "")}
    if kind == "image":
        src = b.get("source") or {}
        if isinstance(src, dict) and src.get("type") == "url":
            return {"type": "uri", "modality": "image", "uri": _strip_query(str(src.get("url", "")))}
        return {
            "type": "blob",
            "modality": "image",
            "mime_type": src.get("media_type") if isinstance(src, dict) else None,
            "content": "",
        }
    return _openai_part(b)


def _chat_message(m: Any, anthropic: bool) -> dict[str, Any]:
    if not isinstance(m, dict):
        return {"role": "user", "parts": [_text(m)]}
    role = m.get("role") or "user"
    if role == "developer":
        role = "system"
    content = m.get("content")
    if anthropic and isinstance(content, list):
        parts = [_anthropic_block(b, _identity) for b in content]
    else:
        parts = _content_parts(content)
    for tc in m.get("tool_calls") or ():
        parts.append(_tool_call(tc, _identity))
    if isinstance(m.get("function_call"), dict):  # legacy OpenAI functions
        parts.append(_tool_call({"function": m["function_call"]}, _identity))
    if role in ("tool", "function"):
        role = "tool"
        parts = [{"type": "tool_call_response", "id": m.get("tool_call_id"), "response": content}]
    elif parts and all(p["type"] == "tool_call_response" for p in parts):
        role = "tool"  # an Anthropic user turn that only returns tool results
    msg: dict[str, Any] = {"role": role, "parts": parts}
    if isinstance(m.get("name"), str):
        msg["name"] = m["name"]
    return msg


def _responses_item(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        return {"role": "user", "parts": [_text(item)]}
    kind = item.get("type")
    if kind == "function_call":
        return {"role": "assistant", "parts": [_tool_call(item, _identity)]}
    if kind == "function_call_output":
        return {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": item.get("call_id"), "response": item.get("output")}],
        }
    if kind == "reasoning":
        summary = item.get("summary") or []
        text = "".join(s.get("text", "") for s in summary if isinstance(s, dict))
        return {"role": "assistant", "parts": [{"type": "reasoning", "content": text}]}
    return _chat_message(item, anthropic=False)


def _system_parts(system: Any) -> list[dict[str, Any]]:
    if isinstance(system, list):
        return [_anthropic_block(b, _identity) for b in system]
    return [_text(system)]


def input_messages(
    prompt: dict[str, Any], endpoint: str | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """(``gen_ai.input.messages``, ``gen_ai.system_instructions`` or None) of a captured prompt.

    ``prompt`` is the record's (already redacted) ``{"messages": ...}`` / ``{"prompt": ...}`` /
    ``{"input": ...}``, with Anthropic's ``system`` or the Responses ``instructions`` beside it.
    System messages inside an OpenAI chat history stay in the history (role ``system``).
    """
    anthropic = provider_for("", endpoint) == "anthropic"
    messages: list[dict[str, Any]] = []
    if isinstance(prompt.get("messages"), list):
        messages = [_chat_message(m, anthropic) for m in prompt["messages"]]
    elif "input" in prompt:
        inp = prompt["input"]
        if isinstance(inp, list):
            messages = [_responses_item(i) for i in inp]
        elif inp is not None:
            messages = [{"role": "user", "parts": [_text(inp)]}]
    elif "prompt" in prompt:
        p = prompt["prompt"]
        texts = p if isinstance(p, list) else [p]
        messages = [{"role": "user", "parts": [_text(t) for t in texts]}]
    system = prompt.get("system", prompt.get("instructions"))
    return messages, (_system_parts(system) if system else None)


def output_messages(rec: RequestRecord, redact: Redact | None = None) -> list[dict[str, Any]]:
    """``gen_ai.output.messages`` of a record: one assistant message (reasoning, text, tool calls)."""
    red = redact or _identity
    parts: list[dict[str, Any]] = []
    if rec.reasoning:
        parts.append({"type": "reasoning", "content": red(rec.reasoning)})
    if rec.text:
        parts.append({"type": "text", "content": red(rec.text)})
    for tc in rec.tool_calls:
        parts.append(_tool_call(tc, red))
    if not parts:
        return []
    return [{"role": "assistant", "parts": parts, "finish_reason": output_finish_reason(rec)}]


def to_json(value: Any) -> str:
    """Compact JSON for a span attribute (non-ASCII kept; anything odd stringified)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
