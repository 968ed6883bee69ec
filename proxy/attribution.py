"""Who sent a request: an API-key fingerprint, the end user, and tags (pure, a few µs).

- ``key_fingerprint``: the first 12 hex characters of HMAC-SHA256(secret, client key), the
  key taken from ``Authorization: Bearer``, ``x-api-key``, ``api-key``, ``x-goog-api-key`` or
  a ``?key=`` query parameter. Without the secret it cannot be reversed or even tested
  against a guessed key; 48 bits tell keys apart without identifying them. The secret is
  ``TOKENTAIL_FINGERPRINT_KEY`` (``--fingerprint-key``); without it a random one is made at
  start, and fingerprints then stay the same only for the process's lifetime (set the key
  so they survive restarts and agree across several proxies).
- ``user``: the OpenAI ``user`` field (or ``safety_identifier``, or Anthropic's
  ``metadata.user_id``), redacted and capped at 200 characters.
- ``tags``: ``X-Tokentail-Tags: team-a, batch, eval`` -> ``["team-a", "batch", "eval"]``:
  comma-separated, trimmed, empty and repeated ones dropped, each at most 64 characters,
  at most 16, redacted.

These go on spans, the live feed and ``/api/requests`` (filters), never on metric labels:
their values are unbounded.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["TAGS_HEADER", "Fingerprinter", "end_user", "parse_tags"]

TAGS_HEADER = "X-Tokentail-Tags"
FINGERPRINT_CHARS = 12
MAX_USER_CHARS = 200
MAX_TAG_CHARS = 64
MAX_TAGS = 16
_KEY_HEADERS = ("x-api-key", "api-key", "x-goog-api-key")


class Fingerprinter:
    """Keyed, truncated hashes of client API keys. ``secret=None``: a random per-process secret."""

    def __init__(self, secret: str | bytes | None = None) -> None:
        self.ephemeral = not secret
        if not secret:
            secret = secrets.token_bytes(32)
        self._secret = secret.encode() if isinstance(secret, str) else secret

    def __repr__(self) -> str:
        return f"Fingerprinter(ephemeral={self.ephemeral})"

    def of(self, api_key: str) -> str:
        return hmac.new(self._secret, api_key.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[
            :FINGERPRINT_CHARS
        ]

    def fingerprint(self, headers: Mapping[str, str], query: Mapping[str, str] | None = None) -> str | None:
        """The fingerprint of the key the client presented, or None when it sent none."""
        key = client_key(headers, query)
        return self.of(key) if key else None


def client_key(headers: Mapping[str, str], query: Mapping[str, str] | None = None) -> str | None:
    auth = headers.get("Authorization")
    if auth and auth[:7].lower() == "bearer ":
        key = auth[7:].strip()
        if key:
            return key
    for name in _KEY_HEADERS:
        value = headers.get(name)
        if value and value.strip():
            return value.strip()
    if query:
        value = query.get("key")
        if value:
            return value
    return None


def end_user(obj: Mapping[str, Any] | None, redact: Callable[[str], str] | None = None) -> str | None:
    """The end user a request names, redacted and capped; None when it names none."""
    if obj is None:
        return None
    user = obj.get("user") or obj.get("safety_identifier")
    if not user:
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            user = meta.get("user_id")  # Anthropic Messages
    if not isinstance(user, (str, int)) or isinstance(user, bool) or user == "":
        return None
    text = str(user)[: MAX_USER_CHARS * 2]  # bound the redaction's work, then cap what is kept
    if redact is not None:
        text = redact(text)
    return text[:MAX_USER_CHARS] or None


def parse_tags(value: str | None, redact: Callable[[str], str] | None = None) -> list[str]:
    """``X-Tokentail-Tags`` as a list (see the module docstring)."""
    if not value:
        return []
    value = value[: MAX_TAGS * (MAX_TAG_CHARS + 8) * 2]
    if redact is not None:
        value = redact(value)
    out: list[str] = []
    for raw in value.split(","):
        tag = raw.strip()[:MAX_TAG_CHARS].strip()
        if tag and tag.isprintable() and tag not in out:
            out.append(tag)
            if len(out) >= MAX_TAGS:
                break
    return out
