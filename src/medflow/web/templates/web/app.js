// Results as you type: fetch the server-rendered fragment and swap it in (no library).
(function () {
  var box = document.querySelector("[data-live-search]");
  if (!box) return;
  var target = document.getElementById(box.getAttribute("data-live-search"));
  var url = box.getAttribute("data-url");
  var timer = null, seq = 0;
  box.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      var mine = ++seq;
      fetch(url + "?q=" + encodeURIComponent(box.value), {credentials: "same-origin",
        headers: {"X-Requested-With": "fetch"}})
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) { if (mine === seq) target.innerHTML = html; })
        .catch(function () {});
    }, 200);
  });
})();
