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

  // A product's attributes (catalog/admin_attributes.py): "Add a row" copies the last row,
  // emptied, with the next number in its inputs' ids and accessible names. Without this
  // script the editor has blank rows to fill instead.
  document.querySelectorAll(".attributes-editor").forEach((editor) => {
    const add = editor.querySelector(".attributes-add");
    const body = editor.querySelector("tbody");
    add.hidden = false;
    add.addEventListener("click", () => {
      const last = body.lastElementChild;
      const row = last.cloneNode(true);
      const number = body.children.length + 1;
      const [nameInput, valueInput] = row.querySelectorAll("input");
      for (const [input, label] of [[nameInput, editor.dataset.nameLabel], [valueInput, editor.dataset.valueLabel]]) {
        input.value = "";
        input.id = input.id.replace(/-\d+$/, "-" + (number - 1));
        input.setAttribute("aria-label", label.replace("{number}", number));
      }
      body.appendChild(row);
      nameInput.focus();
    });
  });
})();
