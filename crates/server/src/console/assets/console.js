// The operator console's script: served from the binary at /console/assets/console.js. The
// console works without it; it only asks before the actions that change data marked with
// data-confirm, and reloads the pages that ask for it (data-refresh, seconds) while the
// operator is not typing in a field.
"use strict";
document.addEventListener("submit", function (e) {
  var form = e.target;
  var question = form && form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    e.preventDefault();
  }
});
(function () {
  var main = document.querySelector("main[data-refresh]");
  if (!main) return;
  var seconds = parseInt(main.getAttribute("data-refresh"), 10);
  if (!(seconds >= 5)) return;
  setInterval(function () {
    var a = document.activeElement;
    if (a && (a.tagName === "INPUT" || a.tagName === "TEXTAREA" || a.tagName === "SELECT")) return;
    window.location.reload();
  }, seconds * 1000);
})();
