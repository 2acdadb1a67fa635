// flagsync dashboard: live panel over the environment's change stream, filter box,
// override countdowns. No dependencies; the server renders every piece of HTML.
(function () {
  "use strict";
  var panel = document.getElementById("panel");
  var filter = document.getElementById("filter");
  var shown = document.getElementById("shown");
  var live = document.getElementById("live");
  var env = panel.getAttribute("data-env");
  var loading = false;
  var again = false;

  function applyFilter() {
    var words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    var rows = panel.querySelectorAll("tr.flag");
    var visible = 0;
    rows.forEach(function (row) {
      var text = row.getAttribute("data-search");
      var ok = words.every(function (w) { return text.indexOf(w) !== -1; });
      row.hidden = !ok;
      if (ok) { visible += 1; }
    });
    shown.textContent = visible + " of " + rows.length + " flags shown";
  }

  function refresh() {
    if (loading) { again = true; return; }
    loading = true;
    fetch("/dashboard/panel?env=" + encodeURIComponent(env), { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.text(); })
      .then(function (html) { panel.innerHTML = html; applyFilter(); })
      .catch(function (e) { live.textContent = "live: refresh failed (" + e.message + ")"; })
      .finally(function () { loading = false; if (again) { again = false; refresh(); } });
  }

  function countdown() {
    panel.querySelectorAll("td[data-expires]").forEach(function (cell) {
      var at = cell.getAttribute("data-expires");
      if (!at) { return; }
      var left = Math.round((Date.parse(at) - Date.now()) / 1000);
      if (left <= 0) { cell.textContent = "expired"; return; }
      var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      cell.textContent = (h ? h + "h " + String(m).padStart(2, "0") + "m" :
        m + "m " + String(s).padStart(2, "0") + "s") + " left";
    });
  }

  function connect() {
    var stream = new EventSource("/ofrep/v1/events?env=" + encodeURIComponent(env));
    stream.onopen = function () { live.textContent = "live: connected"; };
    stream.onmessage = function () {
      live.textContent = "live: updated " + new Date().toLocaleTimeString();
      refresh();
    };
    stream.onerror = function () { live.textContent = "live: reconnecting…"; };
  }

  filter.addEventListener("input", applyFilter);
  applyFilter();
  connect();
  setInterval(countdown, 1000);
  setInterval(refresh, 30000);
})();
