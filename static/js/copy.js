/* Copy buttons (issue 20): one beside every code block (pre) and every one-time secret ([data-secret]).
   Added by script so that pages without JavaScript show no dead button; listeners only, no inline
   handlers, so it runs under the CSP. Clipboard access needs a secure context (HTTPS or localhost). */
(function () {
  "use strict";

  function copy(button, source) {
    var text = source.textContent.replace(/\s+$/, "") + "\n";
    if (source.hasAttribute("data-secret")) text = text.trim();
    navigator.clipboard.writeText(text).then(
      function () { say(button, "Copied"); },
      function () { say(button, "Select and copy"); }
    );
  }

  function say(button, words) {
    button.textContent = words;
    window.setTimeout(function () { button.textContent = "Copy"; }, 2000);
  }

  function decorate(source) {
    if (source.dataset.copyReady) return;
    source.dataset.copyReady = "1";
    var button = document.createElement("button");
    button.type = "button";
    button.className = "secondary copy-button";
    button.textContent = "Copy";
    button.setAttribute("aria-label", source.hasAttribute("data-secret") ? "Copy the secret" : "Copy the code");
    button.addEventListener("click", function () { copy(button, source); });
    var wrap = document.createElement("div");
    wrap.className = "copyable";
    source.parentNode.insertBefore(wrap, source);
    wrap.appendChild(source);
    wrap.appendChild(button);
  }

  function decorateAll(root) {
    if (!navigator.clipboard) return;
    root.querySelectorAll("pre, [data-secret]").forEach(decorate);
  }

  document.addEventListener("DOMContentLoaded", function () { decorateAll(document); });
  // Fragments swapped in by htmx get their buttons too.
  document.addEventListener("htmx:afterSwap", function (event) { decorateAll(event.target); });
})();
