"""Sessions: which requests belong to one conversation (pure, in memory, bounded).

``SessionTracker.assign`` gives each request a session id, from the first of:

1. the ``X-Session-Id`` header;
2. an id the request body names: ``metadata.session_id`` / ``metadata.conversation_id``,
   or the Responses API's ``conversation`` (``"conv_..."`` or ``{"id": ...}``);
3. the end user: ``user:<user>`` (the OpenAI ``user`` field, already redacted and capped on
   the record). It comes after the ids above because one user holds many conversations;
4. continuation: a Responses request whose ``previous_response_id`` is a response we
   relayed joins that response's session; a chat/messages/responses request whose
   messages continue an earlier request's messages joins its session;
5. otherwise, a new id (``s-`` + 12 hex) for requests that can start a conversation
   (chat, messages, responses); None for the rest (embeddings, completions, models).

Continuation: request N+1 of a chat sends request N's messages, then N's reply as an
assistant message, then what is new (a user turn, or tool results). So at the end of
request N (``on_end``, an observer hook) the tracker keys N's session by
``hash(N's messages + [assistant: N's completion])``, and request N+1 looks itself up by
the hash of its messages up to and including its last assistant message. Messages are
normalised to (role, text) by ``tokentail.messages.content_text``: text parts concatenated
as the tap joins a reply's pieces, a tool result's text on a line of its own (tool calls,
images and reasoning blocks are left out; consecutive assistant entries are merged, as the Responses API returns a reply as
several items), whitespace stripped at the ends, the system prompt (``system``,
``instructions``) included. Two conversations that are identical so far share a session.

The hash is of the raw text, not the redacted one: the request side could use the
record's redacted prompt for free, but the reply side would need the completion redacted
once more (60-180 µs for 2 KB of text, a tenth of the proxy's CPU per request), while the
raw text costs one hash pass (about 1 µs per message on arrival). The digests are keyed with a random per-process key
(BLAKE2b), live only in this process's memory and are never exported, so they reveal
nothing, not even to a dictionary test. Per request: one pass over the prompt's text on
arrival, one over the reply at the end; nothing per delta. A turn of more than
``HASHED_TURN_CHARS`` is hashed by its two ends and its length, so that pass is bounded
per turn whatever one message holds.

Memory is bounded: an LRU of ``max_entries`` continuation keys (and response ids).
"""

from __future__ import annotations

import os
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from hashlib import blake2b
from typing import Any

from tokentail.messages import content_text

from .record import OK, RequestRecord

__all__ = ["HASHED_TURN_CHARS", "MAX_ID_CHARS", "NOT_PREPARED", "SESSION_HEADER", "SessionTracker"]

NOT_PREPARED: Any = object()  # ``assign`` without ``prepare``: it hashes the messages itself

SESSION_HEADER = "X-Session-Id"
MAX_ID_CHARS = 200
# Endpoints (below /v1) whose requests are turns of a conversation.
_CONVERSATIONAL = frozenset({"/chat/completions", "/messages", "/responses"})
_ASSISTANT_ITEMS = frozenset(
    {
        "function_call",
        "custom_tool_call",
        "computer_call",
        "web_search_call",
        "file_search_call",
        "code_interpreter_call",
        "mcp_call",
        "tool_use",
    }
)


def _new_sid() -> str:
    """A new session id: 12 random hex digits (what ``uuid4().hex[:12]`` gave: its first six
    bytes are random) without building a UUID per request."""
    return "s-" + os.urandom(6).hex()


