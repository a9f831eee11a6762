// Live pages: the server says when something changed (server-sent events, /events); every
// element marked hx-trigger="refresh from:body" then reloads itself. Pages that show ages
// (data-tick on <body>) also refresh on the server's periodic "tick". Where the event stream
// cannot be kept open (a proxy that buffers it), the page polls instead.
(function () {
  "use strict";
  var body = document.body;
  var source = body.getAttribute("data-events");
  var pollMs = 1000 * Number(body.getAttribute("data-poll") || "5");
  var poller = null;
  var actions = 0;
  var missed = false;

  function refresh() {
    // Never replace a region while the operator is typing into a form inside it, nor while an
    // action (Retry, Cancel, Replay) is on its way: its answer replaces the region itself, and
    // htmx drops the answer of a form that a refresh has meanwhile swapped away.
    var active = document.activeElement;
    if (active && active.closest && active.closest("[data-keep]")) return;
    if (actions > 0) { missed = true; return; }
    htmx.trigger(body, "refresh");
  }

  // (A refresh already under way when an action starts is aborted by the action's hx-sync.)
  body.addEventListener("htmx:beforeRequest", function (event) {
    if (event.detail.elt.tagName !== "FORM") return;
    actions += 1;
    // The form may be swapped away with its region, so its own events may never bubble here.
    event.detail.xhr.addEventListener("loadend", function () {
      actions -= 1;
      if (actions === 0 && missed) { missed = false; setTimeout(refresh, 0); }
    });
  });

  function poll() {
    if (poller === null) poller = setInterval(refresh, pollMs);
  }

  if (!source) return;
  if (!window.EventSource) { poll(); return; }
  var failures = 0;
  var events = new EventSource(source);
  events.addEventListener("change", function () { failures = 0; refresh(); });
  events.addEventListener("tick", function () {
    failures = 0;
    if (body.hasAttribute("data-tick")) refresh();
  });
  events.addEventListener("open", function () { failures = 0; });
  events.onerror = function () {
    failures += 1;
    if (failures >= 3) { events.close(); poll(); }
  };
  window.addEventListener("pagehide", function () { events.close(); });
})();
