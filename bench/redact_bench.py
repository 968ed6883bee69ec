"""Redaction benchmark: ms per MiB of every rule and of the whole redactor, worst case.

1. Adversarial inputs of 1 MiB: long runs of every character class the patterns use
   (letters, digits, digits with separators, token alphabets, dots, dashes, "@", "+",
   non-ASCII letters, whitespace), alone and with each anchor (``@ + . - sk- eyJ AKIA ghp_
   xox`` and the newer ``hf_ glpat- npm_ sk_live_ Bearer Basic password= AccountKey= ://
   -----BEGIN \\u00``) at the end or at the start. Target: the whole redactor's worst
   case <= 50 ms/MiB. Then the anchors repeated between short runs, with and without
   separators: text dense with candidates, whose cost is per candidate (reported, no target).
2. Ordinary prose and code (this repo's docs, the Python standard library's sources).
3. Streaming: the same prose fed to a ``StreamRedactor`` in 4-character pieces; then texts of
   32 characters to 4 KiB (a message, a completion): µs per call.
4. Redactions per MiB on that prose and code (``--fp``): the false-positive measurement the
   README quotes; prints a sample of what was redacted so each hit can be judged.

Each figure is the best of ``--repeat`` runs (default 2). Exit status 1 when a target fails.

Usage: python bench/redact_bench.py [--quick] [--repeat N] [--fp]
"""

from __future__ import annotations

import argparse
import re
import sys
import sysconfig
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tokentail.proxy.redact import Redactor  # noqa: E402

MiB = 1 << 20
TARGET_MS = 50.0

CLASSES = {
    "letters": "x",
    "alnum": "a1",
    "upper": "A",
    "digits": "1",
    "digits+space": "1 ",
    "digits+dash": "1-",
    "plus-digits": "+1",
    "token": "aZ_-",
    "base64": "aZ09+/=",
    "dots": "a.",
    "dashes": "-",
    "at": "@",
    "plus": "+",
    "non-ascii": "é",
    "space": " ",
    "backslash-n": "\\n",
}
ANCHORS = [
    "",
    "@",
    "+",
    ".",
    "-",
    "sk-",
    "eyJ",
    "AKIA",
    "ghp_",
    "xox",
    "hf_",
    "glpat-",
    "npm_",
    "sk_live_",
    "Bearer ",
    "Basic ",
    "password=",
    "AccountKey=",
    "://",
    "-----BEGIN PRIVATE KEY-----",
    '"private_key": "',
    "\\u00",
    " contact me @ work",
]


