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

/* The colour on the library's settings page: a picker beside the text field (only with
   JavaScript, so hidden in the markup), and the preview and its contrast figure follow what
   is typed or picked, before anything is saved. The figure is WCAG's contrast ratio of white
   text, computed as libraries.contrast_with_white does on the server. */
(function () {
  "use strict";

  var HEX = /^#[0-9a-fA-F]{6}$/;

  function contrastWithWhite(hex) {
    var channels = [1, 3, 5].map(function (i) {
      var value = parseInt(hex.slice(i, i + 2), 16) / 255;
      return value <= 0.03928 ? value / 12.92 : Math.pow((value + 0.055) / 1.055, 2.4);
    });
    var luminance = 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2];
    return 1.05 / (luminance + 0.05);
  }

  function show(hex) {
    var preview = document.getElementById("colour-preview");
    if (!preview || !HEX.test(hex)) {
      return;
    }
    var ratio = contrastWithWhite(hex);
    preview.style.setProperty("--brand", hex);
    var figure = preview.querySelector(".contrast-figure");
    var verdict = preview.querySelector(".contrast-verdict");
    var language = document.documentElement.lang || "nl";
    figure.textContent =
      ratio.toLocaleString(language, { minimumFractionDigits: 1, maximumFractionDigits: 1 }) +
      " : 1";
    verdict.textContent = ratio >= 4.5 ? preview.dataset.pass : preview.dataset.fail;
    preview.classList.toggle("too-light", ratio < 4.5);
  }

  function setUp() {
    var picker = document.getElementById("colour-picker");
    var field = document.getElementById("colour");
    if (picker && field) {
      picker.hidden = false;
      if (HEX.test(field.value.trim())) {
        picker.value = field.value.trim().toLowerCase();
        show(picker.value);
      }
    }
  }

  document.addEventListener("input", function (event) {
    var target = event.target;
    if (target.id === "colour") {
      var typed = target.value.trim();
      if (HEX.test(typed)) {
        document.getElementById("colour-picker").value = typed.toLowerCase();
        show(typed);
      }
    } else if (target.id === "colour-picker") {
      document.getElementById("colour").value = target.value;
      show(target.value);
    }
  });
  document.addEventListener("DOMContentLoaded", setUp);
  document.addEventListener("htmx:load", setUp);
})();
