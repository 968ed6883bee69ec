"""Redaction of a text that arrives in pieces (pure, no I/O).

A key streamed as ``"sk-"``, ``"proj-"``, ``"AbCd"``, … matches no rule in any one piece, so
each streamed field gets a ``StreamRedactor`` that releases text only once nothing after it
can turn it into (part of) a secret:

- ``feed(piece) -> str``: the text that can be released now, already redacted. The last
  word is held back (any word can still grow into an e-mail address or a key), plus what a
  secret with spaces inside could still continue: a digit group of a card or phone number
  (``4111 1111 ``), a label waiting for its value (``Bearer ``, ``password: ``,
  ``aws_secret_access_key = ``), a ``-----BEGIN ... PRIVATE KEY-----`` block until its END
  line and the word after it are complete (never half a block).
- ``flush() -> str``: the rest, redacted, at the end of the stream.

Whitespace, quotes, ``<``, ``>``, backticks and CJK punctuation end a word; a word boundary
that cannot continue any pattern releases everything before it, so ordinary prose reaches
the live feed word by word. The concatenation of every ``feed`` and the ``flush`` is the
text redacted whole (except that a ``[REDACTED:...]`` label that ended one released piece no
longer shields a lookalike right after it: more is redacted, never less); a text without
secrets comes out unchanged, character for character.

Bounds: the hold is at most ``max_hold`` characters (1024: the longest key or token is a
few hundred) and ``max_pem_hold`` inside an open PEM block (16 KiB: an 8192-bit RSA key,
JSON-escaped, is ~7 KiB). Past the bound the held text is released redacted (a single
"word" of 1 KiB is not a secret any rule knows), so memory per stream stays bounded.

How the live feed uses it (one instance per request and field: ``text``, ``reasoning``,
and each tool call's ``arguments`` keyed by its index)::

    sr = redactor.stream()              # at request.start
    out = sr.feed(delta_text)           # per delta: publish ``out`` as the delta's text
                                        # (it may be ""), append it to the in-flight record,
                                        # preview and replay ring; never the raw delta
    out = sr.flush()                    # at request.end (also on error/cancel): publish and
                                        # append it; the stored text is the concatenation

Spans and the collector take the concatenation (or ``redact_text`` of the whole text,
which gives the same result). The client's bytes never pass through here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

__all__ = ["StreamRedactor"]

# A character that ends a word: no rule's secret holds one (whitespace only inside the
# kinds the openers below keep).
_CUT = re.compile(r"[\s\"'<>`\u3000-\u303f\uff01-\uff0f\uff1a-\uff20]")
_NUMERIC = " 0123456789-.()+"  # the characters of a card or phone number in progress
_MAX_NUMERIC = 64  # the longest card/phone with separators is ~25 characters
_MAX_PASSES = 4  # of the hold rules over one piece (see _hold_start)
_LABEL_SEP = " \t\r\n\"':="
_MAX_LABELS = 4  # labels in a row looked through ("key: secret: value")
_LABELS = (
    "bearer",
    "basic",
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "key",  # aws_secret_access_key, SecretAccessKey, AccountKey, private_key, api_key
)
_PEM_BEGIN = "-----BEGIN"
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*KEY-----")


class _Redacts(Protocol):
    def redact_text(self, s: str) -> str: ...


class StreamRedactor:
    """Redacts one streamed field; see the module docstring for the contract."""

    __slots__ = ("_max_hold", "_max_pem_hold", "_pending", "_redact")

    def __init__(self, redactor: _Redacts, max_hold: int = 1024, max_pem_hold: int = 16384) -> None:
        self._redact: Callable[[str], str] = redactor.redact_text
        self._pending = ""
        self._max_hold = max_hold
        self._max_pem_hold = max_pem_hold

    @property
    def held(self) -> str:
        """The raw text not released yet (for tests and diagnostics; never publish it)."""
        return self._pending

    def feed(self, text: str) -> str:
        """Take the next piece; return what can be released now, redacted (maybe "")."""
        if not text:
            return ""
        p = self._pending + text
        h, limit = self._hold_start(p)
        if len(p) - h > limit:  # bounded memory: release it all (see the module docstring)
            h = len(p)
        if h == 0:
            self._pending = p
            return ""
        self._pending = p[h:]
        return self._redact(p[:h])

    def flush(self) -> str:
        """The rest of the text, redacted; the redactor is empty (reusable) afterwards."""
        p, self._pending = self._pending, ""
        return self._redact(p) if p else ""

    def _hold_start(self, p: str) -> tuple[int, int]:
        """Where the held tail of ``p`` starts, and how long that tail may grow."""
        h = _word_start(p, len(p))
        limit = self._max_hold
        # A private-key block: held from its BEGIN until its END line is complete and a word
        # boundary follows it (an END line with a word glued on may be part of that word for
        # the whole-text rules, an e-mail's local part).
        blocks: list[tuple[int, int]] = []  # (start, end) of each complete block
        i = p.find(_PEM_BEGIN)
        while i >= 0:
            end = _PEM_END.search(p, i)
            if end is None:
                h = min(h, _word_start(p, i))
                limit = self._max_pem_hold
                break
            blocks.append((_word_start(p, i), end.end()))
            i = p.find(_PEM_BEGIN, end.end())
        # Each rule below only moves the cut back, and one's move can open a case for another
        # (digits before a label: "+1 415Bearer "), so they run until none moves it. Digit
        # groups before the cut are held only if what follows it may continue them: the next
        # piece (the first pass, as ever), or held text that starts like a number ("415").
        # A few passes at most, each costing a copy of the text before the cut.
        for n in range(_MAX_PASSES):
            before = h
            if n == 0 or _numeric_run(p, h) <= _MAX_NUMERIC:
                h = _numeric_start(p, h)
            h = _label_start(p, h)
            # Never half a complete block (digits right after its END line: "KEY-----4111").
            # Its hold has the ordinary bound: past it, the block goes out whole, redacted.
            for start, stop in reversed(blocks):
                if start < h < stop:
                    h = start
                    break
            if h == before:
                break
        else:  # still moving: hold it all (released when a later piece settles, or at the bound)
            h = 0
        return h, limit


def _numeric_run(p: str, h: int) -> int:
    """The length of the run of number characters across the cut at ``h`` if the held text
    starts with one (it may continue digit groups before the cut), else a length over any
    number's."""
    after = p[h : h + _MAX_NUMERIC + 1]
    held = len(after) - len(after.lstrip(_NUMERIC))
    if held == 0:
        return _MAX_NUMERIC + 1
    before = p[max(0, h - _MAX_NUMERIC - 1) : h]
    return held + len(before) - len(before.rstrip(_NUMERIC))


