"""Browser-test helpers: how Chromium runs, where screenshots go, and reading the pages."""

from __future__ import annotations

import uuid

from playwright.sync_api import expect

from tests.helpers import ROOT

__all__ = [
    "CHROMIUM_ARGS",
    "PROBE",
    "SCREENSHOTS",
    "SECRET",
    "STALLS_PROBE",
    "detached_dom_nodes",
    "open_page",
    "pick_option",
    "plot_traces",
    "quantile",
    "row_text",
    "unique_prompt",
    "utf16_len",
]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


SCREENSHOTS = ROOT / "docs" / "screenshots"
SECRET = "sk-test-not-a-key"  # what every test request sends as its API key


def open_page(page, live_stack, path: str, sources=("proxy:production", "proxy:canary", "collector")):
    page.goto(live_stack.origin + path)
    for key in sources:
        expect(page.locator(f'#tt-sources [data-source="{key}"]')).to_have_attribute(
            "data-state", "open", timeout=10_000
        )


def pick_option(page, dropdown: str, text: str, tries: int = 3) -> None:
    """Open the Dash dropdown ``dropdown`` (a selector) and choose the option holding ``text``.
    Options can arrive after the list opened (from a callback, or the Live page's feed every
    200 ms), and a loaded machine is slow at both: reopen until the option is there. A long
    list is virtualised (only the options in view are in the DOM; the Live page's tags after
    a whole test session): type into its search box, as a person would. Every dropdown the
    dashboard has is searchable (Dash's default)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    option = page.locator(".dash-dropdown-option", has_text=text).first
    search = page.locator(".dash-dropdown-search").first
    seen = None
    for _ in range(tries):
        # A click on an open list's button closes it (an Escape that came too early left it open).
        if page.locator(dropdown).get_attribute("aria-expanded") != "true":
            page.locator(dropdown).click()
        try:
            # Typed only once the box is there: on a loaded machine it can come after the click,
            # and untyped the option may lie outside the virtualised list's view.
            search.wait_for(state="visible", timeout=10_000)
            search.fill(text)
            option.wait_for(state="visible", timeout=10_000)
        except PlaywrightTimeout:
            seen = page.evaluate(
                """() => ({search: (document.querySelector('.dash-dropdown-search') || {}).value,
                    options: Array.from(document.querySelectorAll('.dash-dropdown-option'), o => o.textContent)})"""
            )
            page.keyboard.press("Escape")
            continue
        option.click()
        return
    raise AssertionError(f"no option {text!r} in {dropdown} after {tries} tries; the last open list: {seen}")


def row_text(locator) -> str:
    """The completion as the row holds it (its text node; the caret is a separate element)."""
    return locator.locator(".tt-row-text").evaluate("e => e.firstChild ? e.firstChild.data : ''")


def unique_prompt(what: str) -> str:
    return f"[{uuid.uuid4().hex[:10]}] {what}"


def plot_traces(page, graph_id: str):
    """Each trace of a Plotly chart: its name and how many positive values it draws."""
    # Read in the same check that waits for it: a chart re-rendered by a callback between a wait
    # and a separate read would have no data yet.
    handle = page.wait_for_function(
        "id => { const gd = document.querySelector('#' + id + ' .js-plotly-plot');"
        " if (!gd || !Array.isArray(gd.data)) return null;"
        " return gd.data.map(t => ({name: t.name, n: (t.y || []).filter(v => v !== null && v > 0).length})); }",
        arg=graph_id,
        timeout=10_000,
    )
    return handle.json_value()


# Records (request id, length of its row's completion text, Date.now()) at every change of
# a row in the live list, and the time of the next animation frame after it. Installed before
# the requests start, so it sees each row from its empty beginning.
PROBE = """
() => {
  const list = document.getElementById('tt-live-list');
  window.__ttProbe = [];
  // Which rows are in the viewport (the page writes no text to rows off screen and catches
  // them up when they scroll in: their marks are not a token's latency).
  const onScreen = new Set();
  const seenRows = new WeakSet();
  const io = new IntersectionObserver(es => es.forEach(e => {
    if (e.isIntersecting) onScreen.add(e.target); else onScreen.delete(e.target);
  }));
  const record = (row, t, out) => {
    if (row && !seenRows.has(row)) { seenRows.add(row); io.observe(row); onScreen.add(row); }
    const box = row && row.querySelector('.tt-row-text');
    if (box && box.firstChild) out.push([row.dataset.id, box.firstChild.data.length, t, null, onScreen.has(row)]);
  };
  new MutationObserver(records => {
    const t = Date.now();
    const batch = [];
    const rows = new Set();
    for (const m of records) {
      const node = m.target.nodeType === 3 ? m.target.parentNode : m.target;
      if (node === list) m.addedNodes.forEach(n => rows.add(n));
      else if (node && node.closest) rows.add(node.closest('.tt-row'));
    }
    rows.forEach(row => record(row, t, batch));
    window.__ttProbe.push(...batch);
    requestAnimationFrame(() => { const f = Date.now(); batch.forEach(b => { b[3] = f; }); });
  }).observe(list, {subtree: true, characterData: true, childList: true});
}
"""


# Records (Date.now(), ms) of each gap over 25 ms between 5 ms timer ticks (the page's main
# thread busy, or not scheduled at all) and of each long task (busy with its own work). A
# timing test's failure then says where the time went.
STALLS_PROBE = """
() => {
  window.__ttStalls = [];
  window.__ttLongTasks = [];
  let last = Date.now();
  setInterval(() => { const now = Date.now(); if (now - last > 25) window.__ttStalls.push([last, now - last]); last = now; }, 5);
  new PerformanceObserver(list => list.getEntries().forEach(e =>
    window.__ttLongTasks.push([performance.timeOrigin + e.startTime, Math.round(e.duration)]))).observe({type: 'longtask'});
}
"""


def quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile of an ascending list."""
    return sorted_values[min(len(sorted_values) - 1, int(round(q * (len(sorted_values) - 1))))]


def utf16_len(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


def detached_dom_nodes(cdp) -> int:
    """DOM nodes a heap snapshot marks detached (out of every document, kept alive by a
    reference: DevTools' "Detached elements"), after a full GC. ``cdp``: a CDP session of the page.

    Not ``Memory.getDOMCounters`` minus the document's nodes: that also counts CSS
    pseudo-elements and the shadow DOM of inputs, which follow the rows on screen."""
    import json

    chunks: list[str] = []
    cdp.on("HeapProfiler.addHeapSnapshotChunk", lambda p: chunks.append(p["chunk"]))
    cdp.send("HeapProfiler.enable")
    cdp.send("HeapProfiler.collectGarbage")
    cdp.send("HeapProfiler.takeHeapSnapshot", {"reportProgress": False})
    cdp.send("HeapProfiler.disable")
    snap = json.loads("".join(chunks))
    fields = snap["snapshot"]["meta"]["node_fields"]
    step, at = len(fields), fields.index("detachedness")
    nodes = snap["nodes"]
    return sum(1 for i in range(at, len(nodes), step) if nodes[i] == 2)
