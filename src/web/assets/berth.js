// Berth's web view: keeps a live page current over Server-Sent Events and says when the
// stream is down (EventSource reconnects by itself; a refused stream is retried here).
// Fills the preview form from a chosen file. No library, nothing fetched from elsewhere.
(function () {
  "use strict";
  var conn = document.getElementById("conn");
  function say(state, text) {
    if (!conn) return;
    conn.dataset.state = state;
    conn.textContent = text;
  }

  // Replace the live part, keeping keyboard focus on the same link when it is still there.
  function show(html) {
    var root = document.getElementById("live");
    var focused = document.activeElement;
    var id = focused && root.contains(focused) ? focused.id : "";
    root.innerHTML = html;
    if (id) {
      var again = document.getElementById(id);
      if (again) again.focus();
    }
  }

  var url = document.body.dataset.live;
  if (url) {
    var source = null;
    var connect = function () {
      say("connecting", "Connecting…");
      source = new EventSource(url);
      source.addEventListener("open", function () { say("live", "Live"); });
      source.addEventListener("page", function (e) {
        show(e.data);
        say("live", "Live · revision " + e.lastEventId);
      });
      source.addEventListener("error", function () {
        if (source.readyState === EventSource.CLOSED) {
          say("down", "Disconnected: retrying…");
          setTimeout(connect, 2000);
        } else {
          say("down", "Disconnected: reconnecting…");
        }
      });
    };
    connect();
    // A page left for another must not keep its stream: browsers open at most six
    // connections to one host, and a cached page's stream would hold one of them.
    window.addEventListener("pagehide", function () { if (source) source.close(); });
    window.addEventListener("pageshow", function (e) { if (e.persisted) connect(); });
  }

  var file = document.getElementById("file");
  if (file) {
    file.addEventListener("change", function () {
      var f = file.files && file.files[0];
      if (!f) return;
      var id = document.getElementById("id");
      if (id && !id.value) id.value = f.name.replace(/\.[^.]*$/, "");
      var reader = new FileReader();
      reader.onload = function () { document.getElementById("spec").value = reader.result; };
      reader.readAsText(f);
    });
  }
})();