def _fill(unit: str, size: int) -> str:
    return (unit * (size // max(1, len(unit)) + 1))[:size]


def adversarial(size: int, quick: bool) -> tuple[dict[str, str], dict[str, tuple[str, int]]]:
    """(runs, dense): runs of one class with an anchor at one end (the target set), and the
    anchor repeated every few characters (dense candidates: name -> (text, anchors))."""
    runs: dict[str, str] = {}
    dense: dict[str, tuple[str, int]] = {}
    classes = dict(list(CLASSES.items())[:6]) if quick else CLASSES
    for cname, unit in classes.items():
        for anchor in ANCHORS:
            tag = anchor.strip() or "none"
            runs[f"{cname} * N + {tag!r}"] = _fill(unit, size - len(anchor)) + anchor
            if anchor:
                runs[f"{tag!r} + {cname} * N"] = anchor + _fill(unit, size - len(anchor))
                for k in (8, 40):
                    for sep in ("", " "):
                        piece = anchor + unit * k + sep
                        dense[f"({tag!r} + {cname}*{k}{sep!r}) * n"] = (_fill(piece, size), size // len(piece))
    # The issue's own cases.
    runs["'x' * N + ' contact me @ work'"] = _fill("x", size - 18) + " contact me @ work"
    runs["'a.' * N + '@'"] = _fill("a.", size - 1) + "@"
    runs["'-' * N + '@x'"] = _fill("-", size - 2) + "@x"
    runs["('+1' + '1' * 30 + ' ') * n"] = _fill("+1" + "1" * 30 + " ", size)
    return runs, dense


def dense_secrets(size: int) -> dict[str, str]:
    """Every few characters a real secret: the cost is per secret replaced (reported, no target)."""
    return {
        "e-mails every 12 chars": _fill("ann@ex.com, ", size),
        "openai keys every 25 chars": _fill("sk-abcdefghijklmnopqrst ", size),
        "cards every 20 chars": _fill("4111 1111 1111 1111 ", size),
    }


def _repo_docs() -> str:
    root = HERE.parent
    return "\n".join(p.read_text(errors="replace") for p in sorted(root.glob("**/*.md")) if ".venv" not in p.parts)


def stdlib_code(limit: int) -> str:
    """Standard-library sources without tests (tests embed sample addresses on purpose)."""
    base = Path(sysconfig.get_paths()["stdlib"])
    parts: list[str] = []
    n = 0
    for p in sorted(base.rglob("*.py")):
        if any(x in p.parts for x in ("test", "tests", "idle_test", "site-packages", "lib2to3")):
            continue
        t = p.read_text(errors="replace")
        parts.append(t)
        n += len(t)
        if n >= limit:
            break
    return "".join(parts)[:limit]


def prose(limit: int) -> str:
    parts = [_repo_docs()]
    doc = Path("/usr/share/doc")
    n = len(parts[0])
    if doc.is_dir():
        for p in sorted(doc.rglob("*")):
            if p.suffix in ("", ".txt", ".md") and p.is_file() and p.stat().st_size < 200_000:
                try:
                    t = p.read_text()
                except (UnicodeDecodeError, OSError):
                    continue
                if "copyright" in p.name.lower():
                    continue  # licence boilerplate is full of maintainers' addresses
                parts.append(t)
                n += len(t)
                if n >= limit:
                    break
    return "\n".join(parts)[:limit]


def ms_per_mib(fn: Callable[[str], object], s: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(s)
        best = min(best, time.perf_counter() - t0)
    return best * 1000 * MiB / max(1, len(s))


def _us_per_call(fn: Callable[[str], object], s: str, calls: int = 2000) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn(s)
        best = min(best, (time.perf_counter() - t0) / calls * 1e6)
    return best


def _rule_fn(rule) -> Callable[[str], object]:  # type: ignore[no-untyped-def]
    return lambda s: rule.apply(s.encode("utf-8", "surrogatepass"))


def stream_all(red: Redactor, s: str, piece: int = 4) -> str:
    sr = red.stream()
    out = [sr.feed(s[i : i + piece]) for i in range(0, len(s), piece)]
    out.append(sr.flush())
    return "".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer character classes (CI smoke run)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--fp", action="store_true", help="also count redactions on prose and code")
    args = ap.parse_args()
    red = Redactor()
    ok = True

    inputs, dense = adversarial(MiB, args.quick)
    print(f"# whole redactor on {len(inputs)} adversarial inputs of 1 MiB: a run of one class, an anchor at one end")
    whole = sorted(((ms_per_mib(red.redact_text, s, args.repeat), name) for name, s in inputs.items()), reverse=True)
    # A shared machine's load spikes hit single runs: measure the worst ones again, best of 5.
    top = [(ms_per_mib(red.redact_text, inputs[name], 5), name) for _, name in whole[:15]]
    whole = sorted(top + whole[15:], reverse=True)
    for ms, name in whole[:10]:
        print(f"  {ms:8.1f} ms/MiB  {name}")
    worst = whole[0][0]
    verdict = "PASS" if worst <= TARGET_MS else "FAIL"
    ok &= verdict == "PASS"
    print(f"worst case, whole redactor: {worst:.1f} ms/MiB (target <= {TARGET_MS:.0f}) {verdict}")

    print("\n# per rule: worst over those inputs (the rule alone, its hint not consulted)")
    for rule in red._rules:
        fn = _rule_fn(rule)
        w = max(ms_per_mib(fn, s, 1) for s in inputs.values())
        print(f"  {w:8.1f} ms/MiB  {rule.label.decode()}")

    print(f"\n# {len(dense)} inputs dense with candidates: an anchor every 9-68 characters (no target; linear)")
    rows = []
    for name, (s, n) in dense.items():
        ms = ms_per_mib(red.redact_text, s, 1)
        rows.append((ms, ms * 1000 / n, name))
    rows.sort(reverse=True)
    for ms, us, name in rows[:10]:
        print(f"  {ms:8.1f} ms/MiB  {us:5.1f} µs per anchor  {name}")
    print(
        f"  median {sorted(r[0] for r in rows)[len(rows) // 2]:.1f} ms/MiB; worst {max(r[1] for r in rows):.1f} µs per anchor"
    )

    print("\n# ordinary text")
    ordinary = {"prose (docs)": prose(MiB), "code (stdlib)": stdlib_code(MiB)}
    for name, s in ordinary.items():
        print(f"  {ms_per_mib(red.redact_text, s, args.repeat):8.1f} ms/MiB  {name} ({len(s) / MiB:.2f} MiB)")
    s = ordinary["prose (docs)"]
    print(f"  {ms_per_mib(lambda t: stream_all(red, t), s, 1):8.1f} ms/MiB  prose streamed in 4-char pieces")

    print("\n# texts up to 4 KiB, as a message or a completion is redacted: µs per call")
    # The size where the redactor's Python gate ran before the RE2 Set: ~100 ns a character
    # when no hint was found (the common case), 0.4 ms for 4 KiB of plain prose.
    plain = "The quick brown fox jumps over the lazy dog and keeps on running. " * 80
    for size in (32, 256, 1024, 4096):
        text = plain[:size]
        print(f"  {_us_per_call(red.redact_text, text):8.2f} µs  {size:>5} chars of prose without a hint")
    text = (s[: 4 * 1024]).rsplit(" ", 1)[0]
    print(f"  {_us_per_call(red.redact_text, text):8.2f} µs  {len(text):>5} chars of the docs' prose")

    print("\n# dense real secrets (cost per secret replaced; no target)")
    for name, s in dense_secrets(MiB).items():
        print(f"  {ms_per_mib(red.redact_text, s, args.repeat):8.1f} ms/MiB  {name}")

    if args.fp:
        print("\n# redactions on ordinary text (false positives unless the hit is a real address)")
        label = re.compile(r"\[REDACTED:(\w+)\]")
        for name, size in (("prose (docs)", 4 * MiB), ("code (stdlib)", 8 * MiB)):
            text = prose(size) if name.startswith("prose") else stdlib_code(size)
            out = red.redact_text(text)
            kinds = Counter(label.findall(out)) - Counter(label.findall(text))
            mib = len(text) / MiB
            total = sum(kinds.values())
            print(f"  {name}: {mib:.2f} MiB, {total} redactions = {total / mib:.1f} per MiB; by kind: {dict(kinds)}")
            samples = _samples(red, text, 12)
            for smp in samples:
                print(f"      {smp}")
    return 0 if ok else 1


def _samples(red: Redactor, text: str, n: int) -> list[str]:
    out: list[str] = []
    for line in text.splitlines():
        r = red.redact_text(line)
        if r != line:
            out.append(f"{line.strip()[:100]!r}")
            if len(out) >= n:
                break
    return out


if __name__ == "__main__":
    sys.exit(main())
