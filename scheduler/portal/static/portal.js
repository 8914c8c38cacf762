// Pages refresh their data while their tab is visible, and only then: a hidden tab asks
// the master for nothing. htmx raises htmx:beforeRequest before each of its requests.
document.addEventListener("htmx:beforeRequest", function (event) {
  var source = event.detail.elt;
  if (document.hidden && source && source.dataset && source.dataset.refresh === "visible") {
    event.preventDefault();
  }
});
// A tab that becomes visible again asks at once instead of waiting for the next period.
document.addEventListener("visibilitychange", function () {
  if (!document.hidden && window.htmx) {
    document.querySelectorAll("[data-refresh=visible]").forEach(function (element) {
      window.htmx.trigger(element, "refresh");
    });
  }
});
