/* What htmx leaves to the page. Every page works without this file; it only makes the
   htmx-enhanced pages behave as a full page load would.

   1. A part marked data-keep-in-view (a card in the preference centre) stays where it was on
      screen when htmx replaces it. htmx inserts the new content before removing the old, and
      Chromium's scroll anchoring then follows the old content down the page; htmx's own
      show:/scroll: modifiers can only put an element at the top or bottom of the screen.
   2. Focus stays on the control that was used (htmx puts it back by id). When that control
      is gone after the change, it goes to the first control of the same part, so it never
      falls back to <body> (a part without controls left offers its notice, tabindex=-1).
   3. A page that htmx swaps in whole (hx-boost, history) brings its language along:
      <html lang> follows the Content-Language of the answer, as it would on a full load. */
(function () {
  "use strict";

  var kept = null;

  document.addEventListener("htmx:beforeSwap", function (event) {
    var detail = event.detail;
    kept = null;
    // detail.elt is the swap target; the form that asked is in the request's config.
    var asked = detail.requestConfig && detail.requestConfig.elt;
    var part = detail.boosted || !asked ? null : asked.closest("[data-keep-in-view]");
    if (part && part.id) {
      var used = document.activeElement;
      kept = {
        id: part.id,
        top: part.getBoundingClientRect().top,
        used: used && part.contains(used) ? used.id : ""
      };
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var detail = event.detail;
    if (detail.boosted) {
      followLanguage(detail.xhr);
    }
    if (!kept) {
      return;
    }
    var place = kept;
    kept = null;
    var part = document.getElementById(place.id);
    if (!part) {
      return;
    }
    var used = place.used && document.getElementById(place.used);
    if (used) {
      used.focus({ preventScroll: true });
    } else if (place.used) {
      var next =
        part.querySelector("button, a[href], input:not([type=hidden]), select") ||
        part.querySelector("[tabindex='-1']");
      if (next) {
        next.focus({ preventScroll: true });
      }
    }
    window.scrollBy(0, part.getBoundingClientRect().top - place.top);
  });

  document.addEventListener("htmx:historyCacheMissLoad", function (event) {
    followLanguage(event.detail.xhr);
  });

  function followLanguage(xhr) {
    var language = xhr && xhr.getResponseHeader("Content-Language");
    if (language && /^[a-z]{2,3}(-[A-Za-z0-9]+)*$/.test(language)) {
      document.documentElement.lang = language;
    }
  }
})();
