"""The API endpoints as pure builders: request JSON and a ``Plan`` in, reply out.

A builder reads and checks the request (raising ``BadRequest``) and renders the reply
with ``shapes`` and ``text``: a body dict, or an event stream that ``app`` paces. It never
waits or touches the connection. ``API`` lists each builder with its path and the request
keys that cap its length; ``app`` wraps every entry into an aiohttp handler that records
the request, makes the plan, injects faults and paces the reply.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from . import shapes
from .text import count_tokens, extract_text, fragments, iter_tokens, sentence_end, stable_hash, tool_arguments

if TYPE_CHECKING:
    from .app import SimState

MODELS = ("sim-gpt-4o", "sim-gpt-4o-mini", "sim-claude", "sim-llama-3-8b", "sim-text-embedding-3-small")


class BadRequest(ValueError):
    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


@dataclass
class Plan:
    n: int  # completion tokens to generate
    finish: str  # "stop" or "length" (capped by the request's max tokens)
    ttft: float
    tps: float
    error: int | None = None
    drop_after: int | None = None
    no_usage: bool = False
    hang: bool = False
    cached: int | None = None
    cap: int | None = None  # the request's max tokens, if it set one
    whole_sentences: bool = False  # an uncapped answer ends at the end of its sentence

    def settle(self, seed: int) -> Plan:
        """The plan for the text of ``seed``: an answer that stops on its own ends its
        sentence, unless the request's max tokens cuts it first (finish ``length``)."""
        if not self.whole_sentences or self.finish != "stop":
            return self
        n = sentence_end(seed, self.n)
        if self.cap is not None and n > self.cap:
            return replace(self, n=self.cap, finish="length")
        return replace(self, n=n)


@dataclass
class Out:
    body: dict | None = None
    events: Iterator[shapes.Event] | None = None
    n: int = 0


Builder = Callable[["SimState", dict, Plan], Out]


# --- request reading helpers ------------------------------------------------------------------


def _model(body: dict, default: str) -> str:
    model = body.get("model", default)
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' must be a non-empty string.", "model")
    return model


def _messages(body: dict) -> list:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array.", "messages")
    return messages


def _prompt_tokens(texts: list[str], overhead: int = 4) -> int:
    return sum(count_tokens(t) + overhead for t in texts) + 3


def _cached(plan: Plan, prompt_tokens: int) -> int:
    if plan.cached is not None:
        return min(plan.cached, prompt_tokens)
    # Like OpenAI's prompt caching: long prompts hit the cache in 128-token blocks.
    return (prompt_tokens * 3 // 4) // 128 * 128 if prompt_tokens >= 1024 else 0


def _wants_usage(body: dict, plan: Plan) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True and not plan.no_usage


def _meta(prefix: str, model: str) -> shapes.Meta:
    return shapes.Meta(prefix + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y"), int(time.time()), model)


_WEATHER = re.compile(r"\bweather\b", re.IGNORECASE)


def _pick_tool(body: dict, messages: list, seed: int) -> tuple[str, Any] | None:
    """The tool a model would call: forced by ``tool_choice``, asked about the weather,
    or for about one request in five that offer tools; never right after a tool result."""
    tools = body.get("tools")
    if not isinstance(tools, list):
        return None
    funcs = [
        (f["name"], f.get("parameters"))
        for t in tools
        if isinstance(t, dict) and isinstance(f := t.get("function"), dict) and isinstance(f.get("name"), str)
    ]
    choice = body.get("tool_choice")
    if not funcs or choice == "none":
        return None
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        forced = [f for f in funcs if f[0] == choice["function"].get("name")]
        if forced:
            return forced[0]
    last = messages[-1] if isinstance(messages[-1], dict) else {}
    if last.get("role") == "tool" and choice != "required":
        return None
    user_text = extract_text(last.get("content")) if last.get("role") == "user" else ""
    if _WEATHER.search(user_text):
        return next((f for f in funcs if "weather" in f[0].lower()), funcs[0])
    if choice == "required" or seed % 5 == 0:
        return funcs[seed % len(funcs)]
    return None


# --- builders -------------------------------------------------------------------------------


def chat_completions(state: SimState, body: dict, plan: Plan) -> Out:
    messages = _messages(body)
    model = _model(body, MODELS[0])
    texts = [extract_text(m.get("content")) if isinstance(m, dict) else "" for m in messages]
    prompt = _prompt_tokens(texts)
    if isinstance(body.get("tools"), list):
        prompt += count_tokens(shapes.dumps(body["tools"]))
    cached = _cached(plan, prompt)
    seed = stable_hash(state.config.seed, model, messages)
    stream = body.get("stream") is True
    meta = _meta("chatcmpl-", model)
    tool = _pick_tool(body, messages, seed)
    if tool is not None:
        name, parameters = tool
        arguments = shapes.dumps(tool_arguments(parameters, seed))
        call_id = "call_" + secrets.token_hex(12)
        pieces = fragments(arguments, seed)
        n = len(pieces) + 1
        usage = None if plan.no_usage else shapes.chat_usage(prompt, n + 8, cached)
        if stream:
            return Out(
                events=shapes.chat_tool_stream(meta, call_id, name, pieces, usage, _wants_usage(body, plan)), n=n
            )
        message = shapes.tool_call_message(call_id, name, arguments)
        return Out(body=shapes.chat_completion(meta, message, "tool_calls", usage), n=n)
    plan = plan.settle(seed)
    usage = None if plan.no_usage else shapes.chat_usage(prompt, plan.n, cached)
    tokens = iter_tokens(seed, plan.n)
    if stream:
        return Out(
            events=shapes.chat_stream(meta, tokens, plan.n, plan.finish, usage, _wants_usage(body, plan)), n=plan.n
        )
    message = shapes.assistant_message("".join(tokens))
    return Out(body=shapes.chat_completion(meta, message, plan.finish, usage), n=plan.n)


def completions(state: SimState, body: dict, plan: Plan) -> Out:
    prompt_in = body.get("prompt")
    if isinstance(prompt_in, str):
        prompt = count_tokens(prompt_in)
    elif isinstance(prompt_in, list) and prompt_in:
        prompt = sum(count_tokens(p) if isinstance(p, str) else len(p) if isinstance(p, list) else 1 for p in prompt_in)
    else:
        raise BadRequest("'prompt' must be a string or an array.", "prompt")
    model = _model(body, "sim-gpt-3.5-turbo-instruct")
    seed = stable_hash(state.config.seed, model, prompt_in)
    plan = plan.settle(seed)
    usage = None if plan.no_usage else shapes.chat_usage(prompt, plan.n, _cached(plan, prompt))
    meta = _meta("cmpl-", model)
    tokens = iter_tokens(seed, plan.n)
    if body.get("stream") is True:
        events = shapes.completion_stream(meta, tokens, plan.n, plan.finish, usage, _wants_usage(body, plan))
        return Out(events=events, n=plan.n)
    return Out(body=shapes.completion(meta, "".join(tokens), plan.finish, usage), n=plan.n)


def embeddings(state: SimState, body: dict, plan: Plan) -> Out:
    raw = body.get("input")
    if isinstance(raw, str) or (isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw)):
        inputs = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(x, (str, list)) for x in raw):
        inputs = raw
    else:
        raise BadRequest("'input' must be a string, an array of strings or an array of token arrays.", "input")
    dims = body.get("dimensions", state.config.embedding_dimensions)
    if not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= 8192:
        raise BadRequest("'dimensions' must be an integer between 1 and 8192.", "dimensions")
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise BadRequest("'encoding_format' must be 'float' or 'base64'.", "encoding_format")
    model = _model(body, "sim-text-embedding-3-small")
    vectors = [shapes.embedding_vector(stable_hash(state.config.seed, model, x), dims) for x in inputs]
    tokens = sum(count_tokens(x) if isinstance(x, str) else len(x) for x in inputs)
    return Out(body=shapes.embeddings(model, vectors, None if plan.no_usage else tokens, fmt == "base64"))


