/* Vitrine's small admin behaviours, wired here rather than in onclick attributes (the
   Content-Security-Policy runs no inline script). */
(function () {
  "use strict";
  // A button with data-confirm asks first; "Cancel" keeps the form from being sent.
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
  });

  // The new API key: a click selects it; "Copy" puts it on the clipboard.
  const key = document.getElementById("new-api-key");
  if (key) key.addEventListener("click", () => key.select());
  document.querySelectorAll("[data-copy-from]").forEach((button) => {
    button.addEventListener("click", () => {
      const source = document.getElementById(button.dataset.copyFrom);
      navigator.clipboard.writeText(source.value).then(() => { button.textContent = "Copied"; });
    });
  });
})();
