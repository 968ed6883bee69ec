/* The request detail's Replay button (dashboard/replay_view.py): POST /_tt/replay through the
 * dashboard's own action route (same access rule as every state change: JSON, same origin, the
 * admin token cookie when one is configured), then open the copy's detail. */
(function () {
  "use strict";
  function value(id) {
    var el = document.getElementById(id);
    return el && el.value ? el.value.trim() : "";
  }
  document.addEventListener("click", function (e) {
    var btn = e.target.closest && e.target.closest("[data-tt-replay-run]");
    if (!btn || btn.disabled || !window.tokentail) return;
    e.preventDefault();
    var target = {};
    if (value("abc-replay-variant")) target.variant = value("abc-replay-variant");
    if (value("abc-replay-model")) target.model = value("abc-replay-model");
    btn.disabled = true;
    window.tokentail.act("/_tt/replay-run", {run_id: parseInt(value("abc-replay-run"), 10), target: target})
      .then(function (res) {
        btn.disabled = false;
        var err = res.body && res.body.error;
        if (!res.ok) {
          window.tokentail.toast("Could not replay the run: " + ((err && err.message) || ("HTTP " + res.status)), true);
          return;
        }
        window.tokentail.toast("Replaying " + res.body.requests + " requests as run " + res.body.run +
          (res.body.skipped ? " (" + res.body.skipped + " skipped)" : ""), false);
        window.history.pushState({}, "", res.body.compare);
        window.dispatchEvent(new CustomEvent("_dashprivate_pushstate"));
      });
  });
  document.addEventListener("click", function (e) {
    var btn = e.target.closest && e.target.closest("[data-tt-replay]");
    if (!btn || btn.disabled || !window.tokentail) return;
    e.preventDefault();
    var target = {};
    if (value("replay-variant")) target.variant = value("replay-variant");
    if (value("replay-model")) target.model = value("replay-model");
    if (value("replay-route")) target.route = value("replay-route");
    btn.disabled = true;
    btn.textContent = "Replaying…";
    window.tokentail.act("/_tt/replay", {request_id: btn.dataset.ttReplay, target: target}).then(function (res) {
      btn.disabled = false;
      btn.textContent = "Replay";
      var err = res.body && res.body.error;
      if (!res.ok || !res.body.id) {
        window.tokentail.toast("Could not replay: " + ((err && err.message) || ("HTTP " + res.status)), true);
        return;
      }
      window.history.pushState({}, "", "/request/" + encodeURIComponent(res.body.id));
      window.dispatchEvent(new CustomEvent("_dashprivate_pushstate"));
    });
  });
})();
