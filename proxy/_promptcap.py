"""The captured prompt, capped before anything looks at it (pure, no I/O).

A client may send megabytes of prompt; the upstream gets them all, but what tokentail keeps
(and therefore redacts, stores, shows and exports) stops at a budget of UTF-8 bytes per
request (``--capture-prompt-bytes``, default 256 KiB). ``cap_prompt`` copies a parsed JSON
value in document order, cutting the string that crosses the budget and dropping whatever
follows it, so the redaction after it costs at most the budget whatever the body was.

Inline media (base64 images and audio) is replaced by a placeholder *after* the cap
(``redact.strip_media``), which needs the whole payload to tell its size: a first pass with
``keep_media=True`` keeps what may be media (a ``data:`` URL, a ``"data"`` field) whole at
the cost of a node, media is stripped, and a second pass caps what is left.

Every node costs a few bytes too (``_NODE_COST``), so a list of a million small numbers is
bounded as well as one long string. Nesting is bounded by ``max_depth``: deeper values are
replaced by a marker (the body still goes upstream as it came).
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_PROMPT_BYTES", "NESTED", "cap_prompt"]

DEFAULT_PROMPT_BYTES = 256 << 10
NESTED = "[REDACTED:nested]"  # as ``redact`` marks what it would not walk
_NODE_COST = 8  # a key, a number, a bracket: what a node costs of the budget


class _Budget:
    __slots__ = ("cut", "left")

    def __init__(self, left: int) -> None:
        self.left = left
        self.cut = False


def cap_prompt(
    obj: Any, budget: int = DEFAULT_PROMPT_BYTES, max_depth: int = 256, *, keep_media: bool = False
) -> tuple[Any, bool, int]:
    """``(copy of obj within budget, whether anything was cut, bytes used)``.

    The input is never mutated. Strings are cut on a character boundary. ``keep_media``:
    strings that may be inline media are kept whole (see the module docstring).
    """
    b = _Budget(max(0, budget))
    out = _cap(obj, b, 0, max_depth, keep_media)
    return out, b.cut, max(0, budget) - b.left


def _cap(obj: Any, b: _Budget, depth: int, max_depth: int, media: bool, key: str = "") -> Any:
    if isinstance(obj, str):
        if media and (key == "data" or obj[:5].lower() == "data:"):
            b.left -= _NODE_COST
            return obj
        return _cap_str(obj, b)
    b.left -= _NODE_COST
    if not isinstance(obj, (dict, list, tuple)):
        return obj
    if depth >= max_depth:
        b.cut = True
        return NESTED
    if isinstance(obj, dict):
        d: dict[str, Any] = {}
        for k, v in obj.items():
            if b.left <= 0:
                b.cut = True
                break
            d[k] = _cap(v, b, depth + 1, max_depth, media, k)
        return d
    items: list[Any] = []
    for v in obj:
        if b.left <= 0:
            b.cut = True
            break
        items.append(_cap(v, b, depth + 1, max_depth, media))
    return items


def _cap_str(s: str, b: _Budget) -> str:
    left = b.left
    if left <= 0:
        b.cut = b.cut or bool(s)
        return ""
    if len(s) * 4 <= left:  # cannot be over, whatever it holds
        b.left -= len(s.encode("utf-8", "surrogatepass")) if not s.isascii() else len(s)
        return s
    if s.isascii():
        if len(s) > left:
            b.cut = True
            s = s[:left]
        b.left -= len(s)
        return s
    raw = s.encode("utf-8", "surrogatepass")
    if len(raw) > left:
        b.cut = True
        s = raw[:left].decode("utf-8", "ignore")
        raw = s.encode("utf-8", "surrogatepass")
    b.left -= len(raw)
    return s
