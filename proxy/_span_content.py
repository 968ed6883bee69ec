"""The GenAI content of a span, built where the span is rebuilt (pure): off the event loop.

``spans.SpanObserver`` captures, at the end of a request, what the content needs (the
redacted prompt as recorded, the completion's output messages, already redacted and cut
near the cap on the loop) as a ``Content`` tuple in the flat span; ``span_process.rebuild``
(in the export child, or in-process for an exporter that is not the child's) calls
``content_attributes`` for the attributes and the ``gen_ai.client.inference.operation.details``
event. The conversion to the parts-based message format and the capped JSON encoding
(``_spancap``) were most of the observer's remaining cost on the loop.
"""

from __future__ import annotations

from typing import Any

from tokentail import semconv as S

from ._genai import input_messages
from ._spancap import TT_CONTENT_TRUNCATED, capped_json

# (cap, operation, provider, request model, error type, prompt, endpoint, output messages, event time ns)
Content = tuple[int, str | None, str, str | None, str | None, dict[str, Any], str, list[Any], int | None]


def content_attributes(content: Content) -> tuple[dict[str, Any], dict[str, Any], int | None]:
    """(span attributes, details event attributes, event timestamp) of ``content``.

    The prompt and the completion each get ``cap`` bytes of JSON; the system instructions
    take at most half of the prompt's when there are messages too. A cut sets
    ``tokentail.content.truncated`` on both.
    """
    cap, op, provider, model, err, prompt, endpoint, out, at = content
    a: dict[str, Any] = {}
    details: dict[str, Any] = {S.OPERATION_NAME: op, S.PROVIDER_NAME: provider}
    if model:
        details[S.REQUEST_MODEL] = model
    if err is not None:
        details[S.ERROR_TYPE] = err
    cut = False
    if prompt:
        msgs, system = input_messages(prompt, endpoint)
        left = cap
        if system:
            text, c = capped_json(system, cap // 2 if msgs else cap)
            details[S.SYSTEM_INSTRUCTIONS] = a[S.SYSTEM_INSTRUCTIONS] = text
            left, cut = cap - len(text.encode("utf-8", "replace")), cut or c
        if msgs:
            text, c = capped_json(msgs, left)
            details[S.INPUT_MESSAGES] = a[S.INPUT_MESSAGES] = text
            cut = cut or c
    if out:
        text, c = capped_json(out, cap)
        details[S.OUTPUT_MESSAGES] = a[S.OUTPUT_MESSAGES] = text
        cut = cut or c
    if cut:
        details[TT_CONTENT_TRUNCATED] = a[TT_CONTENT_TRUNCATED] = True
    return a, details, at
