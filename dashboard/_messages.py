"""The dashboard's names for the one message model (``tokentail.messages``).

The proxy's live feed keeps a request's prompt as the client sent it (OpenAI chat,
Responses, Completions, Anthropic Messages); the collector stores the GenAI parts-based
messages of its span. The detail page and the list rows read both in the one shape of
``tokentail.messages``: ``{role, text, tool_calls: [{id, name, arguments}], tool_call_id,
reasoning}``. The rules (content → text, previews) live there, once; this module only keeps
the names the dashboard's modules import.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokentail.messages import (
    Message,
    args_text,
    as_list,
    content_text,
    last_turn_text,
    message_from_parts,
    messages_from_prompt,
    parts_text,
)
from tokentail.messages import message as message_from_openai

__all__ = [
    "args_text",
    "as_list",
    "content_text",
    "message_from_openai",
    "message_from_parts",
    "messages_from_prompt",
    "parts_text",
    "prompt_preview",
]


def prompt_preview(messages: Sequence[Message]) -> str:
    """The last user turn, else the last message with text: what a list row shows of the prompt."""
    return last_turn_text(reversed(messages))
