"""The redaction rules: one RE2 pattern per kind of secret (pure, no I/O).

Why RE2 (``google-re2``) and not Python's ``re``: every captured text is untrusted, and a
backtracking engine turns patterns like ``[\\w.+-]+@`` into O(n²) work on inputs such as
``"x" * n + " @ work"`` (24 s for 100 kB before this module). RE2 runs in time linear in
the text for any pattern, so no prompt can stall the event loop. Measured on 1 MiB
(``bench/redact_bench.py``): Python ``re`` needed 60-300 ms/MiB for the e-mail rule alone
even with possessive quantifiers and look-behinds that start it only at word starts, RE2
about 2 ms/MiB. RE2 has no look-around and no back-references, so:

- every pattern keeps the replaced part in group 1 ("s"); the characters around it that
  must *not* be a word character (the old look-behind/look-ahead) are matched as
  ``(?:^|[^...])`` before and ``(?:[^...]|$)`` after it. The scan resumes at the end of
  group 1, so a separator that ended one secret can start the next;
- a few checks that no regular expression states well (Luhn, digit counts, "looks random",
  base64 that decodes to ``user:password``) run in Python on each candidate only; the
  patterns are tight enough that candidates are (nearly) always real secrets.

Rules work on UTF-8 bytes (RE2's native form: no offset translation per match). Classes are
ASCII unless they say ``\\pL`` (a non-ASCII local part of an e-mail address).

Order matters: specific key formats before generic ones (``sk-ant-`` before ``sk-``, keys
before ``Bearer``, a service account's ``private_key`` before the PEM block), and all of them
before card/phone, whose digit runs could otherwise bite into a key. A ``[REDACTED:...]``
label counts as a word: ``]`` before and ``[`` after are never separators (idempotence).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import re2

__all__ = ["DIGITS", "RULE_SPECS", "Rule", "luhn_ok"]

DIGITS = b"0123456789"  # hint marker: the rule can only match text that holds an ASCII digit

# Boundaries (as RE2 groups that consume the neighbouring character).
_LB_KEY = r"(?:^|[^A-Za-z0-9_\]\-])"  # before a key: not a word char, "]" or "-"
_LB_WORD = r"(?:^|[^A-Za-z0-9_\]])"
_LB_NUM = r"(?:^|[^A-Za-z0-9_.+\]\-])"  # before a national phone number
_RB_NUM = r"(?:[^A-Za-z0-9_\[]|$)"


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


def _digits(b: bytes) -> str:
    return "".join(chr(c) for c in b if 48 <= c <= 57)


def _card_ok(b: bytes) -> bool:
    d = _digits(b)
    return 13 <= len(d) <= 19 and luhn_ok(d)


def _count_between(lo: int, hi: int) -> Callable[[bytes], bool]:
    return lambda b: lo <= sum(48 <= c <= 57 for c in b) <= hi


_RANDOM_CHARS = frozenset(b"0123456789-._~+/")


def _looks_random(b: bytes) -> bool:
    # A bearer token has a digit or punctuation, so prose ("bearer bonds") survives.
    return any(c in _RANDOM_CHARS for c in b)


def _basic_ok(b: bytes) -> bool:
    # Basic credentials are base64("user:password"); "basic understanding" does not decode so.
    try:
        raw = base64.b64decode(b + b"=" * (-len(b) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    user, sep, _ = raw.partition(b":")
    return bool(sep and user) and all(32 <= c < 127 for c in raw)


_PLACEHOLDER_VALUES = frozenset(
    b"none null nil true false undefined required optional string changeme example redacted".split()
)


def _assignment_ok(b: bytes) -> bool:
    # Keep code and docs ("password = getpass()", "secret=args.secret", "password: ${DB_PASSWORD}",
    # "password: ********") out: those are references or placeholders, not values.
    low = b.lower()
    if low in _PLACEHOLDER_VALUES or b"(" in b or b[:1] in b"$%{<*" or low.strip(b"*x.") == b"":
        return False
    return not any(w in low for w in (b"password", b"passwd", b"secret", b"pwd", b"environ", b"getenv"))


@dataclass(frozen=True, slots=True)
class Rule:
    """One kind of secret.

    ``pattern`` is an RE2 pattern over UTF-8 bytes whose group 1 is the part replaced;
    ``hints`` are lower-case literals of which the text must contain one (``DIGITS``: an
    ASCII digit) for the rule to run at all; ``check`` vetoes a candidate (group 1 bytes).
    """

    name: str
    pattern: Any  # re2._Regexp (the binding ships no type stubs)
    hints: tuple[bytes, ...]
    check: Callable[[bytes], bool] | None = None


_B = r"[A-Za-z0-9_\-]"  # base64url / token alphabet

# (name, RE2 pattern with the replaced part as group 1, hints, check)
_SPECS: list[tuple[str, str, tuple[bytes, ...], Callable[[bytes], bool] | None]] = [
    ("anthropic_key", rf"{_LB_KEY}(sk-ant-{_B}{{20,}})", (b"sk-ant-",), None),
    ("openai_key", rf"{_LB_KEY}(sk-(?:proj-|svcacct-|admin-)?{_B}{{20,}})", (b"sk-",), None),
    ("stripe_key", rf"{_LB_WORD}((?:sk|rk)_(?:live|test)_[A-Za-z0-9]{{16,}})", (b"_live_", b"_test_"), None),
    (
        "aws_access_key",
        r"(?:^|[^A-Za-z0-9\]])((?:AKIA|ASIA)[A-Z0-9]{16})(?:[^A-Za-z0-9\[]|$)",
        (b"akia", b"asia"),
        None,
    ),
    (
        "aws_secret_key",
        r"(?i:(?:aws[_\-]?)?secret[_\-]?access[_\-]?key)[\"']?\s*[:=]\s*[\"']?"
        r"([A-Za-z0-9/+=]{40})(?:[^A-Za-z0-9/+=\[]|$)",
        (b"secret",),
        None,
    ),
    (
        "github_token",
        rf"{_LB_WORD}(gh[pousr]_[A-Za-z0-9]{{30,}}|github_pat_[A-Za-z0-9_]{{22,}})",
        (b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_", b"github_pat_"),
        None,
    ),
    ("gitlab_token", rf"{_LB_KEY}(glpat-{_B}{{20,}})", (b"glpat-",), None),
    ("huggingface_token", rf"{_LB_KEY}(hf_[A-Za-z0-9]{{30,}})", (b"hf_",), None),
    ("npm_token", rf"{_LB_KEY}(npm_[A-Za-z0-9]{{36,}})", (b"npm_",), None),
    ("google_api_key", rf"{_LB_KEY}(AIza{_B}{{35}})(?:[^A-Za-z0-9_\[\-]|$)", (b"aiza",), None),
    ("slack_token", rf"{_LB_KEY}(xox[abposr]-[A-Za-z0-9\-]{{10,}})", (b"xox",), None),
    (
        "slack_webhook",
        r"(https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_\-]+)",
        (b"hooks.slack.com",),
        None,
    ),
    ("jwt", rf"{_LB_KEY}(eyJ{_B}{{7,}}\.{_B}{{7,}}\.{_B}*)", (b"eyj",), None),
    # A service account's JSON: the whole value, whatever its shape.
    ("gcp_private_key", r"[\"']private_key[\"']\s*:\s*[\"']([^\"']{16,})", (b"private_key",), None),
    # The body may be JSON-escaped ("\n" as backslash-n) and may lack its END line (a
    # truncated capture): then it runs to the first character no PEM body has.
    (
        "pem_private_key",
        r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:[A-Za-z0-9+/=\s\\:,.]|-[^\-])*"
        r"(?:-----END [A-Z0-9 ]*PRIVATE KEY-----)?)",
        (b"-----begin",),
        None,
    ),
    ("azure_account_key", r"(?i:AccountKey)\s*=\s*([A-Za-z0-9+/]{20,}={0,2})", (b"accountkey",), None),
    (
        "url_credentials",
        r"[A-Za-z][A-Za-z0-9+.\-]{0,15}://([^\s:/@\"'<>\[\]]+:[^\s/@\"'<>\[\]]+)@",
        (b"://",),
        None,
    ),
    (
        "bearer_token",
        r"(?:^|[^A-Za-z0-9_\]])(?i:bearer)\s+([A-Za-z0-9\-._~+/]{16,}=*)",
        (b"bearer",),
        _looks_random,
    ),
    (
        "basic_auth",
        r"(?:^|[^A-Za-z0-9_\]])(?i:basic)\s+([A-Za-z0-9+/]{6,}={0,2})(?:[^A-Za-z0-9+/=\[]|$)",
        (b"basic",),
        _basic_ok,
    ),
    (
        "password",
        r"(?i:password|passwd|passphrase|pwd|secret)[\"']?\s*[:=]\s*[\"']?([^\s\"'\[\],;`]{4,})",
        (b"pass", b"pwd", b"secret"),
        _assignment_ok,
    ),
    # Card networks issue numbers starting 2-6; this keeps ms timestamps (17...) and ids out.
    (
        "card",
        r"(?:^|[^0-9+\]\-])([2-6](?:[ \-]?[0-9]){12,18})(?:[^0-9\[]|$)",
        (DIGITS,),
        _card_ok,
    ),
    # Phones need a leading + or separators, so years, ids and timestamps survive:
    # +CC international (8-15 digits), US (415) 555-2671 / 415-555-2671 with one
    # consistent separator, and trunk-0 national numbers (020 7946 0958, 06 12 34 56 78).
    (
        "phone",
        r"(?:^|[^A-Za-z0-9_+\]])(\+[0-9]{1,3}(?:[ \-]?\([0-9]{1,4}\))?(?:[ \-]?[0-9]{1,5}){1,5})(?:[^0-9\[]|$)",
        (b"+",),
        _count_between(8, 15),
    ),
    (
        "phone",
        rf"{_LB_NUM}(\([0-9]{{3}}\) ?[0-9]{{3}}[ .\-][0-9]{{4}}|[0-9]{{3}} [0-9]{{3}} [0-9]{{4}}"
        rf"|[0-9]{{3}}\.[0-9]{{3}}\.[0-9]{{4}}|[0-9]{{3}}-[0-9]{{3}}-[0-9]{{4}}){_RB_NUM}",
        (DIGITS,),
        None,
    ),
    (
        "phone",
        rf"{_LB_NUM}(0[0-9]{{1,4}}(?: [0-9]{{2,8}}){{1,4}}|0[0-9]{{1,4}}(?:\.[0-9]{{2,8}}){{1,4}}"
        rf"|0[0-9]{{1,4}}(?:-[0-9]{{2,8}}){{1,4}}){_RB_NUM}",
        (DIGITS,),
        _count_between(9, 12),
    ),
    # Unicode letters in the local part and domain (jörg.müller@beispiel.de) are taken whole.
    ("email", r"([\pL\pM\pN_.%+\-]+@[\pL\pM\pN_\-]+(?:\.[\pL\pM\pN_\-]+)*\.[A-Za-z]{2,})", (b"@",), None),
]


def _compile(pattern: str) -> Any:
    opts = re2.Options()
    opts.max_mem = 64 << 20  # room for the DFA of the Unicode classes: no fallback to the slower NFA
    return re2.compile(pattern.encode(), opts)


RULE_SPECS: tuple[Rule, ...] = tuple(Rule(n, _compile(p), h, c) for n, p, h, c in _SPECS)
