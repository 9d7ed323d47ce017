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

// After a form, the page opens at the section that changed (#vitals, #notes...): show the
// confirmation there rather than at the top, out of sight. Without script it stays at the top.
(function () {
  var box = document.querySelector(".messages");
  var target = location.hash && document.getElementById(location.hash.slice(1));
  if (!box || !target) return;
  var heading = target.querySelector("h2");
  target.insertBefore(box, heading ? heading.nextSibling : target.firstChild);
  target.scrollIntoView();
})();
