"""Deterministic, readable completion text and tool-call arguments, from a seed (pure).

Text is built from a fixed set of sentences made once at import from a small word
list and templates; a request's seed picks sentences, so generating a completion
costs a few random draws per sentence, never per token. A token is a word piece as
an LLM streams it: ``" the"``, ``" observ"``, ``"ability"``, ``","``, ``"\\n\\n"``.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from typing import Any

from tokentail.messages import content_text

_ADJ = (
    "quick",
    "careful",
    "simple",
    "robust",
    "streaming",
    "small",
    "clear",
    "steady",
    "modern",
    "reliable",
    "noisy",
    "gentle",
    "distributed",
    "local",
    "curious",
    "patient",
    "bright",
    "practical",
    "lightweight",
    "hidden",
    "useful",
    "silent",
    "complex",
    "friendly",
)
_NOUN = (
    "proxy",
    "request",
    "model",
    "token",
    "engineer",
    "system",
    "dashboard",
    "stream",
    "answer",
    "question",
    "server",
    "metric",
    "pipeline",
    "river",
    "garden",
    "library",
    "cache",
    "teacher",
    "network",
    "signal",
    "window",
    "process",
    "message",
    "history",
    "idea",
    "team",
    "experiment",
    "latency",
    "observability",
    "conversation",
    "document",
    "function",
    "result",
)
_VERB = (
    "explains",
    "measures",
    "follows",
    "improves",
    "records",
    "sends",
    "reads",
    "returns",
    "describes",
    "connects",
    "shows",
    "protects",
    "compares",
    "builds",
    "watches",
    "summarizes",
    "handles",
    "tracks",
    "checks",
    "supports",
    "collects",
    "answers",
)
_ADV = ("quickly", "carefully", "quietly", "clearly", "usually", "often", "gradually", "again", "together")
_PREP = ("with", "for", "from", "behind", "across", "inside", "without", "around", "before", "after")
_OPENER = (
    "In practice",
    "For example",
    "However",
    "In short",
    "Most of the time",
    "As a result",
    "Meanwhile",
    "Of course",
    "In this case",
    "Put simply",
)
_TEMPLATES = (
    "The {adj} {noun} {verb} the {noun} {prep} a {adj} {noun}.",
    "{opener}, the {noun} {verb} every {noun} {adv}.",
    "A {adj} {noun} {adv} {verb} the {adj} {noun}.",
    "Each {noun} {verb} its own {noun}, and the {noun} {verb} the {noun}.",
    "{opener}, a {noun} {prep} the {noun} {verb} more than one {noun}.",
    "This is why the {noun} {verb} the {noun} {prep} the {adj} {noun}.",
    "When the {noun} {verb} a {noun}, the {adj} {noun} {verb} it {adv}.",
    "The {noun} is {adj}, but the {noun} is {adv} {adj}.",
)
_SLOTS = {"adj": _ADJ, "noun": _NOUN, "verb": _VERB, "adv": _ADV, "prep": _PREP, "opener": _OPENER}
_PARAGRAPH = "\n\n"


def _pieces(word: str) -> list[str]:
    """Split a word as a BPE tokenizer would, roughly: long words become two pieces."""
    if len(word) <= 8:
        return [" " + word]
    cut = (len(word) + 1) // 2
    return [" " + word[:cut], word[cut:]]


def _tokenize(sentence: str) -> tuple[str, ...]:
    out: list[str] = []
    for word in sentence.split(" "):
        core, punct = (word[:-1], word[-1]) if word[-1] in ".,;:" else (word, "")
        out.extend(_pieces(core))
        if punct:
            out.append(punct)
    return tuple(out)


def _build_sentences(count: int = 512) -> tuple[tuple[str, ...], ...]:
    rng = random.Random(0x70C7A11)
    sentences = []
    for _ in range(count):
        template = rng.choice(_TEMPLATES)
        words = template.split(" ")
        filled = []
        for w in words:
            while "{" in w:
                start, end = w.index("{"), w.index("}")
                w = w[:start] + rng.choice(_SLOTS[w[start + 1 : end]]) + w[end + 1 :]
            filled.append(w)
        text = " ".join(filled)
        sentences.append(_tokenize(text[0].upper() + text[1:]))
    return tuple(sentences)


SENTENCES = _build_sentences()


def iter_tokens(seed: int, n: int) -> Iterator[str]:
    """Yield exactly ``n`` tokens of English-like prose; the same seed gives the same text."""
    rng = random.Random(seed)
    emitted = 0
    new_paragraph = True
    while emitted < n:
        sentence = SENTENCES[rng.randrange(len(SENTENCES))]
        for i, tok in enumerate(sentence):
            if emitted >= n:
                return
            yield tok[1:] if (i == 0 and new_paragraph) else tok
            emitted += 1
        new_paragraph = emitted < n and rng.random() < 0.15
        if new_paragraph:
            yield _PARAGRAPH
            emitted += 1


def sentence_end(seed: int, n: int, slack: int = 64) -> int:
    """The token count of an answer of about ``n`` tokens that stops where a model would:
    at the end of the sentence running at token ``n`` (never mid-word), at most ``n + slack``."""
    for i, tok in enumerate(iter_tokens(seed, n + slack), 1):
        if i >= n and tok == ".":
            return i
    return n


def generate(seed: int, n: int) -> list[str]:
    return list(iter_tokens(seed, n))


def count_tokens(text: str) -> int:
    """Rough token count the way most tooling estimates it: about four characters per token."""
    return (len(text) + 3) // 4


def extract_text(content: Any) -> str:
    """The text inside a message ``content`` of any of the APIs, by the one rule of
    ``tokentail.messages`` (text parts concatenate; a tool result's text on its own line)."""
    return content_text(content)


def stable_hash(*parts: Any) -> int:
    """A 63-bit hash of JSON-able values that does not change between runs (unlike ``hash``)."""
    h = hashlib.blake2b(digest_size=8)
    for part in parts:
        if isinstance(part, bytes):
            h.update(part)
        elif isinstance(part, str):
            h.update(part.encode("utf-8", "surrogatepass"))
        else:
            h.update(json.dumps(part, sort_keys=True, separators=(",", ":"), default=str).encode())
        h.update(b"\x1f")
    return int.from_bytes(h.digest(), "big") >> 1


# --- tool calls -------------------------------------------------------------------

_CITIES = ("Paris, France", "Tokyo, Japan", "Boston, MA", "Lisbon, Portugal", "Nairobi, Kenya", "Oslo, Norway")


def _value(name: str, schema: Any, rng: random.Random, depth: int = 0) -> Any:
    schema = schema if isinstance(schema, dict) else {}
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return rng.choice(schema["enum"])
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    lname = name.lower()
    if kind == "integer":
        return rng.randint(1, 10)
    if kind == "number":
        return round(rng.uniform(0, 100), 1)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "array":
        return [] if depth > 2 else [_value(name, schema.get("items"), rng, depth + 1)]
    if kind == "object":
        return {} if depth > 2 else tool_arguments(schema, rng.randrange(1 << 30), depth + 1)
    if any(k in lname for k in ("location", "city", "place", "where")):
        return rng.choice(_CITIES)
    if "unit" in lname:
        return rng.choice(("celsius", "fahrenheit"))
    if "date" in lname:
        return f"2025-0{rng.randint(1, 9)}-{rng.randint(10, 28)}"
    return " ".join(tok.strip() for tok in generate(rng.randrange(1 << 30), 3)).strip(" .,")


def tool_arguments(parameters: Any, seed: int, depth: int = 0) -> dict[str, Any]:
    """Plausible arguments for a JSON-schema ``parameters`` object: every required
    property (or every property when none is marked required)."""
    rng = random.Random(seed)
    schema = parameters if isinstance(parameters, dict) else {}
    properties = schema.get("properties")
    props: dict[str, Any] = properties if isinstance(properties, dict) else {}
    listed = schema.get("required")
    required: list[Any] = listed if isinstance(listed, list) else list(props)
    return {str(name): _value(str(name), props.get(name), rng, depth) for name in required}


def fragments(text: str, seed: int) -> list[str]:
    """Split ``text`` into small pieces the way streamed tool-call arguments arrive."""
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(text):
        step = rng.randint(1, 6)
        out.append(text[i : i + step])
        i += step
    return out or [""]
