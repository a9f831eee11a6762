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

  function refresh() {
    // Never replace a region while the operator is typing into a form inside it.
    var active = document.activeElement;
    if (active && active.closest && active.closest("[data-keep]")) return;
    htmx.trigger(body, "refresh");
  }

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
