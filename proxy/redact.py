"""Keep secrets and personal data out of what tokentail captures (pure, no I/O).

Four jobs, one per entry point:

- ``Redactor.redact_text`` / ``redact_json``: replace e-mails, phone and card numbers, API
  keys and tokens, private keys, credentials in URLs, ``Basic`` headers and ``password=``
  assignments with ``[REDACTED:<kind>]``. Each kind is one ``Rule`` in the ``RULES``
  registry (``_redact_patterns``), so a rule can be switched off by name.
- ``StreamRedactor``: the same for a text that arrives in pieces (a streamed completion),
  holding back only the tail that could still become a secret (``_redact_stream``).
- ``strip_media``: replace inline base64 images/audio/files with a short
  placeholder such as ``[image/png base64, 12.3 KiB]``.
- ``is_secret_header`` / ``safe_headers`` / ``strip_query``: no header or URL part that
  may carry a credential leaves the proxy.

Redaction is linear in the text: the built-in rules are RE2 patterns (no backtracking; see
``_redact_patterns`` for why and the measurements), each run only when the text holds one of
its literal hints (one RE2 ``Set`` pass finds them all). Ordinary prose and code cost tens of
ms per MiB, text dense with candidate secrets a few µs per candidate
(``bench/redact_bench.py``). ``redact_text`` runs on streamed deltas, so a text with no hint
at all is returned as the same object.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import re2

from ._redact_patterns import DIGITS, RULE_SPECS, Rule, luhn_ok, options
from ._redact_stream import StreamRedactor

__all__ = [
    "RULES",
    "RULE_NAMES",
    "Redactor",
    "Rule",
    "StreamRedactor",
    "is_secret_header",
    "luhn_ok",
    "media_placeholder",
    "safe_headers",
    "strip_media",
    "strip_query",
]

RULES: tuple[Rule, ...] = RULE_SPECS
RULE_NAMES: frozenset[str] = frozenset(r.name for r in RULES)

_MAX_DEPTH = 256  # deeper JSON is replaced whole rather than risk RecursionError
_MAX_PASSES = 4  # see redact_text: passes repeat until stable (two in practice)
# The Python ``re`` gate below is quickest for a streamed token, but an alternation of ~30
# literals costs it ~100 ns a character where no hint is found (410 us for 4 KiB of plain
# prose); RE2's Set of the same hints is ~3 ns a character plus ~1.5 us a call. Past this
# length the Set decides alone.
_GATE_MAX = 24
_UNANCHORED = re2._Anchor.UNANCHORED

# JSON's \u00XX escapes of printable ASCII ("sk\u002dproj\u002d...", "jane\u0040example.com")
# hide a secret from every pattern; '"' and '\' stay escaped so a JSON text stays JSON.
_ESCAPE = re.compile(r"\\[uU]00([2-7][0-9A-Fa-f])")
_UNESCAPE = {f"{c:02x}": chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"\\'}


def _unescape(s: str) -> str:
    return _ESCAPE.sub(lambda m: _UNESCAPE.get(m.group(1).lower(), m.group(0)), s)


def _char_len(lead: int) -> int:
    """Bytes of the UTF-8 character that starts with byte ``lead``."""
    return 1 if lead < 0xC0 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4


class _Compiled:
    """A rule ready to apply on UTF-8 bytes: scan, trim to the secret, veto, replace."""

    __slots__ = ("_match", "check", "digits", "drop", "label", "label_re", "lead", "refine", "tail")

    def __init__(self, rule: Rule) -> None:
        self._match = rule.pattern._regexp.Match  # spans only; pinned binding (constraints.txt)
        self.check, self.refine = rule.check, rule.refine
        self.digits = DIGITS in rule.hints  # reads its neighbours' digits (see _redact)
        self.lead, self.tail, self.label_re, self.drop = rule.lead, rule.tail, rule.label, rule.drop
        self.label = f"[REDACTED:{rule.name}]".encode()

    def apply(self, b: bytes) -> bytes:
        # One RE2 search per candidate, resumed at the end of the secret so the separator
        # that ended one secret can start the next: linear in len(b).
        match, check, refine, label, n = self._match, self.check, self.refine, self.label, len(b)
        lead, tail, label_re, drop = self.lead, self.tail, self.label_re, self.drop
        pieces: list[bytes] = []
        last = pos = 0
        while True:
            start, end = match(_UNANCHORED, b, pos, n)[0]
            if start < 0:
                break
            if lead is not None and b[start] not in lead:  # the separator before it
                start += _char_len(b[start])
            if tail is not None:  # the separator(s) after it (a UTF-8 character is several bytes)
                while end > start and b[end - 1] not in tail:
                    end -= 1
            end -= drop
            if label_re is not None:
                m = label_re.match(b, start, end)
                if m is not None:
                    start = m.end()
            if refine is not None and start < end:
                span = refine(b[start:end])
                if span is not None:
                    start, end = start + span[0], start + span[1]
                    pieces.append(b[last:start])
                    pieces.append(label)
                    last = end
            elif start < end and (check is None or check(b[start:end])):
                pieces.append(b[last:start])
                pieces.append(label)
                last = end
            pos = max(end, pos + 1)
        if not pieces:
            return b
        pieces.append(b[last:])
        return b"".join(pieces)


class _UserRule:
    """A user's extra pattern: RE2 when it compiles there (linear), else Python ``re``."""

    __slots__ = ("label", "rx")

    def __init__(self, kind: str, pattern: str) -> None:
        self.label = f"[REDACTED:{kind}]"
        try:
            self.rx: Any = re2.compile(pattern)
        except re2.error:  # look-around or back-references: the user's own regex, as given
            self.rx = re.compile(pattern)

    def apply(self, s: str) -> str:
        out: str = self.rx.sub(lambda _m: self.label, s)
        return out


