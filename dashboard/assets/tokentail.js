/*
 * tokentail dashboard: the live path, in the browser (see dashboard/__init__.py).
 *
 * One live feed per proxy ({proxy}/api/live; tokentail-feed.js reads it). Every request is one entry of `rows`
 * (a Map by request id) and, when on screen, one row element whose completion is a
 * Text node. A request.delta only updates the row's model in the event handler and marks
 * it dirty; once per animation frame each dirty row gets one DOM write (the text it has
 * not shown yet, then its header if that changed). Under 100 concurrent streams that is
 * a few hundred small writes a frame instead of thousands of layouts a second, and the
 * handler returns fast enough that the proxy never drops this page as a slow subscriber. History rows (the collector's spans, through /_tt/spans)
 * merge into the same Map by id: a request seen live and later stored stays one row,
 * marked "stored". The collector's /api/events pushes a snapshot after each scrape;
 * each one moves the Overview (a dcc.Store that a Dash callback listens to) and
 * fetches the history that was stored since.
 */
(function () {
  "use strict";

  var cfgEl = document.getElementById("tt-config");
  var CFG = cfgEl ? JSON.parse(cfgEl.textContent) : {};
  CFG.proxies = CFG.proxies || [];
  var MAX_ROWS = 2000;        // entries kept in memory (oldest finished go first)
  var MAX_VISIBLE = 200;      // rows in the DOM for the current filter
  var RAW_KEEP_ROWS = 100;    // newest rows whose raw live events are kept for the detail page
  var MAX_RAW_EVENTS = 2000;  // per request
  var ROW_TEXT_KEEP = 4000;   // a list row shows the tail of its completion: keep this much in the DOM
  var BANNER_DELAY = 1500;    // ms a source may be away before the banner says so
  var MD_EVERY = 250;         // ms between Markdown re-renders of a streaming request

  // ---- shared definitions ------------------------------------------------------------
  // Pure, no DOM, one definition each: tests/dashboard/test_format.py runs this block in node
  // and checks it against _format.py, figures.color_for and layout.PAGES / NAV on a table.

  // colours: the same function as figures.color_for (the palette comes from the server)
  var encoder = new TextEncoder();
  function stableHash(s) {  // figures.stable_hash
    var bytes = encoder.encode(s), h = 0x811c9dc5;
    for (var i = 0; i < bytes.length; i++) {
      h ^= bytes[i];
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    return (h ^ (h >>> 16)) >>> 0;
  }
  function colorFor(kind, name) {
    var c = CFG.colors || {palette: ["#64748b"], reserved: {}};
    if (!name) return "#94a3b8";
    var own = (c.reserved[kind] || {})[name];
    return own || c.palette[stableHash(name) % c.palette.length];
  }

  // numbers with units: the same rules as _format.py
  // v.toFixed(d), but a tie (v exactly halfway in binary) goes to even, as Python's format
  // does: toFixed and Math.round round it up (10.25 -> "10.3"; Python: "10.2").
  function fixed(v, d) {
    var t = v.toFixed(d), a = Math.abs(v);
    if (d + 30 > 100 || a >= 1e21) return t;
    var x = a.toFixed(d + 30), head = x.slice(0, x.length - 30).replace(/\.$/, "");
    if (!/^50*$/.test(x.slice(x.length - 30)) || Number(head.charAt(head.length - 1)) % 2) return t;
    return (v < 0 ? "-" : "") + head;
  }
  function sig(v) {
    if (v === 0) return "0";
    var a = Math.abs(v);
    if (a >= 100) return Number(fixed(v, 0)).toLocaleString("en-US");
    var t = fixed(v, Math.max(2 - Math.floor(Math.log10(a)), 0));
    if (t.indexOf(".") >= 0) t = t.replace(/0+$/, "").replace(/\.$/, "");
    return t;
  }
  function known(v) { return v !== null && v !== undefined && isFinite(v); }
  function fmtMs(v) {
    if (!known(v)) return "—";
    if (Math.abs(v) < 1000) return sig(v) + " ms";
    if (Math.abs(v) < 60000) return sig(v / 1000) + " s";
    return sig(v / 60000) + " min";
  }
  function fmtUsd(v) {  // _format.usd: unknown is never $0
    return known(v) ? "$" + sig(v) : "unknown";
  }
  function fmtCount(n) {
    if (!known(n)) return "—";
    if (Math.abs(n) >= 1e6) return sig(n / 1e6) + " M";
    if (Math.abs(n) >= 1e5) return sig(n / 1e3) + " k";
    return Number.isInteger(n) ? (n + 0).toLocaleString("en-US") : sig(n);  // + 0: -0 reads "0"
  }
  // error kinds in words: the same table as _format.error_label
  var ERROR_KINDS = {connect: "could not connect upstream", timeout: "upstream timed out",
    upstream_disconnect: "upstream closed mid-stream", incomplete_stream: "stream ended without its terminator",
    cancelled_by_operator: "cancelled by an operator", _OTHER: "other error"};
  var HTTP_REASONS = {400: "bad request", 401: "unauthorized", 403: "forbidden", 404: "not found",
    408: "request timeout", 409: "conflict", 413: "payload too large", 422: "unprocessable", 429: "rate limited",
    500: "server error", 502: "bad gateway", 503: "unavailable", 504: "gateway timeout"};
  function errorLabel(kind, httpStatus) {
    if (!kind) return "";
    kind = String(kind);
    var code = /^[0-9]+$/.test(kind) ? Number(kind) : (kind === "status" ? httpStatus : null);
    if (code) return "HTTP " + code + (HTTP_REASONS[code] ? " " + HTTP_REASONS[code] : "");
    if (kind === "status") return "HTTP error";
    return Object.prototype.hasOwnProperty.call(ERROR_KINDS, kind) ? ERROR_KINDS[kind] : kind.replace(/_/g, " ");
  }
  // _format.cost_incurred: a failed request that used no tokens and has no price cost nothing
  function costIncurred(status, usage, cost) {
    if (known(cost) || status !== "error") return true;
    var u = usage || {};
    return !!(u.input_tokens || u.output_tokens);
  }

  function pad(n, w) { var s = String(n); while (s.length < w) s = "0" + s; return s; }
  function fmtTime(epoch) {
    if (!known(epoch)) return "";
    var d = new Date(epoch * 1000);
    return pad(d.getHours(), 2) + ":" + pad(d.getMinutes(), 2) + ":" + pad(d.getSeconds(), 2) + "." +
      pad(d.getMilliseconds(), 3);
  }

  // routing: the pages in layout.PAGES order, the header's links in layout.NAV order.
  var PAGES = ["overview", "live", "detail", "requests", "sessions", "session", "runs", "run", "compare",
    "abcompare", "playground"];
  var NAV = ["overview", "live", "requests", "sessions", "runs", "abcompare", "playground"];
  var NAV_OF = {detail: "live", session: "sessions", run: "runs", compare: "runs"};
  var TITLES = {overview: "Overview", live: "Live", requests: "Requests", sessions: "Sessions", session: "Session",
    runs: "Runs", run: "Run", compare: "Compare runs", abcompare: "Compare", playground: "Playground"};
  var PAGE_TICKS = {sessions: true, runs: true, run: true};  // pages refreshed on collector snapshots
  // Those pages re-query the collector on a tick: at most every 4 s, so a filter's answer is
  // not overtaken (and thrown away by Dash) by a refresh started while it was on its way.
  var PAGE_TICK_EVERY = 4000;  // ms; under the default 5 s scrape, so none is skipped there

  function pageOf(p) {
    if (p.indexOf("/live") === 0) return "live";
    if (p.indexOf("/request/") === 0) return "detail";
    if (p === "/requests" || p.indexOf("/requests/") === 0) return "requests";
    if (p.indexOf("/sessions/") === 0 && p.length > "/sessions/".length) return "session";
    if (p.indexOf("/sessions") === 0) return "sessions";
    if (p.indexOf("/runs/compare") === 0) return "compare";
    if (/^\/runs\/\d+/.test(p)) return "run";
    if (p.indexOf("/runs") === 0) return "runs";
    if (p.indexOf("/playground") === 0) return "playground";
    if (p.indexOf("/compare") === 0) return "abcompare";
    return "overview";
  }

  // ---- end of shared definitions ------------------------------------------------------

  // ---- state ------------------------------------------------------------------------
  var rows = new Map();
  var filter = {q: "", models: [], variants: [], statuses: [], users: [], tags: [], keys: []};
  var seen = {models: new Set(), variants: new Set(), users: new Set(), tags: new Set(), keys: new Set()};
  var listeners = [];  // tokentail_pages.js: told of every row change (kind, row, piece)
  var sources = {};
  var dom = {};
  var visible = [];
  var matchedCount = 0;
  var renderQueued = false, optionsQueued = false, bannerTimer = null;
  var dirty = new Set(), flushQueued = false, countsQueued = false;  // per-frame coalescing
  var fresh = [];  // rows started since the last frame, not in the DOM yet
  var hist = {inFlight: false, again: false, newestStored: null, maxTime: null, cursor: null};
  var detail = {id: null, el: null, sseEl: null, mdAt: 0, mdTimer: null, pending: false, replace: false,
    textShown: 0, rawShown: 0};
  var tickAt = 0, tickTimer = null, ticks = 0;
  var current = {page: null};

  function newRow(id) {
    var r = {id: id, time: null, variant: null, model: null, endpoint: null, status: "in_flight", prompt: "",
      text: "", ttft: null, latency: null, tps: null, usage: null, finish: null, error: null, httpStatus: null,
      tools: false, live: false, stored: false, proxy: null, deltas: 0, raw: [], el: null, textNode: null,
      user: null, tags: [], key: null, session: null, route: null, cost: null, costSet: false, shown: 0,
      repaint: false, ui: null, onScreen: true};
    rows.set(id, r);
    return r;
  }

  function notify(kind, r, piece) {
    for (var i = 0; i < listeners.length; i++) {
      try { listeners[i](kind, r, piece); } catch (e) { if (window.console) console.warn("tokentail: listener", e); }
    }
  }

  // Attribution as the live feed (request.start) and a history row both carry it.
  function setAttribution(r, d) {
    if (d.user !== undefined) r.user = d.user || null;
    if (d.tags !== undefined) r.tags = Array.isArray(d.tags) ? d.tags.map(String) : [];
    if (d.key_fingerprint !== undefined) r.key = d.key_fingerprint || null;
    if (d.session_id !== undefined) r.session = d.session_id || null;
    if (d.route !== undefined) r.route = d.route || null;
  }

  function setProps(id, props) {
    var dc = window.dash_clientside;
    if (dc && dc.set_props) {
      try { dc.set_props(id, props); } catch (e) { /* the component is not mounted yet */ }
    }
  }

  // ---- the row element ----------------------------------------------------------------
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  function statusLabel(r) {
    if (r.status === "in_flight") return r.deltas > 0 ? "streaming" : "waiting";
    if (r.status === "error" && r.httpStatus >= 400) return "error " + r.httpStatus;
    return r.status;
  }

  function statsText(r) {
    var parts = [];
    if (known(r.ttft)) parts.push("TTFT " + fmtMs(r.ttft));
    if (known(r.tps)) parts.push(sig(r.tps) + " tok/s");
    var u = r.usage;
    if (u && (known(u.input_tokens) || known(u.output_tokens))) {
      parts.push(fmtCount(u.input_tokens) + " → " + fmtCount(u.output_tokens) + " tok" +
        (u.source === "estimated" ? " (est.)" : ""));
    }
    if (known(r.latency)) parts.push(fmtMs(r.latency));
    if (r.status !== "in_flight" && (r.costSet || known(r.cost)) && costIncurred(r.status, r.usage, r.cost)) {
      parts.push(known(r.cost) ? fmtUsd(r.cost) : "cost unknown");
    }
    if (r.error) parts.push(errorLabel(r.error, r.httpStatus));
    return parts.join(" · ");
  }

  function buildEl(r) {
    var a = el("a", "tt-row");
    a.href = "/request/" + encodeURIComponent(r.id);
    a.dataset.id = r.id;
    var head = el("div", "tt-row-head");
    r.ui = {
      status: el("span", "tt-status"),
      time: el("span", "tt-time"),
      model: el("span", "tt-chip tt-chip-model"),
      variant: el("span", "tt-chip tt-chip-variant"),
      endpoint: el("span", "tt-endpoint"),
      stats: el("span", "tt-row-stats"),
      stored: el("span", "tt-stored", "stored"),
      attrs: el("span", "tt-row-attrs"),
      cancel: el("button", "tt-cancel tt-btn tt-btn-small tt-btn-danger", "Cancel"),
      prompt: el("div", "tt-row-prompt"),
      completion: el("div", "tt-row-completion"),
      textBox: el("div", "tt-row-text")
    };
    r.ui.stored.title = "stored by the collector";
    r.ui.cancel.type = "button";
    r.ui.cancel.title = "cancel this request: the proxy closes the upstream stream";
    head.append(r.ui.status, r.ui.time, r.ui.model, r.ui.variant, r.ui.endpoint, r.ui.attrs, r.ui.stats, r.ui.stored,
      r.ui.cancel);
    r.textNode = document.createTextNode(tail(r.text));
    r.shown = r.text.length;
    r.ui.textBox.append(r.textNode, el("span", "tt-caret"));
    r.ui.completion.append(r.ui.textBox);
    a.append(head, r.ui.prompt, r.ui.completion);
    r.el = a;
    r.onScreen = true;  // until the observer says otherwise (it reports every new target once)
    if (onScreenObs) onScreenObs.observe(a);
    paint(r);
    return a;
  }

  function tail(text) {
    return text.length > ROW_TEXT_KEEP ? "…" + text.slice(text.length - ROW_TEXT_KEEP / 2) : text;
  }

  // Writes only what changed: setting a text replaces its node even when equal, and every
  // replaced node costs the row style and layout (a row is painted at its start, first
  // token and end, ~100 times a second under 100 streams, mostly with the same words).
  function setText(e, text) { if (e.textContent !== text) e.textContent = text; }
  function setClass(e, cls) { if (e.className !== cls) e.className = cls; }
  function setData(e, key, value) { if (e.dataset[key] !== value) e.dataset[key] = value; }
  function setChip(e, color) { if (e.style.getPropertyValue("--chip") !== color) e.style.setProperty("--chip", color); }

  // Everything of a row but its growing text.
  function paint(r) {
    if (!r.el) return;
    var ui = r.ui;
    setData(r.el, "status", r.status);
    setClass(r.el, "tt-row tt-row-" + r.status + (r.text ? "" : " tt-row-notext") +
      (r.stored ? " tt-row-stored" : ""));
    setClass(ui.status, "tt-status tt-status-" + r.status);
    setText(ui.status, statusLabel(r));
    setText(ui.time, fmtTime(r.time));
    setText(ui.model, r.model || "?");
    setChip(ui.model, colorFor("model", r.model));
    setText(ui.variant, r.variant || "?");
    setChip(ui.variant, colorFor("variant", r.variant));
    setText(ui.endpoint, r.endpoint || "");
    setText(ui.stats, statsText(r));
    var attrs = [];
    if (r.user) attrs.push("user " + r.user);
    r.tags.forEach(function (t) { attrs.push("#" + t); });
    if (r.key) attrs.push("key " + r.key);
    setText(ui.attrs, attrs.join(" · "));
    setText(ui.prompt, r.prompt || (r.live ? "" : "(prompt not captured)"));
    setData(ui.completion, "placeholder", placeholder(r));
  }

  function placeholder(r) {
    var tool = r.toolName ? "tool call: " + r.toolName : "tool call";
    if (r.status === "in_flight") return r.deltas ? (r.tools ? tool + "…" : "…") : "waiting for the first token…";
    if (r.tools) return "→ " + tool;
    if ((r.endpoint || "").indexOf("embeddings") >= 0) return "(embeddings: no completion text)";
    return r.status === "ok" ? "(no text)" : "";
  }

  // The row's text changed as a whole (a snapshot, the redacted end, history).
  function setRowText(r) {
    r.shown = -1;
    mark(r);
  }

  // ---- per-frame coalescing --------------------------------------------------------------
  // mark() notes a row whose DOM is behind its model; flush() brings every such row up to
  // date once per animation frame. A hidden tab gets no frames: a timer flushes it instead,
  // rarely, so the work stays bounded when it comes back.
  function mark(r, repaint) {
    if (repaint) r.repaint = true;
    // Off screen: no per-token writes (the text catches up in onScreenChange); a change of
    // state (end, stored: once per request) is still written, text and all.
    if (!r.el || (!r.onScreen && !r.repaint)) return;
    dirty.add(r);
    soon();
  }

  // Rows in or near the viewport: only these get per-token DOM writes. A row scrolled or
  // pushed off screen keeps its model; it is written once when it comes back.
  var onScreenObs = window.IntersectionObserver ? new IntersectionObserver(onScreenChange, {rootMargin: "300px 0px"}) : null;
  function onScreenChange(entries) {
    entries.forEach(function (e) {
      var r = rows.get(e.target.dataset.id);
      if (!r || r.el !== e.target) return;
      r.onScreen = e.isIntersecting;
      if (r.onScreen && (r.repaint || r.shown !== r.text.length)) mark(r);
      else if (!r.onScreen && !r.repaint) dirty.delete(r);
    });
  }

  // A change after a quiet spell is written at once (a token at 1 request/s reaches the DOM
  // with no frame's wait); one within a frame of the last write waits for the next frame,
  // with everything else that arrives meanwhile. Under a heavy feed (over BUSY_RATE deltas a
  // second) writes are spaced BUSY_GAP apart, ~30 frames a second: each frame's style,
  // layout, paint and commit cost about the same whatever it changed. Measured under 100
  // streams (bench/dashboard_bench.py): long tasks 28-36 -> 10-18 in 30 s, the longest
  // 103-146 -> 61-81 ms, input delay p95 40-52 -> 34-42 ms; a token waits ~10 ms more.
  var lastFlush = 0, BUSY_RATE = 300, BUSY_GAP = 33;
  var deltaRate = 0, rateAt = 0;  // deltas a second (a sum decaying over a second)
  function noteDelta() {
    var now = performance.now();
    deltaRate = deltaRate * Math.exp((rateAt - now) / 1000) + 1;
    rateAt = now;
  }
  function gap() {
    return deltaRate * Math.exp((rateAt - performance.now()) / 1000) > BUSY_RATE ? BUSY_GAP : 16;
  }

  function soon() {
    if (!flushQueued && !document.hidden && performance.now() - lastFlush >= gap()) flush(); else queueFlush();
  }

  function queueFlush() {
    if (flushQueued) return;
    flushQueued = true;
    if (document.hidden) { setTimeout(flush, 500); return; }
    var wait = lastFlush + gap() - performance.now();
    if (wait > 4) setTimeout(flush, wait); else requestAnimationFrame(flush);
  }

  function flush() {
    flushQueued = false;
    lastFlush = performance.now();
    if (fresh.length) insertFresh();
    dirty.forEach(writeRow);
    dirty.clear();
    if (detail.pending) { detail.pending = false; writeDetail(); }
    if (countsQueued) { countsQueued = false; counts(); }
  }

  // One DOM write per row: the text not shown yet (or all of it), then the header.
  function writeRow(r) {
    var n = r.textNode;
    if (n) {
      if (r.shown < 0 || r.shown > r.text.length) {
        n.data = tail(r.text);
      } else if (r.shown < r.text.length) {
        n.appendData(r.text.slice(r.shown));
        if (n.length > ROW_TEXT_KEEP) n.data = tail(r.text);
      }
      r.shown = r.text.length;
    }
    if (r.repaint) { r.repaint = false; paint(r); }
  }

  function queueCounts() {
    countsQueued = true;
    soon();
  }

  // A row leaves the DOM: drop every reference to its elements so none stays alive detached
  // (a kept r.ui or textNode held ~12 nodes per row that had ever been on screen).
  function dropEl(r) {
    if (r.el) { if (onScreenObs) onScreenObs.unobserve(r.el); r.el.remove(); }
    r.el = null; r.ui = null; r.textNode = null; r.shown = 0;
    dirty.delete(r);
  }

  // ---- the list --------------------------------------------------------------------------
  function matches(r) {
    var f = filter;
    if (f.models.length && f.models.indexOf(r.model) < 0) return false;
    if (f.variants.length && f.variants.indexOf(r.variant) < 0) return false;
    if (f.statuses.length && f.statuses.indexOf(r.status) < 0) return false;
    if (f.users.length && f.users.indexOf(r.user) < 0) return false;
    if (f.keys.length && f.keys.indexOf(r.key) < 0) return false;
    if (f.tags.length && !f.tags.some(function (t) { return r.tags.indexOf(t) >= 0; })) return false;
    if (f.q) {
      var q = f.q;
      if ((r.prompt || "").toLowerCase().indexOf(q) < 0 && r.text.toLowerCase().indexOf(q) < 0 &&
          (r.model || "").toLowerCase().indexOf(q) < 0 && r.id.indexOf(q) < 0) return false;
    }
    return true;
  }

  function byTimeDesc(a, b) { return (b.time || 0) - (a.time || 0) || (a.id < b.id ? -1 : 1); }

  function queueRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(render);
  }

  function evict(sorted) {
    if (sorted.length <= MAX_ROWS) return sorted;
    var keep = [];
    for (var i = 0; i < sorted.length; i++) {
      var r = sorted[i];
      if (i < MAX_ROWS || r.status === "in_flight") keep.push(r); else { rows.delete(r.id); dropEl(r); }
    }
    return keep;
  }

  function render() {
    renderQueued = false;
    if (!dom.list) return;
    fresh = [];  // the full render places them
    var before = visible;
    var sorted = evict(Array.from(rows.values()).sort(byTimeDesc));
    for (var i = RAW_KEEP_ROWS; i < sorted.length; i++) if (sorted[i].raw.length) sorted[i].raw = [];
    var matched = sorted.filter(matches);
    visible = matched.slice(0, MAX_VISIBLE);
    var els = visible.map(function (r) { return r.el || buildEl(r); });
    dom.list.replaceChildren.apply(dom.list, els);
    var now = new Set(visible);
    before.forEach(function (r) { if (!now.has(r)) dropEl(r); });  // rebuilt when shown again
    matchedCount = matched.length;
    counts();
  }

  // A request that just started is the newest: it goes on top with the next write (at once
  // after a quiet spell; under a burst, every start of a frame in one insertion).
  function showNew(r) {
    if (!dom.list) return;
    if (r.el && r.el.isConnected) { mark(r, true); return; }
    if (!matches(r)) { queueCounts(); return; }
    if (visible.length === 0 || (r.time || 0) >= (visible[0].time || 0)) {
      fresh.push(r);
      soon();
    } else {
      queueRender();
    }
  }

  // The starts since the last frame, newest on top; the rows pushed past MAX_VISIBLE leave.
  function insertFresh() {
    var add = fresh.filter(function (r) { return rows.get(r.id) === r && !r.el; }).sort(byTimeDesc);
    fresh = [];
    if (!add.length || !dom.list) return;
    var frag = document.createDocumentFragment();
    add.forEach(function (r) { frag.append(buildEl(r)); });
    dom.list.insertBefore(frag, dom.list.firstChild);
    visible = add.concat(visible);
    matchedCount += add.length;
    while (visible.length > MAX_VISIBLE) dropEl(visible.pop());
    countsQueued = true;
  }

  function counts() {
    var matched = matchedCount;
    if (!dom.count) return;
    var total = rows.size, inflight = 0;
    rows.forEach(function (r) { if (r.status === "in_flight") inflight++; });
    // Say what is counted: the rows on screen, of those this page holds (capped at MAX_ROWS:
    // the Requests page searches all of them).
    var text = "showing " + fmtCount(Math.min(matched, MAX_VISIBLE)) + " of " + fmtCount(matched) +
      (matched !== total ? " matching" : "") + (total >= MAX_ROWS ? " · the newest " + fmtCount(MAX_ROWS) +
      " requests kept in this page" : "") + " · " + inflight + " in flight";
    dom.count.textContent = text;
    dom.count.dataset.total = total;
    if (dom.empty) dom.empty.style.display = total ? "none" : "";
    if (dom.more) {
      dom.more.textContent = total && matched === 0 ? "No request matches the filters." :
        (matched > MAX_VISIBLE ? "Showing the newest " + MAX_VISIBLE + " of " + fmtCount(matched) + "." : "");
    }
  }

  function noteNames(r) {
    var added = false;
    if (r.model && !seen.models.has(r.model)) { seen.models.add(r.model); added = true; }
    if (r.variant && !seen.variants.has(r.variant)) { seen.variants.add(r.variant); added = true; }
    if (r.user && !seen.users.has(r.user)) { seen.users.add(r.user); added = true; }
    if (r.key && !seen.keys.has(r.key)) { seen.keys.add(r.key); added = true; }
    r.tags.forEach(function (t) { if (!seen.tags.has(t)) { seen.tags.add(t); added = true; } });
    if (added) queueOptions(200);
  }

  // The Live filters' choices: the names seen, at most every 200 ms. Written again when the
  // Live page opens, so the lists it shows are those of this moment, whatever was written
  // while it was hidden.
  function queueOptions(wait) {
    if (optionsQueued) return;
    optionsQueued = true;
    setTimeout(function () {
      optionsQueued = false;
      var opts = function (set) {
        return Array.from(set).sort().map(function (v) { return {label: v, value: v}; });
      };
      setProps("live-model", {options: opts(seen.models)});
      setProps("live-variant", {options: opts(seen.variants)});
      setProps("live-user", {options: opts(seen.users)});
      setProps("live-tag", {options: opts(seen.tags)});
      setProps("live-key", {options: opts(seen.keys)});
      notify("names", null);
    }, wait);
  }

  // ---- live events from one proxy ------------------------------------------------------
  function keepRaw(r, name, ev) {
    if (r.raw.length < MAX_RAW_EVENTS) r.raw.push("id: " + ev.lastEventId + "\nevent: " + name + "\ndata: " + ev.data);
    if (detail.id === r.id) { detail.pending = true; queueFlush(); }
  }

  function onStart(src, ev) {
    var d = JSON.parse(ev.data);
    var r = rows.get(d.id) || newRow(d.id);
    r.time = d.time; r.variant = d.variant; r.model = d.model; r.endpoint = d.endpoint;
    r.live = true; r.proxy = src.name; r.prompt = d.prompt_preview || "";  // the proxy computed it
    setAttribution(r, d);
    if (!r.stored) r.status = "in_flight";
    hist.maxTime = Math.max(hist.maxTime || 0, d.time || 0);
    noteNames(r);
    keepRaw(r, "request.start", ev);
    if (src.replaying) queueRender(); else showNew(r);
    notify("start", r);
  }

  function onDelta(src, ev) {
    noteDelta();
    var d = JSON.parse(ev.data);
    var r = rows.get(d.id);
    if (!r) {  // its start left the proxy's ring before we connected
      r = newRow(d.id); r.live = true; r.proxy = src.name; r.time = Date.now() / 1000;
    }
    var piece = d.text || "";
    if (d.snapshot) {
      r.text = piece;
      setRowText(r);
    } else if (piece) {
      r.text += piece;  // the DOM gets it at the next frame (flush)
    }
    if (d.ttft_ms !== undefined && d.ttft_ms !== null) r.ttft = d.ttft_ms;
    if (d.tool_calls) {
      r.tools = true;
      d.tool_calls.forEach(function (tc) {
        var name = tc && ((tc["function"] && tc["function"].name) || tc.name);
        if (name && !r.toolName) r.toolName = name;
      });
    }
    var first = r.deltas === 0 || (piece && r.text.length === piece.length);
    r.deltas = d.seq || r.deltas + 1;
    if (detail.id === r.id) detailDelta(r, !!d.snapshot);
    if (listeners.length) notify(d.snapshot ? "text" : "delta", r, piece);
    keepRaw(r, "request.delta", ev);
    if (first || d.snapshot) mark(r, true); else if (piece) mark(r);
  }

  function onEnd(src, ev) {
    var d = JSON.parse(ev.data);
    var r = rows.get(d.id);
    if (!r) { r = newRow(d.id); r.live = true; r.proxy = src.name; r.time = Date.now() / 1000; }
    r.status = d.status || "ok";
    r.usage = d.usage || r.usage;
    r.latency = d.latency_ms; r.tps = d.output_tps; r.finish = d.finish_reason;
    if (d.ttft_ms !== undefined && d.ttft_ms !== null) r.ttft = d.ttft_ms;
    r.error = d.error; r.httpStatus = d.http_status;
    if ("cost_usd" in d) { r.cost = d.cost_usd; r.costSet = true; }
    if (typeof d.text === "string") { r.text = d.text; setRowText(r); }  // redacted again as a whole
    keepRaw(r, "request.end", ev);
    mark(r, true);
    if (filter.statuses.length || filter.q) queueRender(); else queueCounts();
    if (detail.id === r.id && !src.replaying) setProps("detail-tick", {data: {id: r.id, at: Date.now()}});
    notify("end", r);
  }

  // A proxy's snapshot replaces what it showed: rows only it knew go; stored ones stay.
  function onSnapshot(src, ev) {
    src.replaying = ev.lastEventId;
    rows.forEach(function (r, id) {
      if (r.proxy !== src.name || !r.live) return;
      if (r.stored) { r.live = false; } else { rows.delete(id); dropEl(r); }
    });
    queueRender();
  }

  function listen(src, es, name, fn) {
    es.addEventListener(name, function (ev) {
      if (src.replaying && ev.lastEventId !== src.replaying) { src.replaying = null; queueRender(); }
      src.lastId = ev.lastEventId || src.lastId;
      try { fn(src, ev); } catch (e) { if (window.console) console.warn("tokentail: bad live event", e); }
    });
  }

  function withToken(url, extra) {
    var qs = [];
    if (CFG.token) qs.push("token=" + encodeURIComponent(CFG.token));
    Object.keys(extra || {}).forEach(function (k) {
      if (extra[k]) qs.push(k + "=" + encodeURIComponent(extra[k]));
    });
    return qs.length ? url + "?" + qs.join("&") : url;
  }

  // One feed (tokentail-feed.js: an EventSource read with fetch; EventSource itself where
  // fetch streams are missing) with its state for the banner. It reconnects by itself when
  // an open feed ends; after an HTTP error or a refusal it gives up (CLOSED), and we open a
  // new one with backoff.
  function connect(src, makeUrl, wire) {
    var backoff = 1000;
    function open() {
      var es = (window.tokentailFeed && window.tokentailFeed.open(makeUrl)) || new EventSource(makeUrl());
      src.es = es;
      es.onopen = function () { backoff = 1000; src.everOpen = true; setState(src, "open"); };
      es.onerror = function () {
        if (es.readyState === EventSource.CLOSED) {
          es.close();
          setState(src, "down");
          diagnose(src);
          setTimeout(open, backoff);
          backoff = Math.min(backoff * 2, 10000);
        } else {
          setState(src, "connecting");
          scheduleBanner();  // never opened, or lost: the banner speaks up if this lasts
        }
      };
      wire(es);
    }
    open();
  }

  function diagnose(src) {
    // An opaque no-cors fetch succeeds when the server answers at all: then the feed
    // was refused (origin not allowed, or a token), not unreachable.
    fetch(src.probe, {mode: "no-cors", cache: "no-store"}).then(function () {
      src.refused = true; updateBanner();
    }, function () { src.refused = false; updateBanner(); });
  }

  function connectProxy(p) {
    var src = sources["proxy:" + p.name] = {key: "proxy:" + p.name, kind: "proxy", name: p.name,
      label: "proxy " + p.name, display: p.display, probe: p.url + "/healthz", state: "connecting",
      since: Date.now(), lastId: null, replaying: null};
    connect(src, function () { return withToken(p.live, {last_event_id: src.lastId}); }, function (es) {
      listen(src, es, "snapshot", onSnapshot);
      listen(src, es, "request.start", onStart);
      listen(src, es, "request.delta", onDelta);
      listen(src, es, "request.end", onEnd);
      es.addEventListener("status", function (ev) {  // a merged feed (--live) says when Redis is away
        var d = {};
        try { d = JSON.parse(ev.data); } catch (e) { /* keep going */ }
        src.redisDown = d.live_redis === "down";
        updateBanner();
      });
      es.addEventListener("open", function () { src.redisDown = false; });  // a new stream says again
    });
  }

  // ---- the collector: Overview ticks and history --------------------------------------
  function connectCollector(c) {
    var src = sources.collector = {key: "collector", kind: "collector", name: "collector", label: "collector",
      display: c.display, probe: c.url + "/healthz", state: "connecting", since: Date.now()};
    connect(src, function () { return withToken(c.events); }, function (es) {
      es.addEventListener("snapshot", function (ev) {
        var snap = null;
        try { snap = JSON.parse(ev.data); } catch (e) { /* keep going */ }
        tick(snap);
        loadHistory();
      });
    });
  }

  // At most one Overview refresh a second, however fast the collector scrapes, and only
  // while the Overview is on screen: a hidden Overview re-rendered every second kept the
  // Live page's main thread busy (and React's old trees alive). It catches up on return.
  var tickMissed = false, pageTickAt = 0;
  var ovWaitSince = 0, ovTickWanted = null, ovObserver = null;
  function watchOverviewStatus() {
    var el = document.getElementById("ov-status");
    if (ovObserver || !el || !window.MutationObserver) return;
    ovObserver = new MutationObserver(function () {
      ovWaitSince = 0;
      if (ovTickWanted) {
        var snap = ovTickWanted === true ? null : ovTickWanted;
        ovTickWanted = null;
        tick(snap);
      }
    });
    ovObserver.observe(el, {childList: true, subtree: true, characterData: true});
  }
  function tick(snap) {
    var onOverview = current.page === null || current.page === "overview";
    if (!onOverview) tickMissed = true;
    if (!onOverview && !PAGE_TICKS[current.page]) return;
    var wait = 1000 - (Date.now() - tickAt);
    if (wait > 0) {
      if (!tickTimer) tickTimer = setTimeout(function () { tickTimer = null; tick(snap); }, wait);
      return;
    }
    // Dash throws away an answer once a newer call of the same callback has started: while the
    // Overview's last refresh is still on its way (a slow collector, a big range), a new tick
    // would discard it, and with ticks faster than the answers the charts would never update.
    // So the next tick waits until the status line changed (each refresh rewrites its time),
    // or 15 s at most (an answer that changed nothing, or was dropped).
    if (onOverview && ovWaitSince && Date.now() - ovWaitSince < 15000) {
      ovTickWanted = snap || true;
      return;
    }
    tickAt = Date.now();
    ticks++;
    if (onOverview) {
      watchOverviewStatus();
      ovWaitSince = Date.now();
      setProps("collector-tick", {data: {n: ticks, ts: snap && snap.ts}});
    }
    if (PAGE_TICKS[current.page] && tickAt - pageTickAt >= PAGE_TICK_EVERY) {
      pageTickAt = tickAt;
      setProps("page-tick", {data: {n: ticks, ts: snap && snap.ts}});
    }
  }

  function historySince() {
    if (hist.newestStored === null) return null;  // first load: the newest, whatever their age
    var floor = (hist.maxTime || hist.newestStored) - 600;
    var since = hist.newestStored - 30;
    rows.forEach(function (r) {  // finished live rows the collector has not stored yet
      if (r.live && !r.stored && r.status !== "in_flight" && r.time && r.time > floor && r.time < since) {
        since = r.time;
      }
    });
    return Math.max(since, floor) - 1;
  }

  // The first load takes the newest stored requests; after it, each asks for what the
  // collector received since the last answer (a cursor: received_before), so a tick fetches
  // the requests stored since, not the last half minute again. A collector from before that
  // (no received_before) is asked by start time, as before. The cursor goes back as the
  // collector wrote it (String: the shortest exact form): rounded up to the microsecond, it
  // could pass a batch still being stored, stamped at the very time it names.
  var HISTORY_PAGE = 500;
  function loadHistory() {
    if (!CFG.collector) return;
    if (hist.inFlight) { hist.again = true; return; }
    hist.inFlight = true;
    var cursor = hist.cursor, since = cursor === null ? historySince() : null;
    var url = cursor !== null ? "/_tt/spans?limit=" + HISTORY_PAGE + "&received_since=" + String(cursor) :
      "/_tt/spans?limit=" + (since === null ? (CFG.historyLimit || 200) : HISTORY_PAGE) +
      (since === null ? "" : "&since=" + since.toFixed(3));
    fetch(url, {cache: "no-store", credentials: "same-origin"}).then(function (r) { return r.json(); })
      .then(function (body) {
        var list = body.rows || [];
        mergeHistory(list);
        if (body.error) return;  // the same again next time
        var next = known(body.received_before) ? body.received_before : null;
        // A full page by receipt goes on at once, while the cursor moves (a batch still being
        // stored holds it: the next tick asks again).
        if (cursor !== null && next !== null && next > cursor && list.length >= HISTORY_PAGE) hist.again = true;
        hist.cursor = next;
      }, function () { /* banner covers it */ })
      .then(function () {
        hist.inFlight = false;
        if (hist.again) { hist.again = false; loadHistory(); }
      });
  }

  function mergeHistory(list) {
    var changed = false;
    list.forEach(function (h) {
      if (!h || !h.id) return;
      hist.newestStored = Math.max(hist.newestStored || 0, h.time || 0);
      hist.maxTime = Math.max(hist.maxTime || 0, h.time || 0);
      var r = rows.get(h.id);
      if (r && r.stored) return;  // a stored span does not change: nothing to merge or repaint
      if (!r) { r = newRow(h.id); changed = true; }
      if (!r.stored && detail.id === r.id) {  // the open request was just stored: show its trace id etc.
        setProps("detail-tick", {data: {id: r.id, at: Date.now(), stored: true}});
      }
      r.stored = true;
      if (!r.live) {  // from storage only: take all of it
        r.time = h.time; r.variant = h.variant; r.model = h.model; r.endpoint = h.endpoint;
        r.status = h.status || "ok"; r.prompt = h.prompt_preview || ""; r.text = h.text_preview || "";
        r.ttft = h.ttft_ms; r.latency = h.latency_ms; r.tps = h.output_tps; r.usage = h.usage;
        r.finish = h.finish_reason; r.error = h.error; r.httpStatus = h.http_status;
        r.deltas = r.text ? 1 : 0;
        r.cost = h.cost_usd; r.costSet = true;
        setAttribution(r, {user: h.user, tags: h.tags, key_fingerprint: h.key_fingerprint, session_id: h.session_id,
          route: h.route});
        setRowText(r);
      } else {  // seen live: what streamed stays; storage fills what the feed had not said
        if (!known(r.latency)) r.latency = h.latency_ms;
        if (!r.usage) r.usage = h.usage;
        if (!r.costSet) { r.cost = h.cost_usd; r.costSet = true; }
        if (!r.session) r.session = h.session_id || null;
      }
      noteNames(r);
      mark(r, true);
      notify("stored", r);
    });
    if (changed) queueRender(); else queueCounts();
  }

  // ---- sources: header dots and the banner ----------------------------------------------
  function setState(src, state) {
    if (src.state === state) return;
    src.state = state;
    src.since = Date.now();
    if (state === "open") src.refused = false;
    updateBanner();
    if (state !== "open") scheduleBanner();
    if (state === "open" && src.kind === "collector") { tick(null); loadHistory(); }
  }

  // Look again once a source that is away has been away long enough to say so.
  function scheduleBanner() {
    clearTimeout(bannerTimer);
    bannerTimer = setTimeout(updateBanner, BANNER_DELAY + 50);
  }

  function updateBanner() {
    var now = Date.now(), msgs = [];
    var origin = CFG.origin || location.origin;
    Object.keys(sources).forEach(function (k) {
      var s = sources[k];
      var away = s.state !== "open" && now - s.since >= BANNER_DELAY;
      var what = s.kind === "proxy" ? "the live list misses its requests until it is back" :
        "charts and history are paused; the Live page keeps working";
      if (s.redisDown && s.state === "open") {
        msgs.push({key: k, text: "The live plane's Redis is unreachable (feed at " + s.display + ") — new live " +
          "events do not arrive until it is back; proxied requests are not affected. Retrying…"});
      }
      if (away) {
        msgs.push({key: k, text: (s.kind === "proxy" ? "Proxy " + s.name : "Collector") + " at " + s.display +
          (s.refused ? " answers, but refused this page's feed: start it with --allowed-origin " + origin +
            (CFG.token ? " and the same read token" : "") : " is unreachable") + " — " + what + ". Retrying…"});
      }
      if (dom.sources) {
        var dot = dom.sources.querySelector('[data-source="' + k + '"]');
        if (!dot) {
          dot = el("span", "tt-source");
          dot.dataset.source = k;
          dot.append(el("span", "tt-source-dot"),
            el("span", "tt-source-name", s.kind === "proxy" ? s.name : "collector"));
          dom.sources.append(dot);
        }
        dot.dataset.state = s.state === "open" ? "open" : (away ? "down" : "connecting");
        dot.title = (s.kind === "proxy" ? "live feed of " : "collector events at ") + s.display + ": " +
          (s.state === "open" ? "connected" : away ? "unreachable" : "connecting");
      }
    });
    if (!dom.banner) return;
    dom.banner.replaceChildren.apply(dom.banner, msgs.map(function (m) {
      var d = el("div", "tt-banner-item", m.text);
      d.dataset.source = m.key;
      return d;
    }));
    dom.banner.classList.toggle("tt-banner-show", msgs.length > 0);
  }

  // ---- the detail page ----------------------------------------------------------------
  function detailIdFrom(path) {
    if (!path || path.indexOf("/request/") !== 0) return null;
    return decodeURIComponent(path.slice("/request/".length).replace(/\/+$/, "")) || null;
  }

  // The server rendered the page with the text as far as it knew; from here on the
  // browser's copy (at least as new) is shown and deltas append to it.
  function syncDetail() {
    var textEl = document.getElementById("tt-detail-text");
    var sseEl = document.getElementById("tt-detail-sse");
    detail.el = textEl; detail.sseEl = sseEl;
    var r = detail.id && rows.get(detail.id);
    if (!r) return;
    if (textEl && textEl.dataset.id === r.id && textEl.dataset.synced !== r.id) {
      if (r.live && r.text.length >= textEl.textContent.length) textEl.textContent = r.text;
      textEl.dataset.synced = r.id;
      detail.textShown = r.text.length;
    }
    if (sseEl && sseEl.dataset.id === r.id && sseEl.dataset.synced !== r.id) {
      sseEl.textContent = r.raw.length ? r.raw.join("\n\n") + "\n\n" :
        "(no live events of this request in this page: it streamed before the page was opened or " +
        "left the proxy's memory)";
      sseEl.dataset.synced = r.id;
      detail.rawShown = r.raw.length;
    }
  }

  // Images in a completion become links, never fetched (a prompt-injected model's way to
  // send data out); plain data: images stay. The same rule as dashboard/_markdown.py: an
  // image starts at the last "!" of a run; the "!"s before it stay, the last one escaped.
  var MD_IMAGE = /(\\*)(!+)\[/g;
  var MD_DATA_IMAGE = /!\[[^\[\]\n]*\]\(\s*<?data:[^\s()<>]*>?\s*\)/y;  // sticky: tried at one place
  function safeMarkdown(text) {
    if (!text || text.indexOf("![") < 0) return text || "";
    return text.replace(MD_IMAGE, function (m, slashes, bangs, at) {
      var escaped = slashes.length % 2 === 1;
      MD_DATA_IMAGE.lastIndex = at + slashes.length + bangs.length - 1;
      if ((escaped && bangs.length === 1) || MD_DATA_IMAGE.test(text)) return m;
      var keep = bangs.length - 1;
      if (keep === 0) return slashes + "[image: ";
      if (keep === 1 && escaped) return slashes + "![image: ";
      return slashes + "!".repeat(keep - 1) + "\\![image: ";
    });
  }

  // The open request changed: written at the next frame (flush -> writeDetail).
  function detailDelta(r, replace) {
    if (replace) detail.replace = true;
    detail.pending = true;
    soon();
  }

  function writeDetail() {
    var r = detail.id && rows.get(detail.id);
    if (!r) return;
    var t = detail.el;
    if (!t || !t.isConnected || t.dataset.id !== r.id || t.dataset.synced !== r.id) {
      syncDetail();  // shows r.text as it is now
    } else if (detail.replace || detail.textShown > r.text.length) {
      t.textContent = r.text;
    } else if (detail.textShown < r.text.length) {
      var more = r.text.slice(detail.textShown), last = t.lastChild;
      if (last && last.nodeType === 3) last.appendData(more); else t.appendChild(document.createTextNode(more));
    }
    detail.replace = false;
    detail.textShown = r.text.length;
    var sse = detail.sseEl;
    if (sse && sse.isConnected && sse.dataset.synced === r.id && detail.rawShown < r.raw.length) {
      sse.appendChild(document.createTextNode(r.raw.slice(detail.rawShown).join("\n\n") + "\n\n"));
    }
    detail.rawShown = r.raw.length;
    var now = Date.now();
    if (now - detail.mdAt >= MD_EVERY) {
      detail.mdAt = now;
      setProps("detail-md", {children: safeMarkdown(r.text)});
    } else if (!detail.mdTimer) {
      detail.mdTimer = setTimeout(function () {
        detail.mdTimer = null; detail.mdAt = Date.now();
        var cur = rows.get(detail.id);
        if (cur) setProps("detail-md", {children: safeMarkdown(cur.text)});
      }, MD_EVERY);
    }
  }

  // ---- actions (through this dashboard's server, which holds any admin token) ---------
  function toast(text, bad) {
    var t = document.getElementById("tt-toast");
    if (!t) return;
    t.textContent = text;
    t.className = "tt-toast tt-toast-show" + (bad ? " tt-toast-bad" : "");
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { t.className = "tt-toast"; }, bad ? 8000 : 3000);
  }

  // POST JSON to one of the server's /_tt/ action routes; resolves {ok, status, body}.
  function act(path, body) {
    return fetch(path, {method: "POST", credentials: "same-origin", cache: "no-store",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify(body || {})})
      .then(function (resp) {
        return resp.json().catch(function () { return {}; }).then(function (b) {
          var out = {ok: resp.ok, status: resp.status, body: b};
          if (resp.status === 401 && window.tokentail.onUnauthorized) window.tokentail.onUnauthorized(out);
          return out;
        });
      }, function () { return {ok: false, status: 0, body: {error: {message: "the dashboard is unreachable"}}}; });
  }

  function errorText(res) {
    var e = res.body && res.body.error;
    return (e && e.message) || ("HTTP " + res.status);
  }

  function cancel(id, button) {
    var r = rows.get(id);
    if (button) { button.disabled = true; button.textContent = "Cancelling…"; }
    return act("/_tt/cancel", {id: id, proxy: r && r.proxy}).then(function (res) {
      if (!res.ok) {
        if (button) { button.disabled = false; button.textContent = "Cancel"; }
        toast("Could not cancel: " + errorText(res), true);
      }
      return res;
    });
  }

  function navigate(href) {
    window.history.pushState({}, "", href);
    window.dispatchEvent(new CustomEvent("_dashprivate_pushstate"));
    window.scrollTo(0, 0);
  }

  // Plain links of the app's pages (a.tt-nav: a list drawn as static HTML, sessions_page.as_markup)
  // open their page as dcc.Link does, without a reload.
  document.addEventListener("click", function (e) {
    var a = e.target.closest && e.target.closest("a.tt-nav");
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    var href = a.getAttribute("href") || "";
    if (href.charAt(0) !== "/" || href.charAt(1) === "/") return;  // same-site paths only
    // The server's first view (#tt-first) is still over the app: the app may not route yet,
    // and the first view would stay over the page opened; a plain load, as its links were.
    if (document.getElementById("tt-first")) return;
    e.preventDefault();
    navigate(href);
  });

  // ---- start ----------------------------------------------------------------------------
  function mount() {
    var list = document.getElementById("tt-live-list");
    if (!list || dom.list === list) return;
    dom.list = list;
    dom.empty = document.getElementById("tt-live-empty");
    dom.count = document.getElementById("tt-live-count");
    dom.more = document.getElementById("tt-live-more");
    dom.banner = document.getElementById("tt-banner");
    dom.sources = document.getElementById("tt-sources");
    list.addEventListener("click", function (e) {
      var btn = e.target.closest && e.target.closest(".tt-cancel");
      if (btn) {
        e.preventDefault();
        e.stopPropagation();
        var row = btn.closest("a.tt-row");
        if (row) cancel(row.dataset.id, btn);
        return;
      }
      var a = e.target.closest && e.target.closest("a.tt-row");
      if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      e.preventDefault();
      navigate(a.getAttribute("href"));
    });
    var detailPage = document.getElementById("page-detail");
    if (detailPage) {
      detailPage.addEventListener("click", function (e) {  // layout.collapsible's "show all"
        var btn = e.target.closest && e.target.closest(".tt-show-all");
        if (!btn) return;
        var box = btn.closest(".tt-collapse");
        var pre = box && box.querySelector(".tt-collapsed");
        if (pre) pre.classList.remove("tt-collapsed");
        btn.remove();
      });
    }
    if (detailPage) new MutationObserver(syncDetail).observe(detailPage, {childList: true, subtree: true});
    updateBanner();
    render();
  }

  var started = false;
  function start() {
    if (started) return;
    started = true;
    function connectAll() {
      (CFG.live ? [CFG.live] : CFG.proxies).forEach(connectProxy);  // --live: one merged feed
      if (CFG.collector) { connectCollector(CFG.collector); loadHistory(); }
      scheduleBanner();
    }
    // The read token is never in the HTML: the page asks this server for it (same-origin).
    if (CFG.tokenUrl) {
      fetch(CFG.tokenUrl, {credentials: "same-origin", cache: "no-store"})
        .then(function (r) { return r.json(); })
        .then(function (j) { CFG.token = j.token; }, function () {})
        .then(connectAll);
    } else {
      connectAll();
    }
    var obs = new MutationObserver(function () {
      if (document.getElementById("tt-live-list")) { mount(); obs.disconnect(); }
    });
    obs.observe(document.documentElement, {childList: true, subtree: true});
    mount();
  }

  window.tokentail = {
    version: 1,
    rows: rows,
    sources: sources,
    colorFor: colorFor,
    route: function (path) {
      var p = path || "/";
      var page = pageOf(p);
      var previous = detail.id;
      // A page opened loads its own data (its callbacks take the path): the next refresh tick
      // comes a full interval later. One at once would start a second call of the same
      // callback, and Dash drops the first's answer: the page showed nothing until the second.
      if (PAGE_TICKS[page] && page !== current.page) pageTickAt = Date.now();
      if (page === "live" && current.page !== "live") queueOptions(0);
      current.page = page;
      detail.id = page === "detail" ? detailIdFrom(p) : null;
      if (page === "detail" && detail.id !== previous) setProps("detail-body", {children: "Loading…"});
      if (page === "detail") {
        document.title = "Request " + (detail.id || "").slice(0, 8) + " · tokentail";
        setTimeout(syncDetail, 0);
      } else {
        document.title = TITLES[page] + " · tokentail";
      }
      if (page === "live") queueRender();
      if (tickMissed && page === "overview") { tickMissed = false; tick(null); }
      notify("route", null, page);
      var show = {}, hide = {display: "none"};
      var out = PAGES.map(function (name) { return name === page ? show : hide; });
      NAV.forEach(function (name) {
        out.push("tt-nav-link" + (name === page || NAV_OF[page] === name ? " active" : ""));
      });
      return out;
    },
    setFilter: function (f) {
      filter = {q: (f.q || "").trim().toLowerCase(), models: f.models || [], variants: f.variants || [],
        statuses: f.statuses || [], users: f.users || [], tags: f.tags || [], keys: f.keys || []};
      queueRender();
    },
    listen: function (fn) { listeners.push(fn); },
    act: act,
    cancel: cancel,
    toast: toast,
    fmt: {usd: fmtUsd, ms: fmtMs, count: fmtCount, time: fmtTime, sig: sig, errorLabel: errorLabel},
    setProps: setProps,
    navigate: navigate,
    page: function () { return current.page; },
    onUnauthorized: null,
    detailMode: function (mode) {
      var on = {}, off = {display: "none"};
      return mode === "md" ? [off, on] : [on, off];
    }
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
