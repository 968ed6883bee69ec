"""A large JSON object body parsed in pieces, so the parse lets go of the GIL (pure, no I/O).

``json.loads`` is one C call: on a 4.7 MB body of 140,000 small messages it holds the GIL
for ~165 ms (msgspec: ~95 ms), and the proxy's event loop, in another thread, relays no
chunk meanwhile, however the parse was moved off the loop. ``loads_object`` walks the top
object's members and the elements of top-level arrays (``messages``, ``input``, ...) in
Python and hands each value to the standard decoder's C scanner: the same result as
``json.loads`` but the interpreter may switch threads between values (at its switch
interval: 1 ms in the proxy, see ``app``). One huge string is still one call, but scanning a string runs
at hundreds of MB/s. The price: ~3x the CPU of one ``json.loads`` on such a body (~0.5 s
instead of ~0.17 s, in the worker thread), paid only for bodies ``prepare_off_loop`` picks.

Only what ``parse_json_object`` needs: a body that is not a JSON object gives None without
being parsed; invalid JSON raises ``ValueError`` (``json.JSONDecodeError``) as
``json.loads`` would, too deep nesting ``RecursionError``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

__all__ = ["loads_object"]

# The standard decoder's C scanners (what ``raw_decode`` and its objects call), which the type
# stubs do not name: the value at exactly an index, and a string's rest after its quote.
_scan: Callable[[str, int], tuple[Any, int]] = getattr(json.JSONDecoder(), "scan_once")  # noqa: B009
_scanstring: Callable[[str, int, bool], tuple[str, int]] = getattr(json.decoder, "scanstring")  # noqa: B009
_WS = re.compile(r"[ \t\n\r]*").match  # JSON's whitespace (``json.decoder.WHITESPACE``)
_BLANKS = frozenset(" \t\n\r")  # the same, for a one-character check (an empty slice is not in it)


def _skip(s: str, i: int) -> int:
    m = _WS(s, i)
    return m.end() if m else i


def loads_object(body: bytes) -> dict[str, Any] | None:
    """``json.loads(body)`` when it is an object, parsed in pieces; None if it is not one."""
    s = body.decode(json.detect_encoding(body), "surrogatepass")  # as json.loads decodes bytes
    i = _skip(s, 0)
    if s[i : i + 1] != "{":
        return None
    obj, i = _object(s, i)
    i = _skip(s, i)
    if i != len(s):
        raise json.JSONDecodeError("Extra data", s, i)
    return obj


def _object(s: str, i: int) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    i = _skip(s, i + 1)
    if s[i : i + 1] == "}":
        return out, i + 1
    while True:
        if s[i : i + 1] != '"':
            raise json.JSONDecodeError("Expecting property name enclosed in double quotes", s, i)
        key, i = _scanstring(s, i + 1, True)
        i = _skip(s, i)
        if s[i : i + 1] != ":":
            raise json.JSONDecodeError("Expecting ':' delimiter", s, i)
        i = _skip(s, i + 1)
        out[key], i = _array(s, i) if s[i : i + 1] == "[" else _one(s, i)
        i = _skip(s, i)
        c = s[i : i + 1]
        if c == "}":
            return out, i + 1
        if c != ",":
            raise json.JSONDecodeError("Expecting ',' delimiter", s, i)
        i = _skip(s, i + 1)


def _array(s: str, i: int) -> tuple[list[Any], int]:
    out: list[Any] = []
    append = out.append
    i = _skip(s, i + 1)
    if s[i : i + 1] == "]":
        return out, i + 1
    while True:  # the hot loop (one pass per message): no calls it can do without
        v, i = _one(s, i)
        append(v)
        c = s[i : i + 1]
        if c in _BLANKS:
            i = _skip(s, i)
            c = s[i : i + 1]
        if c == "]":
            return out, i + 1
        if c != ",":
            raise json.JSONDecodeError("Expecting ',' delimiter", s, i)
        i += 1
        if s[i : i + 1] in _BLANKS:
            i = _skip(s, i)


def _one(s: str, i: int) -> tuple[Any, int]:
    """The value at exactly ``i`` and the index after it (the C scanner, as ``raw_decode``)."""
    try:
        return _scan(s, i)
    except StopIteration as exc:
        raise json.JSONDecodeError("Expecting value", s, exc.value) from None
