"""Keep secrets and personal data out of what tokentail captures (pure, no I/O).

Three jobs, one per entry point:

- ``Redactor.redact_text`` / ``redact_json``: replace e-mails, phone numbers, card
  numbers and API keys/tokens with ``[REDACTED:<kind>]``. Each kind is one ``Rule``
  in the ``RULES`` registry, so a rule can be switched off by name.
- ``strip_media``: replace inline base64 images/audio/files with a short
  placeholder such as ``[image/png base64, 12.3 KiB]``.
- ``is_secret_header`` / ``safe_headers`` / ``strip_query``: no header or URL part that
  may carry a credential leaves the proxy.

``redact_text`` runs on every streamed delta, so it starts with one combined
"hint" search (a cheap necessary condition of every enabled rule) and returns the
text untouched when nothing can match.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "RULES",
    "RULE_NAMES",
    "Redactor",
    "Rule",
    "is_secret_header",
    "luhn_ok",
    "media_placeholder",
    "safe_headers",
    "strip_media",
    "strip_query",
]

_MAX_DEPTH = 256  # deeper JSON is replaced whole rather than risk RecursionError
_MAX_PASSES = 4  # see redact_text: passes repeat until stable (two in practice)


@dataclass(frozen=True, slots=True)
class Rule:
    """One kind of sensitive text.

    ``hint`` is a regex that every match of ``pattern`` contains and that is cheap to
    search; ``group`` is the part of the match replaced (0 = all of it, 1 = keep a
    label such as ``Bearer``); ``check`` vetoes matches (Luhn, digit counts).
    """

    name: str
    pattern: re.Pattern[str]
    hint: str
    group: int = 0
    check: Callable[[str], bool] | None = None


def luhn_ok(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _digits(s: str) -> str:
    return "".join(ch for ch in s if ch.isdigit())


def _card_ok(s: str) -> bool:
    d = _digits(s)
    # Card networks issue numbers starting 2-6 (Visa, Mastercard, Amex, Discover,
    # JCB, Diners, UnionPay); this keeps ms timestamps (17...) and ids out.
    return 13 <= len(d) <= 19 and d[0] in "23456" and luhn_ok(d)


def _count_between(lo: int, hi: int) -> Callable[[str], bool]:
    return lambda s: lo <= len(_digits(s)) <= hi


# Order matters: specific key formats before the generic ones (sk-ant- before sk-,
# keys before Bearer), and all of them before card/phone, whose digit patterns
# could otherwise bite into a key. Each rule checks its neighbours (so "x+1234..."
# or "id1234..." are not secrets), and a "[REDACTED:...]" label counts as a word
# there: a replacement never turns a neighbour into a match (idempotence).
_B = r"[A-Za-z0-9_\-]"  # base64url / token alphabet
_RULE_SPECS: list[tuple[str, str, str, int, Callable[[str], bool] | None]] = [
    ("anthropic_key", rf"(?<![\w\]-])sk-ant-{_B}{{20,}}", r"sk-", 0, None),
    ("openai_key", rf"(?<![\w\]-])sk-(?:proj-|svcacct-|admin-)?{_B}{{20,}}", r"sk-", 0, None),
    ("aws_access_key", r"(?<![A-Za-z0-9\]])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9\[])", r"AKIA|ASIA", 0, None),
    (
        "aws_secret_key",
        r"(?i:(?:aws[_\-]?)?secret[_\-]?access[_\-]?key)[\"']?\s*[:=]\s*[\"']?"
        r"([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=\[])",
        r"ecret|ECRET",
        1,
        None,
    ),
    (
        "github_token",
        r"(?<![\w\]])(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})",
        r"gh[pousr]_|github_pat_",
        0,
        None,
    ),
    ("google_api_key", r"(?<![\w\]-])AIza[0-9A-Za-z_\-]{35}(?![\w\[-])", r"AIza", 0, None),
    ("slack_token", r"(?<![\w\]-])xox[abposr]-[A-Za-z0-9\-]{10,}", r"xox[abposr]-", 0, None),
    (
        "slack_webhook",
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_\-]+",
        r"hooks\.slack\.com",
        0,
        None,
    ),
    ("jwt", rf"(?<![\w\]-])eyJ{_B}{{7,}}\.{_B}{{7,}}\.{_B}*", r"eyJ", 0, None),
    # The token must look random (a digit or punctuation) so prose ("bearer bonds") survives.
    (
        "bearer_token",
        r"(?<![\w\]])(?i:bearer)\s+(?=[A-Za-z0-9\-._~+/]*[0-9\-._~+/])([A-Za-z0-9\-._~+/]{16,}=*)",
        r"earer|EARER",
        1,
        None,
    ),
    ("card", r"(?<![\d+\-\]])(?:\d[ \-]?){12,18}\d(?![\d\[])", r"\d(?:[ \-]?\d){12}", 0, _card_ok),
    # Phones need a leading + or separators, so years, ids and timestamps survive:
    # +CC international (8-15 digits), US (415) 555-2671 / 415-555-2671 with one
    # consistent separator, and trunk-0 national numbers (020 7946 0958, 06 12 34 56 78).
    (
        "phone",
        r"(?<![\w+\]])\+\d{1,3}(?:[ \-]?\(\d{1,4}\))?(?:[ \-]?\d{1,5}){1,5}(?![\d\[])",
        r"\+\d",
        0,
        _count_between(8, 15),
    ),
    (
        "phone",
        r"(?<![\w.+\-\]])(?:\(\d{3}\) ?\d{3}[ .\-]|\d{3}([ .\-])\d{3}\1)\d{4}(?![\w\[])",
        r"\d[ .\-]\d",
        0,
        None,
    ),
    (
        "phone",
        r"(?<![\w.+\-\]])0\d{1,4}([ .\-])\d{2,8}(?:\1\d{2,8}){0,3}(?![\w\[])",
        r"\d[ .\-]\d",
        0,
        _count_between(9, 12),
    ),
    ("email", r"[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)*\.[A-Za-z]{2,}", r"@", 0, None),
]

# ASCII classes: \d must not match other scripts' digits (Luhn and digit counts
# assume 0-9). E-mail keeps Unicode \w so a non-ASCII local part is taken whole.
RULES: tuple[Rule, ...] = tuple(
    Rule(name, re.compile(pat, 0 if name == "email" else re.ASCII), hint, group, check)
    for name, pat, hint, group, check in _RULE_SPECS
)
RULE_NAMES: frozenset[str] = frozenset(r.name for r in RULES)


class _Compiled:
    """A rule ready to apply: its own hint regex plus the substitution function."""

    __slots__ = ("hint", "pattern", "repl")

    def __init__(self, rule: Rule) -> None:
        self.pattern = rule.pattern
        self.hint = re.compile(rule.hint, rule.pattern.flags & re.ASCII)
        label = f"[REDACTED:{rule.name}]"
        group, check = rule.group, rule.check

        def repl(m: re.Match[str]) -> str:
            if check is not None and not check(m.group(0)):
                return m.group(0)
            if group == 0:
                return label
            whole, base = m.group(0), m.start()
            return whole[: m.start(group) - base] + label + whole[m.end(group) - base :]

        self.repl = repl


class Redactor:
    """Redacts captured text and JSON bodies; on by default with every rule.

    ``rules`` names the rules to apply (``RULE_NAMES``; None = all); unknown names
    raise ``ValueError`` so a typo in the config fails at start. ``extra_patterns``
    adds user regexes: a mapping ``{kind: pattern}`` or a list of patterns (kind
    ``custom``). ``enabled=False`` turns all of it off.
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
        # The fast path: the built-in hints joined bare into one regex (no group per
        # hint: measurably faster; each hint is a valid top-level alternation).
        hints = dict.fromkeys(r.hint for r in chosen)
        gates = [re.compile("|".join(hints), re.ASCII)] if hints else []
        if extra_patterns:
            if isinstance(extra_patterns, Mapping):
                items = list(extra_patterns.items())
            else:
                items = [("custom", p) for p in extra_patterns]
            for kind, pat in items:
                # A user pattern is its own hint (it may carry global flags like "(?i)").
                rule = Rule(kind, re.compile(pat), pat)
                chosen.append(rule)
                gates.append(rule.pattern)
        self.enabled = enabled and bool(chosen)
        self.rule_names = frozenset(r.name for r in chosen)
        self._rules = [_Compiled(r) for r in chosen]
        self._gates = gates

    def redact_text(self, s: str) -> str:
        """Return ``s`` with every sensitive span replaced by ``[REDACTED:<kind>]``."""
        if not self.enabled or not s:
            return s
        for gate in self._gates:
            if gate.search(s) is not None:
                break
        else:  # nothing can match: the common case for a streamed token
            return s
        # A replacement can change what a neighbouring match looks like (a run vetoed
        # as too long for a phone gets shorter once its tail became an e-mail label),
        # so passes repeat until nothing changes: redact_text is idempotent. The
        # second pass runs only when the first replaced something.
        for _ in range(_MAX_PASSES):
            before = s
            for rule in self._rules:
                if rule.hint.search(s) is not None:
                    s = rule.pattern.sub(rule.repl, s)
            if s == before:
                break
        return s

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