def responses(state: SimState, body: dict, plan: Plan) -> Out:
    raw = body.get("input")
    if isinstance(raw, str):
        texts = [raw]
    elif isinstance(raw, list) and raw:
        texts = [
            extract_text(item.get("content", item.get("output", ""))) if isinstance(item, dict) else str(item)
            for item in raw
        ]
    else:
        raise BadRequest("'input' must be a string or a non-empty array.", "input")
    if isinstance(body.get("instructions"), str):
        texts.append(body["instructions"])
    model = _model(body, MODELS[0])
    prompt = _prompt_tokens(texts)
    cached = _cached(plan, prompt)
    seed = stable_hash(state.config.seed, model, raw, body.get("instructions"))
    plan = plan.settle(seed)
    usage = None if plan.no_usage else shapes.responses_usage(prompt, plan.n, cached)
    tokens = iter_tokens(seed, plan.n)
    meta = _meta("resp_", model)
    item_id = "msg_" + secrets.token_hex(24)
    if body.get("stream") is True:
        return Out(events=shapes.responses_stream(meta, item_id, tokens, usage, body), n=plan.n)
    item = shapes.output_message(item_id, "completed", [shapes.output_text_part("".join(tokens))])
    return Out(body=shapes.response_object(meta, "completed", [item], usage, body), n=plan.n)


def messages(state: SimState, body: dict, plan: Plan) -> Out:
    msgs = _messages(body)
    model = _model(body, "sim-claude")
    texts = [extract_text(m.get("content")) if isinstance(m, dict) else "" for m in msgs]
    system = body.get("system")
    if system is not None:
        texts.append(extract_text(system))
    prompt = _prompt_tokens(texts)
    seed = stable_hash(state.config.seed, model, msgs, system)
    plan = plan.settle(seed)
    usage = shapes.anthropic_usage(prompt, plan.n, (plan.cached and min(plan.cached, prompt)) or 0)
    stop = "max_tokens" if plan.finish == "length" else "end_turn"
    tokens = iter_tokens(seed, plan.n)
    meta = _meta("msg_", model)
    if body.get("stream") is True:
        return Out(events=shapes.messages_stream(meta, tokens, stop, usage), n=plan.n)
    content = [{"type": "text", "text": "".join(tokens)}]
    return Out(body=shapes.anthropic_message(meta, content, stop, usage), n=plan.n)


# --- the API table --------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    path: str
    build: Builder
    cap_keys: tuple[str, ...] = ()  # request keys capping the length; the first valid one wins
    anthropic: bool = False  # errors in Anthropic's shape


API = (
    Endpoint("/v1/chat/completions", chat_completions, cap_keys=("max_completion_tokens", "max_tokens")),
    Endpoint("/v1/completions", completions, cap_keys=("max_tokens",)),
    Endpoint("/v1/embeddings", embeddings),
    Endpoint("/v1/responses", responses, cap_keys=("max_output_tokens",)),
    Endpoint("/v1/messages", messages, cap_keys=("max_tokens",), anthropic=True),
)