class Redactor:
    """Redacts captured text and JSON bodies; on by default with every rule.

    ``rules`` names the rules to apply (``RULE_NAMES``; None = all); unknown names
    raise ``ValueError`` so a typo in the config fails at start. ``extra_patterns``
    adds user regexes: a mapping ``{kind: pattern}`` or a list of patterns (kind
    ``custom``); they run through RE2 when they compile there, else Python ``re`` (their
    speed is then theirs). ``enabled=False`` turns all of it off.
    """

    def __init__(
        self,
        enabled: bool = True,
        rules: Iterable[str] | None = None,
        extra_patterns: Mapping[str, str] | Iterable[str] | None = None,
    ) -> None:
        wanted = RULE_NAMES if rules is None else frozenset(rules)
        unknown = wanted - RULE_NAMES
        if unknown:
            raise ValueError(f"unknown redaction rules: {sorted(unknown)}; known: {sorted(RULE_NAMES)}")
        chosen = [r for r in RULES if r.name in wanted]
        user: list[_UserRule] = []
        if extra_patterns:
            if isinstance(extra_patterns, Mapping):
                items = list(extra_patterns.items())
            else:
                items = [("custom", p) for p in extra_patterns]
            user = [_UserRule(kind, pat) for kind, pat in items]
        self.enabled = enabled and bool(chosen or user)
        self.rule_names = frozenset(r.name for r in chosen) | frozenset(u.label[10:-1] for u in user)
        self._rules = [_Compiled(r) for r in chosen]
        self._user = user
        hint_list = list(dict.fromkeys(h for r in chosen for h in r.hints))
        self._hint_set: Any = re2.Set.SearchSet()
        for h in hint_list:
            self._hint_set.Add(b"[0-9]" if h is DIGITS else b"(?i)" + re2.escape(h))
        if hint_list:
            self._hint_set.Compile()
        self._rule_hints = [frozenset(hint_list.index(h) for h in r.hints) for r in chosen]
        # The fast path for a streamed token: one search for any rule's hint (a literal,
        # or a digit). Python's re is fine here: an alternation of literals cannot backtrack.
        hints = [re.escape(h.decode()) for h in dict.fromkeys(h for r in chosen for h in r.hints) if h is not DIGITS]
        if any(DIGITS in r.hints for r in chosen):
            hints.append("[0-9]")
        # Hints are lower case and searched in s.lower(): IGNORECASE makes the search 3x slower.
        self._gate = re.compile("|".join(hints), re.ASCII) if hints else None
        # Any digit wakes the digit rules (card, phones): a timestamp, a version, a count. One
        # RE2 search for any of them at once, the same patterns as an alternation, costs what
        # one of them does (its DFA stays small: checked on adversarial shapes in
        # bench/redact_bench.py); nothing found there, none of them can find anything.
        digit_rules = [r for r in chosen if DIGITS in r.hints]
        self._digit_hint = hint_list.index(DIGITS) if DIGITS in hint_list else -1
        self._digit_union: Any = None
        if len(digit_rules) > 1:
            union = b"|".join(b"(?:" + r.pattern.pattern + b")" for r in digit_rules)
            self._digit_union = re2.compile(union, options())._regexp.Match

    @property
    def has_user_rules(self) -> bool:
        """Whether user patterns apply (their anchors may depend on where a text starts and ends)."""
        return self.enabled and bool(self._user)

    def redact_text(self, s: str) -> str:
        """Return ``s`` with every sensitive span replaced by ``[REDACTED:<kind>]``.

        Idempotent; ``s`` itself is returned when nothing was found. A secret written with
        JSON ``\\u00XX`` escapes is found too: the text is redacted again decoded, and when
        that found more, the decoded, redacted text is returned (escapes of printable ASCII
        decoded, ``\\u0022`` and ``\\u005c`` kept).
        """
        if not self.enabled or not s:
            return s
        out = self._redact(s)
        if "\\u00" in out or "\\U00" in out:
            plain = _unescape(out)
            if plain != out:
                red = self._redact(plain)
                if red != plain:
                    out = red
        return out

    def _redact(self, s: str) -> str:
        out = s
        # A short text (a streamed token) is gated in Python; a longer one goes to the Set alone
        # (``_GATE_MAX``), which finds no hint just as quickly.
        if self._rules and (len(s) > _GATE_MAX or (self._gate is not None and self._gate.search(s.lower()))):
            b = orig = s.encode("utf-8", "surrogatepass")
            # A replacement can change what a neighbouring match looks like (a run vetoed
            # as too long for a phone gets shorter once its tail became an e-mail label),
            # so passes repeat until nothing changes: redact_text is idempotent. The
            # second pass runs only when the first replaced something, and only for the
            # rules a replacement can affect.
            # Which hints the text holds, in one RE2 pass (a Set of literals has a small DFA):
            # ~1 ms/MiB, where one ``in`` per hint took 5-15.
            found = self._hint_set.Match(b) or ()
            # No hint (most text): no rule to look at (the list below is ~5 us for nothing).
            active = [r for r, idx in zip(self._rules, self._rule_hints) if not idx.isdisjoint(found)] if found else []
            union = self._digit_union if self._digit_hint in found else None
            for _ in range(_MAX_PASSES):
                before = b
                rules = active
                if union is not None and union(_UNANCHORED, b, 0, len(b))[0][0] < 0:
                    rules = [r for r in active if not r.digits]
                for rule in rules:
                    b = rule.apply(b)
                if b is before:
                    break
                # Only the digit rules (card, phone) read their neighbours' digits.
                active = [r for r in active if r.digits]
            if b is not orig:
                out = b.decode("utf-8", "surrogatepass")
        for u in self._user:
            out = u.apply(out)
        return out

    def stream(self) -> StreamRedactor:
        """A ``StreamRedactor`` for one streamed field (text, reasoning, one tool call's arguments)."""
        return StreamRedactor(self)

    def redact_json(self, obj: Any) -> Any:
        """Return a copy of ``obj`` with every string value redacted (keys are kept).

        Dicts and lists (and tuples, returned as lists) are rebuilt; the input is never
        mutated. Other scalars are returned as they are.
        """
        return _walk(obj, self.redact_text if self.enabled else _same, 0)


