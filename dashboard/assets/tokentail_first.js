/*
 * tokentail dashboard: the server's first view (#tt-first, dashboard/first_view.py) stays
 * over the app until the app has drawn that page's list itself, then goes. Polled (every
 * 50 ms, while it is there): Dash replaces the list's children as a whole, and the check
 * is two lookups.
 */
(function () {
  "use strict";

  var READY = {
    // The list has its table (or its empty state), or the status line no longer says
    // "Loading…" (the collector's error is shown there): the app answered.
    sessions: function () {
      var list = document.getElementById("sessions-list");
      var status = document.getElementById("sessions-status");
      return !!((list && list.firstElementChild) || (status && status.textContent !== "Loading…"));
    },
    // Its table (or "No request matches"), or the range line's error.
    requests: function () {
      var list = document.getElementById("req-list");
      var range = document.getElementById("req-range");
      return !!((list && list.firstElementChild) || (range && range.textContent !== ""));
    },
  };

  var first = document.getElementById("tt-first");
  if (!first) return;
  var ready = READY[first.getAttribute("data-page")];
  if (!ready) { first.remove(); return; }
  (function check() {
    if (ready()) first.remove();
    else setTimeout(check, 50);
  })();
})();
