/*
 * tokentail dashboard: a live feed read with fetch(), in the shape of an EventSource.
 *
 * Why: a proxy's /api/live carries one event per streamed delta (about 1,200 a second
 * under 100 concurrent streams). Chromium's EventSource parses them in its loader and
 * dispatches each as a DOM event: measured, a third of the Live page's main thread went
 * there. Here each network chunk is decoded once and its events parsed in one pass, each
 * handed to its listener by a plain call.
 *
 * The parts of EventSource the page uses: addEventListener(type, fn) with
 * {type, data, lastEventId} events, onopen/onerror, readyState (CONNECTING 0, OPEN 1,
 * CLOSED 2) and close(). Parsing follows the SSE specification (lines end in \n, \r\n
 * or \r, split anywhere across chunks; data lines joined by \n; id persists; comments and
 * unknown fields ignored; retry sets the reconnection delay). As EventSource does, an HTTP
 * error, a response that is not text/event-stream or a refused request (network error or
 * CORS, which fetch cannot tell apart) closes it for good, and a feed that ends after it
 * opened reconnects by itself, asking makeUrl() again (which carries the last event id).
 */
(function () {
  "use strict";

  var CONNECTING = 0, OPEN = 1, CLOSED = 2;

  function Feed(makeUrl) {
    this.readyState = CONNECTING;
    this.onopen = null;
    this.onerror = null;
    this._makeUrl = makeUrl;
    this._listeners = {};
    this._abort = null;
    this._retry = 3000;
    this._connect();
  }

  Feed.prototype.addEventListener = function (type, fn) {
    (this._listeners[type] = this._listeners[type] || []).push(fn);
  };

  Feed.prototype.close = function () {
    this.readyState = CLOSED;
    if (this._abort) this._abort.abort();
  };

  Feed.prototype._emit = function (type, ev) {
    var fns = this._listeners[type];
    if (type === "open" && this.onopen) this.onopen(ev);
    if (type === "error" && this.onerror) this.onerror(ev);
    if (!fns) return;
    for (var i = 0; i < fns.length; i++) fns[i](ev);
  };

  Feed.prototype._fail = function (reconnect) {
    if (this.readyState === CLOSED) return;
    this.readyState = reconnect ? CONNECTING : CLOSED;
    if (this._abort) this._abort.abort();
    this._emit("error", {type: "error"});
    if (reconnect && this.readyState === CONNECTING) {
      var self = this;
      setTimeout(function () { if (self.readyState === CONNECTING) self._connect(); }, this._retry);
    }
  };

  Feed.prototype._connect = function () {
    var self = this;
    var ctl = this._abort = new AbortController();
    fetch(this._makeUrl(), {
      headers: {Accept: "text/event-stream"},
      cache: "no-store",
      credentials: "same-origin",
      signal: ctl.signal,
    }).then(function (resp) {
      var type = (resp.headers.get("Content-Type") || "").split(";")[0].trim().toLowerCase();
      if (resp.status !== 200 || type !== "text/event-stream" || !resp.body) {
        self._fail(false);
        return;
      }
      if (self.readyState === CLOSED) { ctl.abort(); return; }
      self.readyState = OPEN;
      self._emit("open", {type: "open"});
      self._read(resp.body.getReader(), ctl);
    }, function () {
      if (!ctl.signal.aborted) self._fail(false);
    });
  };

  Feed.prototype._read = function (reader, ctl) {
    var self = this;
    var decoder = new TextDecoder("utf-8");
    var parser = new Parser(function (type, data, id) {
      if (self.readyState !== OPEN) return;
      self._emit(type, {type: type, data: data, lastEventId: id});
    }, function (ms) { self._retry = ms; });
    function pump() {
      return reader.read().then(function (r) {
        if (ctl.signal.aborted) return;
        if (r.done) { parser.push(decoder.decode()); self._fail(true); return; }
        parser.push(decoder.decode(r.value, {stream: true}));
        return pump();
      });
    }
    pump().catch(function () { if (!ctl.signal.aborted) self._fail(true); });
  };

  // The SSE parser: text in (any split), events out as dispatch(type, data, lastEventId).
  function Parser(dispatch, setRetry) {
    this._dispatch = dispatch;
    this._setRetry = setRetry;
    this._parts = [];      // an unfinished line, as it came
    this._skipLF = false;  // the last chunk ended in \r: a \n starting the next belongs to it
    this._type = "";
    this._data = [];
    this._id = "";
  }

  // Each character is looked at once: an unfinished line is kept in pieces and joined when
  // its end arrives (a 1 MiB event in 1 KiB reads would otherwise be rescanned a thousand times).
  Parser.prototype.push = function (text) {
    if (!text) return;
    if (this._skipLF) {
      this._skipLF = false;
      if (text.charCodeAt(0) === 10) text = text.slice(1);
    }
    var start = 0, n = text.length;
    for (var i = 0; i < n; i++) {
      var c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      var line = text.slice(start, i);
      if (this._parts.length) {
        this._parts.push(line);
        line = this._parts.join("");
        this._parts = [];
      }
      this._line(line);
      if (c === 13) {
        if (i + 1 < n) { if (text.charCodeAt(i + 1) === 10) i++; } else this._skipLF = true;
      }
      start = i + 1;
    }
    if (start < n) this._parts.push(text.slice(start));
  };

  Parser.prototype._line = function (line) {
    if (line === "") {  // the end of an event
      if (this._data.length) this._dispatch(this._type || "message", this._data.join("\n"), this._id);
      this._type = "";
      this._data = [];
      return;
    }
    if (line.charCodeAt(0) === 58) return;  // ":" a comment
    var colon = line.indexOf(":");
    var field = colon < 0 ? line : line.slice(0, colon);
    var value = colon < 0 ? "" : line.slice(line.charCodeAt(colon + 1) === 32 ? colon + 2 : colon + 1);
    if (field === "data") this._data.push(value);
    else if (field === "event") this._type = value;
    else if (field === "id") { if (value.indexOf("\u0000") < 0) this._id = value; }
    else if (field === "retry") { if (/^\d+$/.test(value)) this._setRetry(parseInt(value, 10)); }
  };

  window.tokentailFeed = {
    open: function (makeUrl) {
      if (!window.fetch || !window.ReadableStream || !window.TextDecoder || !window.AbortController) return null;
      return new Feed(makeUrl);
    },
    Parser: Parser,  // for the tests
    CLOSED: CLOSED,
  };
})();
