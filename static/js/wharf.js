/* Small progressive enhancements; every page works without them. */
(function () {
  "use strict";

  // Disclosure menus (<details data-menu>): Escape closes and returns focus, a click outside closes.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    document.querySelectorAll("details[data-menu][open]").forEach(function (menu) {
      menu.removeAttribute("open");
      menu.querySelector("summary").focus();
    });
  });
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details[data-menu][open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });

  // Copy buttons: <button data-copy="text"> or data-copy-target="#id".
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy], [data-copy-target]");
    if (!button || !navigator.clipboard) return;
    var text = button.getAttribute("data-copy");
    if (text === null) {
      var target = document.querySelector(button.getAttribute("data-copy-target"));
      text = target ? (target.value || target.textContent).trim() : "";
    }
    navigator.clipboard.writeText(text).then(function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    });
  });

  // Show copy buttons only where the clipboard API exists.
  document.addEventListener("DOMContentLoaded", function () {
    if (!navigator.clipboard) return;
    document.querySelectorAll("[data-copy][hidden], [data-copy-target][hidden]").forEach(function (b) { b.hidden = false; });
  });

  // A stacked table's cells show their column's name on a phone (.table-stack in wharf.css, data-label):
  // the site's tables write it in the markup (an actions cell stays unlabelled on purpose); tables made
  // by allauth's elements (templates/allauth/elements/table.html, data-labels-from-header) cannot, so
  // their cells get it from the header row here.
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table.table-stack[data-labels-from-header]").forEach(function (table) {
      var heads = table.querySelectorAll("thead th");
      if (!heads.length) return;
      table.querySelectorAll("tbody tr").forEach(function (row) {
        Array.prototype.forEach.call(row.children, function (cell, index) {
          var name = heads[index] ? heads[index].textContent.trim() : "";
          if (name && cell.tagName === "TD" && !cell.hasAttribute("data-label")) cell.setAttribute("data-label", name);
        });
      });
    });
  });

  // A tab strip that scrolls sideways (phones wrap them, see .tabs in wharf.css) opens with its
  // current tab in view.
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".tabs [aria-current='page'], .sidenav [aria-current='page']").forEach(function (tab) {
      var strip = tab.closest(".tabs, .sidenav ul");
      if (!strip || strip.scrollWidth <= strip.clientWidth) return;
      var left = tab.getBoundingClientRect().left - strip.getBoundingClientRect().left + strip.scrollLeft;
      strip.scrollLeft = left - (strip.clientWidth - tab.offsetWidth) / 2;
    });
  });
})();

/* Client switches (templates/includes/client_commands.html) work without JavaScript; this keeps every
   switch of the page on the client last chosen, and remembers it for the next page. */
(function () {
  "use strict";
  var KEY = "wharf-client";
  function choose(name) {
    document.querySelectorAll("[data-clients] .clients-radio").forEach(function (radio) {
      if (radio.value === name) radio.checked = true;
    });
  }
  document.addEventListener("change", function (event) {
    var radio = event.target;
    if (!radio.classList || !radio.classList.contains("clients-radio")) return;
    choose(radio.value);
    try { localStorage.setItem(KEY, radio.value); } catch (e) { /* private mode: the page still switches */ }
  });
  document.addEventListener("DOMContentLoaded", function () {
    var saved = null;
    try { saved = localStorage.getItem(KEY); } catch (e) { saved = null; }
    if (saved) choose(saved);
  });
})();