def _numeric_start(p: str, h: int) -> int:
    """The cut moved back before digit groups of a card or phone number the next piece may
    continue."""
    head = p[:h]
    rest = head.rstrip(_NUMERIC)
    tail = head[len(rest) :]
    if len(tail) <= _MAX_NUMERIC and any(c.isdigit() for c in tail):
        spaces = len(tail) - len(tail.lstrip(" "))
        return len(rest) + spaces if spaces else _word_start(p, len(rest))
    return h


def _label_start(p: str, h: int) -> int:
    """The cut moved back before a label whose value is still to come ("Bearer ",
    "password: "); a held word may be a value whose label precedes it ("key = <value> "),
    so look again before it."""
    for _ in range(_MAX_LABELS):
        head = p[:h]
        rest = head.rstrip(_LABEL_SEP)
        if len(rest) == len(head):
            break
        low = rest[-12:].lower()
        label = next((lb for lb in _LABELS if low.endswith(lb)), None)
        if label is None:
            break
        h = _word_start(p, len(rest) - len(label))
    return h


def _word_start(p: str, i: int) -> int:
    """The start of the word that holds position ``i`` (just after the cut before it)."""
    window = p[max(0, i - 4096) : i]
    m = _CUT.search(window[::-1])
    if m is None:
        return max(0, i - 4096) if i > 4096 else 0
    return i - m.start()
