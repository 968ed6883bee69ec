/*
 * tokentail dashboard: the pages' actions and their live parts (after tokentail.js).
 *
 * - Buttons with data-tt-action (Cancel, run start/pause/resume/end, the Playground's
 *   Send and Cancel) POST same-origin JSON to this dashboard's /_tt/ routes; the server
 *   makes the call with the admin token, which the page never holds. A 401 opens the
 *   unlock box: the token, typed once, becomes an HttpOnly cookie.
 * - A session's page lists its stored turns (rendered by the server); the turns not
 *   stored yet come from the live feed already open (window.tokentail.listen) and are
 *   dropped once a re-render lists them.
 * - The Playground follows the request it sent by id on the same live feed: no second
 *   stream, and the request is in Live like any other.
 */
(function () {
  "use strict";

  var tt = window.tokentail;
  if (!tt) return;
  var MAX_TURN_TEXT = 1200;   // as sessions_page.TURN_TEXT_CHARS
  var SESSION_TICK_EVERY = 1000;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  function errorText(res) {
    var e = res.body && res.body.error;
    return (e && e.message) || ("HTTP " + res.status);
  }

  function tick(id) { tt.setProps(id, {data: {at: Date.now()}}); }

  function costText(v) {
    return v === null || v === undefined ? "cost unknown" : tt.fmt.usd(v);
  }

  // ---- unlock: the admin token, once, for an HttpOnly cookie ---------------------------
  function unlockBox() {
    var box = document.getElementById("tt-unlock");
    if (box) return box;
    box = el("form", "tt-unlock");
    box.id = "tt-unlock";
    var input = el("input", "tt-input");
    input.type = "password";
    input.placeholder = "TOKENTAIL_ADMIN_TOKEN";
    input.autocomplete = "off";
    var go = el("button", "tt-btn tt-btn-primary", "Unlock");
    go.type = "submit";
    var close = el("button", "tt-btn", "Close");
    close.type = "button";
    box.append(el("span", "tt-unlock-text", "This action needs the dashboard's admin token."), input, go, close);
    close.addEventListener("click", function () { box.classList.remove("tt-unlock-show"); });
    box.addEventListener("submit", function (e) {
      e.preventDefault();
      tt.act("/_tt/admin", {token: input.value}).then(function (res) {
        input.value = "";
        if (res.ok) { box.classList.remove("tt-unlock-show"); tt.toast("Unlocked: try again."); }
        else tt.toast(errorText(res), true);
      });
    });
    document.body.append(box);
    return box;
  }
  tt.onUnauthorized = function () {
    var box = unlockBox();
    box.classList.add("tt-unlock-show");
    box.querySelector("input").focus();
  };

  // ---- buttons ------------------------------------------------------------------------
  function runAction(btn) {
    var id = btn.dataset.run, action = btn.dataset.action;
    btn.disabled = true;
    tt.act("/_tt/runs/" + encodeURIComponent(id) + "/" + action, {}).then(function (res) {
      btn.disabled = false;
      if (!res.ok) { tt.toast("Could not " + action + " the run: " + errorText(res), true); return; }
      tt.toast("Run " + (res.body.name || id) + " is " + res.body.status + ".");
      tick("runs-tick");
    });
  }

  // The scope form's text fields (run_scope.FIELDS); the dashboard's server turns them into
  // the collector's scope. Empty fields leave the scope open.
  var SCOPE_FIELDS = ["tags", "user", "session", "variant", "model", "key_fingerprint"];
  function scopeInput(f) { return document.getElementById("runs-scope-" + f.replace(/_/g, "-")); }

  function runStart(btn) {
    var input = document.getElementById("runs-name");
    var name = (input && input.value || "").trim();
    if (!name) name = "run " + new Date().toISOString().slice(0, 16).replace("T", " ");
    var scope = {}, scoped = false;
    SCOPE_FIELDS.forEach(function (f) {
      var v = (scopeInput(f) || {}).value;
      if (v && v.trim()) { scope[f] = v; scoped = true; }
    });
    btn.disabled = true;
    tt.act("/_tt/runs", scoped ? {name: name, scope: scope} : {name: name}).then(function (res) {
      btn.disabled = false;
      if (!res.ok) { tt.toast("Could not start a run: " + errorText(res), true); return; }
      tt.setProps("runs-name", {value: ""});
      SCOPE_FIELDS.forEach(function (f) { if (scopeInput(f)) tt.setProps(scopeInput(f).id, {value: ""}); });
      tt.toast("Recording run " + res.body.name + (scoped ? " (scoped)." : " (all traffic)."));
      tick("runs-tick");
    });
  }

  function eraseContent(btn) {
    var field = btn.dataset.field, value = btn.dataset.value, body = {};
    if (!window.confirm("Erase the captured prompts and completions of this " + field +
        " on the collector and the proxies? Usage, timings and cost stay. This cannot be undone.")) return;
    body[field] = value;
    btn.disabled = true;
    tt.act("/_tt/erase", body).then(function (res) {
      btn.disabled = false;
      if (!res.ok) {
        var more = res.body && res.body.results ? " " + res.body.results.join("; ") : "";
        tt.toast("Not erased everywhere: " + errorText(res) + more, true);
        return;
      }
      tt.toast("Content erased: " + res.body.results.join("; "));
      window.setTimeout(function () { window.location.reload(); }, 800);
    });
  }

  document.addEventListener("click", function (e) {
    var btn = e.target.closest && e.target.closest("[data-tt-action]");
    if (!btn || btn.disabled) return;
    var what = btn.dataset.ttAction;
    e.preventDefault();
    if (what === "cancel") tt.cancel(btn.dataset.id, btn);
    else if (what === "run") runAction(btn);
    else if (what === "run-start") runStart(btn);
    else if (what === "play-send") playSend(btn);
    else if (what === "erase") eraseContent(btn);
    else if (what === "play-cancel") { if (play.id) tt.cancel(play.id, null); }
  });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && e.target && e.target.id &&
        (e.target.id === "runs-name" || e.target.id.indexOf("runs-scope-") === 0)) {
      var b = document.getElementById("runs-start");
      if (b) runStart(b);
    }
  });

  // ---- a session's turns in flight ------------------------------------------------------
  var session = {id: null, tickAt: 0, tickTimer: null};

  function sessionIdFrom(path) {
    var m = /^\/sessions\/(.+?)\/*$/.exec(path || "");
    return m ? decodeURIComponent(m[1]) : null;
  }

  function storedIds() {
    var out = new Set();
    document.querySelectorAll("#session-turns [data-id]").forEach(function (t) { out.add(t.dataset.id); });
    return out;
  }

  function sessionTick() {
    var wait = SESSION_TICK_EVERY - (Date.now() - session.tickAt);
    if (wait > 0) {
      if (!session.tickTimer) session.tickTimer = setTimeout(function () { session.tickTimer = null; sessionTick(); }, wait);
      return;
    }
    session.tickAt = Date.now();
    tick("session-tick");
  }

  function liveTurn(r) {
    var t = el("div", "tt-turn tt-turn-" + r.status + " tt-turn-live");
    t.dataset.id = r.id;
    t.dataset.status = r.status;
    var head = el("div", "tt-turn-head");
    var status = r.status === "in_flight" ? (r.deltas ? "streaming" : "waiting") : r.status;
    var chip = el("span", "tt-chip", r.model || "?");
    chip.style.setProperty("--chip", tt.colorFor("model", r.model));
    var stats = [];
    if (r.usage) stats.push(tt.fmt.count(r.usage.input_tokens) + " → " + tt.fmt.count(r.usage.output_tokens) + " tok");
    if (r.status !== "in_flight" && r.costSet) stats.push(costText(r.cost));
    if (r.latency !== null && r.latency !== undefined) stats.push(tt.fmt.ms(r.latency));
    var link = el("a", "tt-link tt-small", "details →");
    link.href = "/request/" + encodeURIComponent(r.id);
    head.append(el("span", "tt-turn-n", "live"), el("span", "tt-time", tt.fmt.time(r.time)),
      el("span", "tt-status tt-status-" + r.status, status), chip, el("span", "tt-row-stats", stats.join(" · ")), link);
    if (r.status === "in_flight") {
      var c = el("button", "tt-btn tt-btn-small tt-btn-danger", "Cancel");
      c.dataset.ttAction = "cancel";
      c.dataset.id = r.id;
      head.append(c);
    }
    var user = el("div", "tt-msg tt-msg-user");
    user.append(el("div", "tt-msg-role", "user"), el("pre", "tt-text", r.prompt || ""));
    var bot = el("div", "tt-msg tt-msg-assistant");
    var text = r.text.length > MAX_TURN_TEXT ? r.text.slice(0, MAX_TURN_TEXT) + "…" : r.text;
    bot.append(el("div", "tt-msg-role", "assistant"), el("pre", "tt-text" + (r.status === "in_flight" ? " tt-streaming" : ""), text));
    t.append(head, user, bot);
    return t;
  }

  function renderSession() {
    var box = document.getElementById("tt-session-live");
    if (!box) return;
    if (!session.id) { box.replaceChildren(); return; }
    var stored = storedIds();
    var turns = [];
    tt.rows.forEach(function (r) {
      if (r.session === session.id && !stored.has(r.id) && r.live) turns.push(r);
    });
    turns.sort(function (a, b) { return (a.time || 0) - (b.time || 0); });
    box.replaceChildren.apply(box, turns.map(liveTurn));
  }

  var sessionQueued = false;
  function queueSession() {
    if (sessionQueued) return;
    sessionQueued = true;
    requestAnimationFrame(function () { sessionQueued = false; renderSession(); });
  }

  // ---- the playground -----------------------------------------------------------------------
  var play = {id: null, sending: false};

  function byId(id) { return document.getElementById(id); }

  function playStatus(text) {
    var s = byId("tt-play-status");
    if (s) s.textContent = text;
  }

  function playShow(r) {
    var out = byId("tt-play-text");
    if (!out || !r || r.id !== play.id) return;
    out.textContent = r.text;
    out.classList.toggle("tt-streaming", r.status === "in_flight");
    var cancel = byId("play-cancel");
    if (cancel) cancel.disabled = r.status !== "in_flight";
    var bits = [r.status === "in_flight" ? (r.deltas ? "streaming…" : "waiting for the first token…") : r.status];
    if (r.usage && r.status !== "in_flight") {
      bits.push(tt.fmt.count(r.usage.input_tokens) + " → " + tt.fmt.count(r.usage.output_tokens) + " tok");
    }
    if (r.status !== "in_flight" && r.costSet) bits.push(costText(r.cost));
    if (r.latency !== null && r.latency !== undefined) bits.push(tt.fmt.ms(r.latency));
    if (r.error) bits.push(tt.fmt.errorLabel(r.error, r.httpStatus));
    playStatus(bits.join(" · "));
    var send = byId("play-send");
    if (send && r.status !== "in_flight") send.disabled = false;
  }

  function playSend(btn) {
    var checked = document.querySelector("#play-proxy input:checked");
    var body = {
      proxy: checked ? checked.value : null,
      model: (byId("play-model") || {}).value,
      system: (byId("play-system") || {}).value,
      message: (byId("play-message") || {}).value,
      temperature: (byId("play-temperature") || {}).value
    };
    btn.disabled = true;
    play.id = null;
    var out = byId("tt-play-text");
    if (out) { out.textContent = ""; out.classList.add("tt-streaming"); }
    playStatus("sending…");
    tt.act("/_tt/playground", body).then(function (res) {
      if (!res.body || !res.body.id) {
        btn.disabled = false;
        if (out) out.classList.remove("tt-streaming");
        playStatus("");
        tt.toast("Not sent: " + errorText(res), true);
        return;
      }
      play.id = res.body.id;
      var link = byId("tt-play-link");
      if (link) { link.href = "/request/" + encodeURIComponent(play.id); link.style.display = ""; }
      if (out) out.dataset.id = play.id;
      var r = tt.rows.get(play.id);
      if (r) playShow(r);  // the feed may have been faster than this answer
      else playStatus(res.body.error ? "error: " + res.body.error.message : "waiting for the live feed…");
      if (res.body.error && !r) btn.disabled = false;
    });
  }

  // The models the proxy's upstream lists (GET /v1/models through /_tt/models), once per proxy;
  // the default model gives way to the first listed one when the upstream does not list it.
  var listed = {proxy: null, models: [], touched: false};
  function loadModels() {
    var checked = document.querySelector("#play-proxy input:checked");
    var proxy = checked ? checked.value : "";
    if (listed.proxy === proxy) return;
    listed.proxy = proxy;
    fetch("/_tt/models?proxy=" + encodeURIComponent(proxy), {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { return r.json(); })
      .then(function (body) {
        listed.models = (body && body.models) || [];
        var input = byId("play-model");
        if (input && !listed.touched && listed.models.length && listed.models.indexOf(input.value) < 0) {
          tt.setProps("play-model", {value: listed.models[0]});
        }
        fillModels();
      }, function () { listed.proxy = null; });
  }
  document.addEventListener("input", function (e) {
    if (e.target && e.target.id === "play-model") listed.touched = true;
  });
  document.addEventListener("change", function (e) {
    if (e.target && e.target.closest && e.target.closest("#play-proxy")) loadModels();
  });

  function fillModels() {
    var list = byId("tt-play-models");
    if (!list) return;
    var models = new Set(listed.models);
    tt.rows.forEach(function (r) { if (r.model) models.add(r.model); });
    list.replaceChildren.apply(list, Array.from(models).sort().map(function (m) {
      var o = document.createElement("option");
      o.value = m;
      return o;
    }));
  }

  // ---- wiring ---------------------------------------------------------------------------------
  tt.listen(function (kind, r, extra) {
    if (kind === "route") {
      session.id = extra === "session" ? sessionIdFrom(location.pathname) : null;
      queueSession();
      if (extra === "playground") { fillModels(); loadModels(); }
      return;
    }
    if (kind === "names") { fillModels(); return; }
    if (!r) return;
    if (play.id && r.id === play.id) playShow(r);
    if (session.id && r.session === session.id) {
      if (kind === "stored" || kind === "end") sessionTick();  // the server lists it once stored
      if (kind !== "delta" || !sessionQueued) queueSession();
    }
  });
  // The server's render of the stored turns replaces what was live: look again after each.
  function watchSessionBody() {
    var body = byId("session-body");
    if (!body) return false;
    new MutationObserver(function () { if (session.id) queueSession(); }).observe(body, {childList: true, subtree: true});
    return true;
  }
  if (!watchSessionBody()) {
    var waiting = new MutationObserver(function () { if (watchSessionBody()) waiting.disconnect(); });
    waiting.observe(document.documentElement, {childList: true, subtree: true});
  }
})();