class SessionTracker:
    """Assigns session ids (see the module docstring); an ``Observer`` for its ``on_end``."""

    def __init__(self, max_entries: int = 10_000, redactor: Any = None) -> None:
        self.max_entries = max(1, max_entries)
        self._key = secrets.token_bytes(32)
        self._redact = getattr(redactor, "redact_text", None)
        self._known: OrderedDict[bytes | str, str] = OrderedDict()  # continuation key / "r:"+response id -> sid
        self._pending: dict[str, tuple[Any, str]] = {}  # request id -> (hasher after its messages, sid)

    def __len__(self) -> int:
        return len(self._known)

    def prepare(self, endpoint: str, request_json: Mapping[str, Any]) -> tuple[Any, bytes | None] | None:
        """The hash state ``assign`` needs of this body: the one pass over every message,
        which ``assign`` then skips. Reads nothing that changes: a worker thread may call it."""
        return _hash_messages(self._key, endpoint, request_json) if endpoint in _CONVERSATIONAL else None

    def assign(
        self,
        rec: RequestRecord,
        request_json: Mapping[str, Any] | None,
        headers: Mapping[str, str],
        prepared: Any = NOT_PREPARED,
    ) -> str | None:
        """The session id of ``rec`` (also stored on ``rec.session_id``); ``prepared``: what
        ``prepare`` returned for the same body, if it ran."""
        sid = self._explicit(rec, request_json, headers)
        conversational = rec.endpoint in _CONVERSATIONAL and request_json is not None
        if conversational:
            if prepared is NOT_PREPARED:
                state = _hash_messages(self._key, rec.endpoint, request_json)  # type: ignore[arg-type]
            else:
                state = prepared
            if sid is None and request_json is not None:
                prev = request_json.get("previous_response_id")
                if isinstance(prev, str) and prev:
                    sid = self._get("r:" + prev)
            if state is not None:
                full, upto_last_assistant = state
                if sid is None and upto_last_assistant is not None:
                    sid = self._get(upto_last_assistant)
                if sid is None:
                    sid = _new_sid()
                self._pending[rec.id] = (full, sid)
            elif sid is None:
                sid = _new_sid()
        rec.session_id = sid
        return sid

    def on_end(self, rec: RequestRecord) -> None:
        """Key the finished request's session for the request that continues it."""
        pending = self._pending.pop(rec.id, None)
        sid = rec.session_id
        if sid is None or rec.status != OK:
            return
        if rec.response_id and rec.endpoint == "/responses":
            self._put("r:" + rec.response_id, sid)
        if pending is None or rec.truncated:
            return  # a truncated reply is not what the client will send back
        hasher, _ = pending
        _feed(hasher, "assistant", rec.text.strip())
        self._put(hasher.digest(), sid)

    # --- internals -----------------------------------------------------------------------

    def _explicit(self, rec: RequestRecord, obj: Mapping[str, Any] | None, headers: Mapping[str, str]) -> str | None:
        sid: Any = headers.get(SESSION_HEADER)
        if not sid and obj is not None:
            meta = obj.get("metadata")
            if isinstance(meta, dict):
                sid = meta.get("session_id") or meta.get("conversation_id")
            if not sid:
                conv = obj.get("conversation")
                sid = conv.get("id") if isinstance(conv, dict) else conv
        if sid and isinstance(sid, (str, int)):
            text = str(sid)[:MAX_ID_CHARS]
            return self._redact(text) if self._redact is not None else text
        if rec.user:
            return "user:" + rec.user
        return None

    def _get(self, key: bytes | str) -> str | None:
        sid = self._known.get(key)
        if sid is not None:
            self._known.move_to_end(key)
        return sid

    def _put(self, key: bytes | str, sid: str) -> None:
        known = self._known
        known[key] = sid
        known.move_to_end(key)
        while len(known) > self.max_entries:
            known.popitem(last=False)


# A turn longer than this is hashed as its first and last halves of it and its length: the
# hash pass per request stays bounded (a 4 MiB prompt cost ~10 ms of event loop in full),
# and texts that agree there but differ only in the middle of megabytes are, for the
# continuation key, the same turn. Normal turns are hashed whole, as before.
HASHED_TURN_CHARS = 16 << 10
_HALF = HASHED_TURN_CHARS // 2


def _piece(role: str, text: str) -> str:
    if len(text) > HASHED_TURN_CHARS:
        text = f"{text[:_HALF]}\x1d{len(text)}\x1d{text[-_HALF:]}"
    return f"{role}\x1f{text}\x1e"


def _feed(h: Any, role: str, text: str) -> None:
    h.update(_piece(role, text).encode("utf-8", "surrogatepass"))


def _text(content: Any) -> str:
    """The text of a message's content, by the one rule of ``tokentail.messages``: text parts
    concatenate with no separator, as the tap joins a reply's pieces (the continuation hash
    compares the two); tool calls, images and reasoning blocks give no text."""
    return content_text(content)


def _turns(endpoint: str, obj: Mapping[str, Any]) -> list[tuple[str, str]] | None:
    """The conversation as (role, text), system prompt first; None when there is none."""
    turns: list[tuple[str, str]] = []
    system = obj.get("instructions") if endpoint == "/responses" else obj.get("system")
    if system:
        turns.append(("system", _text(system)))
    items = obj.get("input") if endpoint == "/responses" else obj.get("messages")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        return None
    for m in items:
        if not isinstance(m, dict):
            continue
        role = m.get("role")
        if isinstance(role, str):
            turns.append((role, _text(m.get("content"))))
        elif m.get("type") in _ASSISTANT_ITEMS:  # a Responses output item sent back
            turns.append(("assistant", ""))
        elif isinstance(m.get("type"), str) and m["type"].endswith("_output"):  # function_call_output, ...
            turns.append(("tool", _text(m.get("output"))))
    return turns


def _hash_messages(key: bytes, endpoint: str, obj: Mapping[str, Any]) -> tuple[Any, bytes | None] | None:
    """(hasher over all turns, digest up to the last assistant turn or None)."""
    turns = _turns(endpoint, obj)
    if turns is None:
        return None
    pieces: list[str] = []
    upto = 0  # number of pieces up to and including the last assistant turn
    run: list[str] | None = None  # texts of a run of assistant turns, merged into one
    for role, text in turns:
        if role == "assistant":
            (run := run if run is not None else []).append(text)
            continue
        if run is not None:
            pieces.append(_piece("assistant", "".join(run).strip()))
            upto, run = len(pieces), None
        pieces.append(_piece(role, text.strip()))
    if run is not None:  # the prompt ends with an assistant turn (a prefill)
        pieces.append(_piece("assistant", "".join(run).strip()))
        upto = len(pieces)
    h = blake2b(key=key, digest_size=16)
    digest: bytes | None = None
    if upto:
        h.update("".join(pieces[:upto]).encode("utf-8", "surrogatepass"))
        digest = h.digest()
    h.update("".join(pieces[upto:]).encode("utf-8", "surrogatepass"))
    return h, digest