def _same(s: str) -> str:
    return s


def _walk(obj: Any, fn: Callable[[str], str], depth: int) -> Any:
    if isinstance(obj, str):
        return fn(obj)
    if isinstance(obj, dict):
        if depth >= _MAX_DEPTH:
            return "[REDACTED:nested]"
        return {k: _walk(v, fn, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        if depth >= _MAX_DEPTH:
            return "[REDACTED:nested]"
        return [_walk(v, fn, depth + 1) for v in obj]
    return obj


# --- media ---------------------------------------------------------------------------

_DATA_URL = re.compile(r"data:([\w.+\-]+/[\w.+\-]+)?((?:;[\w\-]+=[^;,]*)*);base64,", re.I)


# Only the {"data", "format"} shape is ambiguous; demand base64-looking data there.
_B64_PREFIX = re.compile(r"[A-Za-z0-9+/=\s]{16,}")


def _b64_size(payload: str) -> int:
    """Decoded size of base64 text, without decoding it."""
    n = len(payload.rstrip())
    pad = payload[-2:].count("=") if n else 0
    return max(0, n * 3 // 4 - pad)


def _human(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1 << 20:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1 << 20):.1f} MiB"


def media_placeholder(mime: str, payload: str) -> str:
    """``[image/png base64, 12.3 KiB]``: the type and the decoded size of a payload."""
    return f"[{mime or 'application/octet-stream'} base64, {_human(_b64_size(payload))}]"


def _media_dict(d: dict[str, Any]) -> dict[str, Any] | None:
    """Placeholder version of a known inline-media dict shape, or None."""
    data = d.get("data")
    if not isinstance(data, str) or data.startswith("["):
        return None
    # Anthropic image/document source: {"type": "base64", "media_type": ..., "data": ...}
    if d.get("type") == "base64":
        return {**d, "data": media_placeholder(str(d.get("media_type") or ""), data)}
    # Gemini-style inline data: {"mime_type"/"mimeType": ..., "data": ...}
    mime = d.get("mime_type") or d.get("mimeType")
    if isinstance(mime, str):
        return {**d, "data": media_placeholder(mime, data)}
    # OpenAI input_audio / assistant audio: {"data": ..., "format": "wav"}
    fmt = d.get("format")
    if isinstance(fmt, str) and _B64_PREFIX.fullmatch(data[:256]):
        return {**d, "data": media_placeholder(f"audio/{fmt}", data)}
    return None


def strip_media(obj: Any) -> Any:
    """Return a copy of ``obj`` with inline base64 media replaced by placeholders.

    Handles any ``data:<mime>;base64,`` string (OpenAI ``image_url.url``, Responses
    ``input_image``/``input_file``), OpenAI ``input_audio``, Anthropic base64
    ``source`` blocks and Gemini ``inline_data``. The input is never mutated.
    """
    return _strip(obj, 0)


def _strip(obj: Any, depth: int) -> Any:
    if isinstance(obj, str):
        if obj[:5].lower() == "data:":
            m = _DATA_URL.match(obj)
            if m:
                return media_placeholder(m.group(1) or "", obj[m.end() :])
        return obj
    if depth >= _MAX_DEPTH and isinstance(obj, (dict, list, tuple)):
        return "[REDACTED:nested]"
    if isinstance(obj, dict):
        replaced = _media_dict(obj)
        if replaced is not None:
            return replaced
        return {k: _strip(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strip(v, depth + 1) for v in obj]
    return obj


# --- headers and URLs ----------------------------------------------------------------

_SECRET_HEADER_PARTS = ("auth", "key", "token", "secret", "cookie")


def is_secret_header(name: str) -> bool:
    """True for header names that may carry a credential (``*auth*``, ``*key*``,
    ``*token*``, ``*secret*``, ``cookie``/``set-cookie``), case-insensitively."""
    low = name.lower()
    return any(part in low for part in _SECRET_HEADER_PARTS)


def safe_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """The headers without secret ones; repeated names are joined with ``", "``."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for name, value in items:
        if is_secret_header(name):
            continue
        out[name] = f"{out[name]}, {value}" if name in out else str(value)
    return out


def strip_query(url: str) -> str:
    """``url`` without its query string, fragment or ``user:password@`` part."""
    try:
        parts = urlsplit(url)
    except ValueError:  # malformed (e.g. a bad IPv6 literal): cut by hand
        return url.split("?", 1)[0].split("#", 1)[0]
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
