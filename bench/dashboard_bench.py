"""Dashboard browser benchmark: the Live page in headless Chromium under real traffic.

Starts the browser tests' stack (tests/helpers/stack.py: simulator and two proxies on an
event loop in this process, beside the client streams; collector and dashboard as
processes), opens the Live page in Debian's Chromium through Playwright, and measures, phase
by phase:

1. idle: ~1 request/s of background traffic;
2. load: 100 concurrent streams (20 tokens/s each, 60 tokens) through both proxies;
3. token-to-DOM under the same load, rows on screen: the proxy relays a chunk (an observer in
   the proxy) -> its text is in the row's DOM (a MutationObserver in the page); split at the
   moment the page's model had it (the feed read and parsed): relay -> page -> DOM;

and for each phase: the main thread's busy share (CDP ``Performance.getMetrics``
TaskDuration over wall time; its CPU time, ThreadTime, beside it), long tasks (a ``longtask`` PerformanceObserver), input delay
(real mouse moves sent through CDP every 100 ms: ``performance.now() - event.timeStamp``
when the page's handler runs), the proxies' dropped live subscribers
(``tokentail_telemetry_dropped_total{sink="live_subscriber"}``) and, after a forced GC,
the JS heap and the detached DOM nodes: those a heap snapshot marks detached (what DevTools
lists as "Detached elements": kept alive by a reference, out of every document; a leak if it
grows). ``Memory.getDOMCounters`` minus the nodes a TreeWalker finds is reported beside it,
but it is not a leak figure: it also counts each row's CSS pseudo-elements (``::before``)
and the user-agent shadow DOM of inputs, so it follows the number of rows on screen.

``--processes`` runs the simulator and both proxies as processes, as ``tokentail up`` does;
token-to-DOM then starts when a chunk reaches its client (the application's view of the
relay). In process, the proxies share one event loop, and its GC pauses, with the clients and
the simulator; as processes, more of them compete with the browser for the two cores.

``--soak MIN`` then repeats load phases for MIN minutes, memory sampled after each.
``--sessions N`` (run alone, before the Live page) seeds the collector's DuckDB with N
sessions of 2 turns and measures the Sessions page: first paint (navigation start to the
first rows in the DOM, ``performance.now()``: the server's first view in the HTML, or the
app's list; the browser's own first-contentful-paint beside it), the app ready (its own
list drawn, the first view gone: the filters work) and a filter (click on a user in the filter ->
the table re-rendered with that user's sessions, both stamped in the page); then the
Requests page's first paint over the same store, three times.

Usage: python bench/dashboard_bench.py [--processes] [--idle 30] [--load 60] [--streams 100] [--soak 10]
       [--sessions 10000] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _procfs import CLK, cpu_seconds, tree_cpu_seconds  # noqa: E402  (bench/ is on sys.path)

from tests.helpers.browser import CHROMIUM_ARGS, PROBE, detached_dom_nodes, quantile, utf16_len  # noqa: E402
from tests.helpers.stack import Stack, Stream, _quiet, stream_chat  # noqa: E402

# Long tasks and input delay, recorded in the page (see the module docstring).
PAGE_PROBE = """
() => {
  window.__bench = {long: [], delays: []};
  new PerformanceObserver(list => list.getEntries().forEach(e => window.__bench.long.push(e.duration)))
    .observe({type: "longtask"});
  document.addEventListener("mousemove", e => window.__bench.delays.push(performance.now() - e.timeStamp),
    {passive: true});
}
"""
# When each delta reached the page's model (the feed parsed, the row's text appended):
# [request id, UTF-16 length of its text so far, epoch ms]. Beside the DOM probe it splits
# token-to-DOM into the proxy-to-page part and the page's own.
ARRIVAL_PROBE = """
() => {
  window.__ttArrival = [];
  window.tokentail.listen((kind, r) => {
    if (kind === "delta" && r) window.__ttArrival.push([r.id, r.text.length, Date.now()]);
  });
}
"""
NODES = "() => { let n = 0; const w = document.createTreeWalker(document, NodeFilter.SHOW_ALL); while (w.nextNode()) n++; return n + 1; }"


def dropped(stack: Stack) -> float | None:
    """The proxies' dropped live subscribers so far; None when a proxy did not answer (the
    in-process stack under 100 streams on a loaded machine can take seconds)."""
    total = 0.0
    for name in ("production", "canary"):
        try:
            with urllib.request.urlopen(stack.url(name, "/metrics"), timeout=30) as resp:
                text = resp.read().decode()
        except OSError:
            return None
        m = re.search(r'^tokentail_telemetry_dropped_total\{sink="live_subscriber"\} (\S+)$', text, re.M)
        total += float(m.group(1)) if m else 0.0
    return total


def memory(page: Any, cdp: Any) -> dict[str, float]:
    detached = detached_dom_nodes(cdp)  # after its own full GC
    counters = cdp.send("Memory.getDOMCounters")
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    in_doc = page.evaluate(NODES)
    return {
        "heap_mb": round(metrics["JSHeapUsedSize"] / 2**20, 2),
        "detached_nodes": detached,
        "nodes_alive": counters["nodes"],
        "nodes_in_document": in_doc,
        "nodes_not_walked": counters["nodes"] - in_doc,  # pseudo-elements, UA shadow DOM, detached
        "listeners": counters["jsEventListeners"],
        "rows_in_dom": page.evaluate("() => document.querySelectorAll('#tt-live-list .tt-row').length"),
    }


def stack_cpu(stack: Stack) -> dict[str, float]:
    """CPU seconds so far: this process alone (the clients; in process also the simulator and
    the proxies, and Playwright's calls), the stack's processes (with their children: a
    proxy's span export), and the whole machine (all cores, /proc/stat)."""
    out = {"bench process": cpu_seconds(os.getpid())}
    for p in (stack.collector, stack.dashboard, *stack.procs):
        if p is not None and p.proc is not None:
            out[p.name] = tree_cpu_seconds(p.proc.pid)
    with open("/proc/stat") as fh:
        f = [int(x) for x in fh.readline().split()[1:]]
    out["machine"] = (sum(f) - f[3] - f[4]) / CLK  # all but idle and iowait
    return out


def measure(page: Any, cdp: Any, stack: Stack, seconds: float) -> dict[str, Any]:
    """Move the mouse every 100 ms for ``seconds``; the phase's figures."""
    page.evaluate("() => { window.__bench.long = []; window.__bench.delays = []; }")
    cpu_before = stack_cpu(stack)
    before = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    drops = dropped(stack)
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < seconds:
        page.mouse.move(200 + (i % 50) * 3, 300 + (i % 7) * 5)
        i += 1
        time.sleep(0.1)
    wall = time.monotonic() - t0
    cpu_after = stack_cpu(stack)
    after = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    got = page.evaluate("() => window.__bench")
    longs, delays = sorted(got["long"]), sorted(got["delays"])
    return {
        "seconds": round(wall, 1),
        "main_thread_busy_pct": round(100 * (after["TaskDuration"] - before["TaskDuration"]) / wall, 1),
        # Its CPU time: tasks' wall time also counts the thread waiting for a core (here the
        # proxies and the 100 client streams run on the same two cores as the browser).
        "main_thread_cpu_pct": round(100 * (after["ThreadTime"] - before["ThreadTime"]) / wall, 1),
        "long_tasks": len(longs),
        "long_task_max_ms": round(longs[-1], 1) if longs else 0,
        "input_events": len(delays),
        "input_delay_p50_ms": round(quantile(delays, 0.5), 1) if delays else None,
        "input_delay_p95_ms": round(quantile(delays, 0.95), 1) if delays else None,
        "live_subscribers_dropped": None if drops is None or (end := dropped(stack)) is None else end - drops,
        "rows_in_page": page.evaluate("() => window.tokentail.rows.size"),
        # The rest of the machine in the same phase, in % of one core (the machine: of all).
        "cpu_pct_of_a_core": {k: round(100 * (cpu_after[k] - cpu_before[k]) / wall, 1) for k in cpu_before},
    }


async def load(stack: Stack, streams: int, until: float) -> None:
    """``streams`` concurrent chat streams through both proxies until ``until`` (monotonic)."""
    models = ("sim-gpt-4o", "sim-gpt-4o-mini", "sim-llama-3-8b")

    async def worker(i: int) -> None:
        n = 0
        while time.monotonic() < until:
            variant = ("production", "canary")[i % 2]
            await _quiet(
                stream_chat(
                    stack.url(variant, "/v1"),
                    f"Load stream {i}.{n}: explain backpressure.",
                    Stream(),
                    model=models[i % 3],
                    tps=20,
                    ttft_ms=200,
                    tokens=60,
                    clock=stack.clock if stack.processes else None,  # in process: the proxy's observer stamps
                )
            )
            n += 1

    await asyncio.gather(*(worker(i) for i in range(streams)))


def token_to_dom(page: Any, stack: Stack, since: float) -> dict[str, Any]:
    probe = page.evaluate("window.__ttProbe")
    arrivals: dict[str, list[tuple[int, float]]] = {}
    for rid, n, t in page.evaluate("window.__ttArrival || []"):
        arrivals.setdefault(rid, []).append((n, t))
    seen: dict[str, list[tuple[float, int]]] = {}
    for rid, n, t, _, on_screen in probe:
        if on_screen:  # rows off screen get their text when they scroll in: no token's latency
            seen.setdefault(rid, []).append((t, n))
    lat, to_page, in_page = [], [], []
    for rid, deltas in list(stack.clock.deltas.items()):
        marks = sorted(seen.get(rid, []))
        if not marks or deltas[0][1] < since:
            continue
        came = arrivals.get(rid, [])
        cum = 0
        for text, relayed in deltas:
            cum += utf16_len(text)
            hit = next((t for t, n in marks if n >= cum), None)
            if hit is None:
                continue
            lat.append(hit - relayed * 1000.0)
            got = next((t for n, t in came if n >= cum), None)
            if got is not None:
                to_page.append(got - relayed * 1000.0)
                in_page.append(hit - got)
    if not lat:
        return {"deltas": 0}

    def spread(values: list[float]) -> dict[str, float]:
        values.sort()
        return {
            "p50_ms": round(quantile(values, 0.5), 1),
            "p99_ms": round(quantile(values, 0.99), 1),
            "max_ms": round(values[-1], 1),
        }

    out: dict[str, Any] = {"deltas": len(lat), **spread(lat)}
    if to_page:  # where the time went: relayed -> in the page's model -> in the DOM
        out["relay_to_page"] = spread(to_page)
        out["page_to_dom"] = spread(in_page)
    return out


def seed_sessions(db: Path, sessions: int) -> None:
    """``sessions`` sessions of 2 turns each in the last hour, 200 users, in a new DuckDB file."""
    from tokentail.collector.store import Store

    store = Store.open(db)
    now, batch = time.time(), []
    for i in range(sessions):
        t = now - 3600 + 3000 * i / sessions
        for turn in range(2):
            batch.append(
                {
                    "request_id": f"seed-{i:06}-{turn}",
                    "start_time": t + turn * 5,
                    "end_time": t + turn * 5 + 1.2,
                    "variant": ("production", "canary")[i % 2],
                    "model": ("sim-gpt-4o", "sim-gpt-4o-mini", "sim-llama-3-8b")[i % 3],
                    "status": "ok",
                    "latency_ms": 1200.0,
                    "ttft_ms": 200.0,
                    "input_tokens": 40 + turn * 60,
                    "output_tokens": 60,
                    "cost_usd": 0.0004,
                    "session_id": f"sess-{i:06}",
                    "user_id": f"user-{i % 200:03}",
                    "tags": ["seeded"],
                    "received_at": t + turn * 5 + 1.3,
                }
            )
        if len(batch) >= 10_000:
            store.insert_spans(batch)
            batch = []
    if batch:
        store.insert_spans(batch)
    store.checkpoint()
    store.close()


# Stamps, in the page, the last change of the sessions table and the last click.
SESSIONS_PROBE = """
() => {
  window.__sess = {changed: 0, clicked: 0};
  new MutationObserver(() => { window.__sess.changed = performance.now(); })
    .observe(document.getElementById('sessions-list'), {childList: true, subtree: true});
  document.addEventListener('click', e => { window.__sess.clicked = performance.now(); }, true);
}
"""


def app_ready(page: Any, rows: str) -> tuple[float, dict[str, int]]:
    """When the app's own list (``rows``) was drawn and the first view gone (the filters
    work), ms since navigation; and the browser's paint entries."""
    app = page.wait_for_function(
        "sel => document.querySelector(sel) && !document.getElementById('tt-first') ? performance.now() : null",
        arg=rows,
        polling="raf",
        timeout=60_000,
    ).json_value()
    paints = page.evaluate(
        "() => Object.fromEntries(performance.getEntriesByType('paint').map(e => [e.name, Math.round(e.startTime)]))"
    )
    return app, paints


def sessions_page(browser: Any, stack: Stack, sessions: int) -> dict[str, Any]:
    """First paint and a user filter of the Sessions page over the seeded sessions."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    t0 = time.monotonic()
    page.goto(stack.origin + "/sessions", wait_until="commit")
    # Rows on screen: the server's first view (#tt-first, in the HTML) or the app's own list.
    first = page.wait_for_function(
        "() => document.querySelector('tr[data-session]') ? performance.now() : null",
        polling="raf",
        timeout=60_000,
    ).json_value()
    wall = time.monotonic() - t0
    app, paints = app_ready(page, "#sessions-list tr[data-session]")
    status = page.locator("#sessions-status").inner_text()
    # Where the first paint's time went: the document, the scripts, Dash's boot requests and
    # the callbacks before the table (start and end, ms since navigation start).
    boot = page.evaluate(
        """first => {
        const nav = performance.getEntriesByType('navigation')[0];
        const res = performance.getEntriesByType('resource').filter(e => e.startTime <= first);
        const span = es => es.length ? [Math.round(Math.min(...es.map(e => e.startTime))),
                                         Math.round(Math.max(...es.map(e => e.responseEnd)))] : null;
        const dash = res.filter(e => e.name.includes('/_dash-'));
        return {
            document: [0, Math.round(nav.responseEnd)],
            dom_content_loaded: Math.round(nav.domContentLoadedEventEnd),
            scripts: span(res.filter(e => e.initiatorType === 'script' || e.name.endsWith('.js'))),
            script_count: res.filter(e => e.name.includes('.js')).length,
            dash_requests: dash.map(e => [e.name.split('/').pop().split('?')[0],
                                          Math.round(e.startTime), Math.round(e.responseEnd)]),
        };
    }""",
        first,
    )
    page.evaluate(SESSIONS_PROBE)
    filters: list[float] = []
    callbacks: list[Any] = []  # the Dash callbacks a filter made: [start after the click, duration] ms
    for i in (0, 5, 2):
        page.locator("#sessions-user").click()
        option = page.locator(".dash-dropdown-option").nth(i)
        user = option.inner_text().split(" (")[0]  # "user-007 (100)"
        option.click()
        page.wait_for_function(
            "u => { const c = [...document.querySelectorAll('#sessions-list tr[data-session] td:last-child')];"
            " return c.length > 0 && c.every(td => td.textContent === u); }",
            arg=user,
            timeout=30_000,
        )
        time.sleep(0.3)  # let the last render land before reading its stamp
        got = page.evaluate("() => window.__sess")
        filters.append(round(got["changed"] - got["clicked"], 1))
        calls = page.evaluate(
            "c => performance.getEntriesByType('resource').filter(e => e.name.includes('_dash-update-component')"
            " && e.startTime >= c).map(e => [Math.round(e.startTime - c), Math.round(e.duration)])",
            got["clicked"],
        )
        callbacks.append(calls)
    page.close()
    return {
        "sessions": sessions,
        "first_paint_ms": round(first, 1),
        "first_paint_wall_s": round(wall, 2),
        "paint_entries_ms": paints,
        "app_ready_ms": round(app, 1),
        "first_paint_breakdown_ms": boot,
        "status_line": status,
        "filter_ms": filters,
        "filter_callbacks_ms": callbacks,
    }


def requests_page(browser: Any, stack: Stack, runs: int = 3) -> list[dict[str, Any]]:
    """The Requests page's first paint over the same seeded store: rows on screen (the first
    view or the app's list), the browser's first-contentful-paint, the app's own list drawn."""
    out = []
    for _ in range(runs):
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(stack.origin + "/requests", wait_until="commit")
        rows = page.wait_for_function(
            "() => document.querySelector('tr[data-id]') ? performance.now() : null", polling="raf", timeout=60_000
        ).json_value()
        app, paints = app_ready(page, "#req-list tr[data-id]")
        out.append({"rows_ms": round(rows, 1), "paint_entries_ms": paints, "app_ready_ms": round(app, 1)})
        page.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--idle", type=float, default=30.0, help="seconds at ~1 request/s")
    ap.add_argument("--load", type=float, default=60.0, help="seconds of concurrent streams")
    ap.add_argument("--probe", type=float, default=10.0, help="seconds of token-to-DOM probing under load")
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--soak", type=float, default=0.0, help="minutes of further load, memory sampled after each")
    ap.add_argument("--sessions", type=int, default=0, help="seed N sessions and measure the Sessions page alone")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--processes", action="store_true", help="simulator and proxies as processes (see above)")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if not chromium:
        print("dashboard_bench: needs Debian's chromium", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="tt-dash-bench-"))
    out: dict[str, Any] = {"browser": "headless Chromium (Debian)", "cpus": os.cpu_count(), "load_avg": os.getloadavg()}
    if args.sessions:
        t = time.monotonic()
        seed_sessions(tmp / "tokentail.duckdb", args.sessions)  # the stack's collector opens this file
        out["seed_s"] = round(time.monotonic() - t, 1)
    stack = Stack(tmp, processes=args.processes)
    out["stack"] = "processes" if args.processes else "in-process"
    stack.start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            if args.sessions:
                out["sessions_page"] = sessions_page(browser, stack, args.sessions)
                out["requests_page"] = requests_page(browser, stack)
                browser.close()
                return finish(out, args.json)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")
            page.goto(stack.origin + "/live")
            page.wait_for_selector('#tt-sources [data-source="proxy:production"][data-state="open"]')
            page.evaluate(PAGE_PROBE)
            out["memory_start"] = memory(page, cdp)

            stack.background_traffic(rps=1.0)
            time.sleep(3)
            out["idle_1rps"] = measure(page, cdp, stack, args.idle)
            out["memory_after_idle"] = memory(page, cdp)

            until = time.monotonic() + args.load + args.probe + 5
            running = stack.loop.submit(load(stack, args.streams, until))
            time.sleep(5)  # ramp up
            out["load"] = measure(page, cdp, stack, args.load)
            out["load"]["streams"] = args.streams
            out["memory_after_load"] = memory(page, cdp)
            since = time.time()
            page.evaluate(PROBE)
            page.evaluate(ARRIVAL_PROBE)
            time.sleep(args.probe)
            out["token_to_dom_under_load"] = token_to_dom(page, stack, since)
            running.result(args.load + args.probe + 120)
            soak = []
            t_soak = time.monotonic()
            while time.monotonic() - t_soak < args.soak * 60:
                until = time.monotonic() + 60
                running = stack.loop.submit(load(stack, args.streams, until))
                phase = measure(page, cdp, stack, 55)
                running.result(180)
                soak.append({"minute": len(soak) + 1, **phase, **memory(page, cdp)})
                print(json.dumps(soak[-1]), file=sys.stderr)
            if soak:
                out["soak"] = soak
            stack.stop_traffic()
            time.sleep(5)
            out["memory_end"] = memory(page, cdp)
            browser.close()
    finally:
        stack.stop()
    return finish(out, args.json)


def finish(out: dict[str, Any], path: str | None) -> int:
    print(json.dumps(out, indent=2))
    if path:
        Path(path).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
