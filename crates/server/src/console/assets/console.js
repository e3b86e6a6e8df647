// The operator console's script: served from the binary at /console/assets/console.js. The
// console works without it; it only asks before the actions marked with data-confirm, and
// reads a snapshot file into the upload field.
"use strict";
document.addEventListener("submit", function (e) {
  var form = e.target;
  var question = form && form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    e.preventDefault();
  }
});
// A snapshot file chosen on the audience page is read into the members field (with
// JavaScript off, paste the members instead).
(function () {
  var file = document.getElementById("snapshot-file");
  var field = document.getElementById("snapshot-members");
  if (!file || !field || !window.FileReader) return;
  file.addEventListener("change", function () {
    var f = file.files && file.files[0];
    if (!f) return;
    var reader = new FileReader();
    reader.onload = function () { field.value = String(reader.result); };
    reader.readAsText(f);
  });
})();
