"""Completion Markdown (dashboard/_markdown.py): images become links, never fetched."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokentail.dashboard._markdown import _DATA_IMAGE, safe_markdown


@pytest.mark.parametrize(
    "text, expected",
    [
        ("![x](http://h/leak.png)", "[image: x](http://h/leak.png)"),
        ('![x](http://h/a.png "t") after', '[image: x](http://h/a.png "t") after'),
        ("a ![x][r]\n\n[r]: http://h/a.png", "a [image: x][r]\n\n[r]: http://h/a.png"),  # reference style
        ("![x]\n\n[x]: http://h/a.png", "[image: x]\n\n[x]: http://h/a.png"),  # shortcut: now plain text
        ("`![x](u)` and ![y](http://a)", "`[image: x](u)` and [image: y](http://a)"),  # code too: no bypass
        ("```\n![x](http://a)\n```", "```\n[image: x](http://a)\n```"),
        ("![d](data:image/png;base64,AAA)", "![d](data:image/png;base64,AAA)"),  # loads nothing
        ("![a[](data:x)](http://evil)", "[image: a[](data:x)](http://evil)"),  # a data: URL as a decoy
        ("![a ![b](data:x)](http://evil)", "[image: a ![b](data:x)](http://evil)"),
        ("\\![x](u)", "\\![x](u)"),  # an escaped "!": a link already
        ("\\\\![x](http://a)", "\\\\[image: x](http://a)"),  # an escaped backslash, then an image
        ("[![i](http://a/b.png)](http://c)", "[[image: i](http://a/b.png)](http://c)"),
        ("!![x](http://e)", "\\![image: x](http://e)"),  # not "![image: x](...)": that is an image again
        ("!!![x](http://e)", "!\\![image: x](http://e)"),
        ("\\!![x](http://e)", "\\![image: x](http://e)"),  # the first "!" was escaped already
        ("!![d](data:x)", "!![d](data:x)"),
        ("no images [here](http://a) !", "no images [here](http://a) !"),
        ("", ""),
        (None, ""),
    ],
)
def test_images_become_links(text, expected):
    assert safe_markdown(text) == expected


_LEFT = re.compile(r"(\\*)!\[")


@given(st.text(alphabet="![]()\\`:datx /\n<>\"'", max_size=60))
def test_no_image_but_a_plain_data_one_survives(text):
    out = safe_markdown(text)
    for m in _LEFT.finditer(out):
        if len(m.group(1)) % 2 == 0:
            assert _DATA_IMAGE.match(out, m.start() + len(m.group(1))), (text, out)


def test_the_browser_applies_the_same_rule():
    """tokentail.js re-renders streaming Markdown with its own copy: same output, by node."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node not installed")
    js = (Path(__file__).resolve().parents[2] / "dashboard" / "assets" / "tokentail.js").read_text()
    start = js.index("  var MD_IMAGE")
    end = js.index("  function detailDelta(")
    rng = random.Random(7)
    cases = ["".join(rng.choice("![]()\\`:datx /\n") for _ in range(rng.randint(0, 30))) for _ in range(3000)]
    script = (
        js[start:end]
        + "process.stdout.write(JSON.stringify(JSON.parse(require('fs').readFileSync(0, 'utf8')).map(safeMarkdown)));"
    )
    out = subprocess.run(
        [node, "-e", script], input=json.dumps(cases), capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(out.stdout) == [safe_markdown(c) for c in cases]
