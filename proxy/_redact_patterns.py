"""The redaction rules: one RE2 pattern per kind of secret (pure, no I/O).

Why RE2 (``google-re2``) and not Python's ``re``: every captured text is untrusted, and a
backtracking engine turns patterns like ``[\\w.+-]+@`` into O(n²) work on inputs such as
``"x" * n + " @ work"`` (24 s for 100 kB before this module). RE2 runs in time linear in
the text for any pattern, so no prompt can stall the event loop. Measured on 1 MiB
(``bench/redact_bench.py``): Python ``re`` needed 60-300 ms/MiB for the e-mail rule alone
even with possessive quantifiers and look-behinds that start it only at word starts, RE2
about 2 ms/MiB. RE2 has no look-around and no back-references, so:

- the characters around a secret that must *not* be a word character (the old
  look-behind/look-ahead) are matched as ``(?:^|[^...])`` before and ``(?:[^...]|$)`` after
  it, and cut off the span again in Python (``Rule.lead``/``tail``). The scan resumes at the
  end of the secret, so a separator that ended one secret can start the next;
- patterns have no capturing groups: RE2 then finds a span with its DFA alone (measured
  3.6 µs per match through the binding, against 14.8 µs with one group); a label before
  the secret (``Bearer``, ``password=``) is measured off with a possessive Python regex
  anchored at the span's start;
- a few checks that no regular expression states well (Luhn, digit counts, "looks random",
  base64 that decodes to ``user:password``) run in Python on each candidate only; the
  patterns are tight enough that candidates are (nearly) always real secrets.

Cost: one RE2 pass over the text finds which rules' literal hints it holds (an ``re2.Set``
of literals, ~1-3 ms/MiB: a Set of the full patterns was slower than running them), then one
RE2 pass per such rule, plus 4-19 µs per candidate. Text dense with secrets or near-misses
(one every ~10-70 characters) therefore costs up to ~500 ms per MiB: still linear, and the
bench reports it apart from the runs-of-one-class adversarial inputs (worst 22.5 ms/MiB).

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
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import re2

__all__ = ["DIGITS", "RULE_SPECS", "Rule", "luhn_ok", "options"]

DIGITS = b"0123456789"  # hint marker: the rule can only match text that holds an ASCII digit


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


# Issuer prefixes and lengths (Visa, Mastercard incl. 2-series, Amex, Discover, Diners, JCB,
# UnionPay): Luhn alone passes one digit run in ten, e.g. timestamps like 20150811100527.
_NETWORKS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("4", (13, 16, 19)),
    *((str(p), (16,)) for p in range(51, 56)),
    *((str(p), (16,)) for p in range(2221, 2721)),
    ("34", (15,)),
    ("37", (15,)),
    ("6011", (16, 17, 18, 19)),
    ("65", (16, 17, 18, 19)),
    *((str(p), (16, 17, 18, 19)) for p in range(644, 650)),
    ("300", (14,)), ("301", (14,)), ("302", (14,)), ("303", (14,)), ("304", (14,)), ("305", (14,)),
    ("36", (14,)),
    ("38", (14,)),
    ("35", (16, 17, 18, 19)),
    ("62", (16, 17, 18, 19)),
)  # fmt: skip


def _card_ok(b: bytes) -> bool:
    d = _digits(b)
    if not 13 <= len(d) <= 19 or not any(d.startswith(p) and len(d) in n for p, n in _NETWORKS):
        return False
    return luhn_ok(d)


def _national_phone_ok(b: bytes) -> bool:
    # 9-12 digits; a US ZIP+4 code ("MA 02110-1301") has the same shape as "01234-5678".
    n = sum(48 <= c <= 57 for c in b)
    return 9 <= n <= 12 and not (len(b) == 10 and b[5:6] == b"-")


def _count_between(lo: int, hi: int) -> Callable[[bytes], bool]:
    return lambda b: lo <= sum(48 <= c <= 57 for c in b) <= hi


def _groups(ok: Callable[[bytes], bool], both_ends: bool) -> Callable[[bytes], tuple[int, int] | None]:
    """A check that, when the whole run of digit groups fails, tries it without its outer
    groups ("5555 5555 5555 4444 3" is a card and a 3; "020 7946 0958 2024" a phone and a
    year), longest first. Runs are at most ~40 bytes, so this is a few dozen checks."""

    def refine(b: bytes) -> tuple[int, int] | None:
        if ok(b):
            return 0, len(b)
        cuts = [i for i, c in enumerate(b) if c in b" -."]
        starts = [0] + ([i + 1 for i in cuts] if both_ends else [])
        spans = [(s, e) for s in starts for e in [*cuts, len(b)] if e > s]
        for s, e in sorted(spans, key=lambda se: se[0] - se[1]):
            if ok(b[s:e]):
                return s, e
        return None

    return refine


_RANDOM_CHARS = b"0123456789-._~+/"


def _looks_random(b: bytes) -> bool:
    # A bearer token has a digit or punctuation, so prose ("bearer bonds") survives.
    # translate() deletes at C speed: a per-byte Python loop took 45 ms on a 1 MiB token.
    return len(b.translate(None, _RANDOM_CHARS)) < len(b)


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
    if any(w in low for w in (b"password", b"passwd", b"secret", b"pwd", b"environ", b"getenv")):
        return False
    # A value has a digit or a symbol; an identifier ("= config", "= user_input") has none.
    return low.strip(b"abcdefghijklmnopqrstuvwxyz_.") != b""


@dataclass(frozen=True, slots=True)
class Rule:
    """One kind of secret.

    ``pattern`` is an RE2 pattern over UTF-8 bytes without capturing groups (RE2 finds a
    match's span with its DFA alone, ~4x faster than with groups). The span may include one
    separator character on each side (``lead``/``tail``: the classes a secret itself starts
    and ends with; a span byte outside them is that separator), a label before the secret
    (``label``: a Python regex, possessive so linear, whose match at the span's start ends
    where the secret begins) and ``drop`` literal bytes after it (the ``@`` of URL
    credentials). ``hints`` are lower-case literals of which the text must contain one
    (``DIGITS``: an ASCII digit) for the rule to run; ``check`` vetoes a candidate.
    """

    name: str
    pattern: Any  # re2._Regexp (the binding ships no type stubs)
    hints: tuple[bytes, ...]
    check: Callable[[bytes], bool] | None = None
    lead: frozenset[int] | None = None
    tail: frozenset[int] | None = None
    label: re.Pattern[bytes] | None = None
    drop: int = 0
    refine: Callable[[bytes], tuple[int, int] | None] | None = None


_B = r"A-Za-z0-9_\-"  # base64url / token alphabet (inside a class)
_KEY = r"A-Za-z0-9_\]\-"  # what may not stand right before a key: a word character, "]" or "-"
_WORD = r"A-Za-z0-9_\]"
_NUM = r"A-Za-z0-9_.+\]\-"  # not before a national phone number
_RNUM = r"A-Za-z0-9_\["  # not after a phone number (a label's "[" counts as a word)


@dataclass(frozen=True, slots=True)
class _Spec:
    name: str
    core: str  # RE2, no capturing groups
    hints: tuple[bytes, ...]
    before: str | None = None  # class body of what may not precede the secret
    after: str | None = None  # class body of what may not follow it
    after_re: str | None = None  # RE2 for what follows instead (it must start outside ``after``)
    check: Callable[[bytes], bool] | None = None
    label: str | None = None  # Python regex of the label part of ``core``
    drop: int = 0
    opens: bytes = b""  # a first character of the secret that may also be a separator: "(415)"
    refine: Callable[[bytes], tuple[int, int] | None] | None = None  # instead of check: the span kept


_SPECS = [
    _Spec("anthropic_key", rf"sk-ant-[{_B}]{{20,}}", (b"sk-ant-",), _KEY),
    _Spec("openai_key", rf"sk-(?:proj-|svcacct-|admin-)?[{_B}]{{20,}}", (b"sk-",), _KEY),
    _Spec("stripe_key", r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}", (b"_live_", b"_test_"), _WORD),
    _Spec("aws_access_key", r"(?:AKIA|ASIA)[A-Z0-9]{16}", (b"akia", b"asia"), r"A-Za-z0-9\]", r"A-Za-z0-9\["),
    _Spec(
        "aws_secret_key",
        r"(?i:(?:aws[_\-]?)?secret[_\-]?access[_\-]?key)[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{40}",
        (b"secret",),
        after=r"A-Za-z0-9/+=\[",
        label=r"(?i:(?:aws[_\-]?)?secret[_\-]?access[_\-]?key)[\"']?\s*+[:=]\s*+[\"']?",
    ),
    _Spec(
        "github_token",
        r"gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,}",
        (b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_", b"github_pat_"),
        _WORD,
    ),
    _Spec("gitlab_token", rf"glpat-[{_B}]{{20,}}", (b"glpat-",), _KEY),
    _Spec("huggingface_token", r"hf_[A-Za-z0-9]{30,}", (b"hf_",), _KEY),
    _Spec("npm_token", r"npm_[A-Za-z0-9]{36,}", (b"npm_",), _KEY),
    _Spec("google_api_key", rf"AIza[{_B}]{{35}}", (b"aiza",), _KEY, rf"{_B}\["),
    _Spec("slack_token", r"xox[abposr]-[A-Za-z0-9\-]{10,}", (b"xox",), _KEY),
    _Spec(
        "slack_webhook",
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_\-]+",
        (b"hooks.slack.com",),
    ),
    _Spec("jwt", rf"eyJ[{_B}]{{7,}}\.[{_B}]{{7,}}\.[{_B}]*", (b"eyj",), _KEY),
    # A service account's JSON: the whole value, whatever its shape.
    _Spec(
        "gcp_private_key",
        r"[\"']private_key[\"']\s*:\s*[\"'][^\"']{16,}",
        (b"private_key",),
        label=r"[\"']private_key[\"']\s*+:\s*+[\"']",
    ),
    # The body may be JSON-escaped ("\n" as backslash-n) and may lack its END line (a
    # truncated capture): then it runs to the first character no PEM body has.
    _Spec(
        "pem_private_key",
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:[A-Za-z0-9+/=\s\\:,]|-[^\-])*"
        r"(?:-----END [A-Z0-9 ]*PRIVATE KEY-----)?",
        (b"-----begin",),
    ),
    _Spec(
        "azure_account_key",
        r"(?i:AccountKey)\s*=\s*[A-Za-z0-9+/]{20,}={0,2}",
        (b"accountkey",),
        label=r"(?i:AccountKey)\s*+=\s*+",
    ),
    _Spec(
        "url_credentials",
        r"[A-Za-z][A-Za-z0-9+.\-]{0,15}://[^\s:/@\"'<>\[\]]+:[^\s/@\"'<>\[\]]+@",
        (b"://",),
        label=r"[A-Za-z][A-Za-z0-9+.\-]{0,15}+://",
        drop=1,
    ),
    _Spec(
        "bearer_token",
        r"(?i:bearer)\s+[A-Za-z0-9\-._~+/]{16,}=*",
        (b"bearer",),
        _WORD,
        check=_looks_random,
        label=r"(?i:bearer)\s++",
    ),
    _Spec(
        "basic_auth",
        r"(?i:basic)\s+[A-Za-z0-9+/]{6,}={0,2}",
        (b"basic",),
        _WORD,
        r"A-Za-z0-9+/=\[",
        check=_basic_ok,
        label=r"(?i:basic)\s++",
    ),
    _Spec(
        "password",
        r"(?i:password|passwd|passphrase|pwd|secret)[\"']?\s*[:=]\s*[\"']?[^\s\"'\[\],;`]{4,}",
        (b"pass", b"pwd", b"secret"),
        check=_assignment_ok,
        label=r"(?i:password|passwd|passphrase|pwd|secret)[\"']?\s*+[:=]\s*+[\"']?",
    ),
    # Card networks issue numbers starting 2-6; this keeps ms timestamps (17...) and ids out.
    _Spec("card", r"[2-6](?:[ \-]?[0-9]){12,18}", (DIGITS,), r"0-9+\]\-", r"0-9\[", refine=_groups(_card_ok, True)),
    # Phones need a leading + or separators, so years, ids and timestamps survive:
    # +CC international (8-15 digits, counted digit by digit in the pattern so that runs like
    # "+1 1 1 1" never become candidates), US (415) 555-2671 / 415-555-2671 with one
    # consistent separator, and trunk-0 national numbers (020 7946 0958, 06 12 34 56 78).
    _Spec(
        "phone",
        r"\+[1-9](?:[ \-]?(?:[0-9]|\([0-9]{1,4}\) ?[0-9])){7,14}",  # no country code starts with 0
        (b"+",),
        r"A-Za-z0-9_+\]",
        r"0-9\[",
        after_re=r"(?:[^0-9\[.]|\.[^0-9]|\.$|$)",  # "+35236450.6" is a decimal number
        refine=_groups(_count_between(8, 15), False),
    ),
    _Spec(
        "phone",
        r"\([0-9]{3}\) ?[0-9]{3}[ .\-][0-9]{4}|[0-9]{3} [0-9]{3} [0-9]{4}"
        r"|[0-9]{3}\.[0-9]{3}\.[0-9]{4}|[0-9]{3}-[0-9]{3}-[0-9]{4}",
        (DIGITS,),
        _NUM,
        _RNUM,
        opens=b"(",
    ),
    _Spec(
        "phone",
        r"0[1-9][0-9]{0,3}(?: [0-9]{2,8}){1,4}|0[1-9][0-9]{0,3}(?:\.[0-9]{2,8}){1,4}"
        r"|0[1-9][0-9]{0,3}(?:-[0-9]{2,8}){1,4}",  # trunk 0, then an area code ("00" dials abroad)
        (DIGITS,),
        _NUM,
        _RNUM,
        refine=_groups(_national_phone_ok, False),
    ),
    # Unicode letters in the local part and domain (jörg.müller@beispiel.de) are taken whole.
    _Spec("email", r"[\pL\pM\pN_.%+\-]+@[\pL\pM\pN_\-]+(?:\.[\pL\pM\pN_\-]+)*\.[A-Za-z]{2,}", (b"@",)),
]


def options() -> Any:
    """RE2 options for the rules: room for the DFA of the Unicode classes (no NFA fallback)."""
    opts = re2.Options()
    opts.max_mem = 64 << 20
    return opts


def _members(body: str) -> frozenset[int]:
    cls = re.compile(f"[{body}]".encode())
    return frozenset(c for c in range(128) if cls.fullmatch(bytes([c])))


def _rule(spec: _Spec) -> Rule:
    pat = f"(?:{spec.core})"
    if spec.before is not None:
        pat = rf"(?:^|[^{spec.before}]){pat}"
    if spec.after_re is not None:
        pat = f"{pat}{spec.after_re}"
    elif spec.after is not None:
        pat = rf"{pat}(?:[^{spec.after}]|$)"
    return Rule(
        spec.name,
        re2.compile(pat.encode(), options()),
        spec.hints,
        spec.check,
        None if spec.before is None else _members(spec.before) | frozenset(spec.opens),
        None if spec.after is None else _members(spec.after),
        None if spec.label is None else re.compile(spec.label.encode()),
        spec.drop,
        spec.refine,
    )


RULE_SPECS: tuple[Rule, ...] = tuple(_rule(s) for s in _SPECS)
