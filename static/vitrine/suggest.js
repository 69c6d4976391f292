/* Suggestions under the search box: popular searches and the catalog's own words, as a
   WAI-ARIA 1.2 combobox with a listbox popup (https://www.w3.org/WAI/ARIA/apg/patterns/combobox/).
   Arrow keys move through the list (the box keeps what was typed), Enter or a click
   chooses (the box takes the suggestion and searches), Escape closes the list, Tab leaves.
   search.js keeps searching as the shopper types; this file only adds the list. Without
   it the box is a plain search field. */
(function () {
  "use strict";
  const form = document.getElementById("search-form");
  const input = document.getElementById("id_q");
  const list = document.getElementById("search-suggestions");
  const status = document.getElementById("suggestions-status");
  if (!form || !input || !list || !status) return;
  const DEBOUNCE_MS = 150; // shorter than search.js's 300 ms: the list shows before the results
  const MIN_LATIN_CHARS = 2; // as the server: one Latin letter asks nothing
  const CJK = /[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]/;
  let timer = null;
  let controller = null;
  let composing = false;
  let active = -1; // the highlighted option, -1: none
  let shownFor = null; // the text the list shown is for

  // The combobox roles are added here, so that the page without this file claims nothing.
  input.setAttribute("role", "combobox");
  input.setAttribute("aria-autocomplete", "list");
  input.setAttribute("aria-expanded", "false");
  input.setAttribute("aria-controls", [list.id, input.getAttribute("aria-controls")].filter(Boolean).join(" "));
  input.setAttribute("aria-haspopup", "listbox");

  function options() { return Array.from(list.querySelectorAll("[role=option]")); }
  function isOpen() { return !list.hidden; }

  function close() {
    clearTimeout(timer);
    if (controller) controller.abort();
    controller = null;
    list.hidden = true;
    list.replaceChildren();
    active = -1;
    shownFor = null;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
  }

  function highlight(index) {
    const all = options();
    active = index;
    all.forEach((option, i) => option.setAttribute("aria-selected", String(i === index)));
    if (index >= 0 && all[index]) {
      input.setAttribute("aria-activedescendant", all[index].id);
      all[index].scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function announce(count) {
    status.textContent = count === 1 ? status.dataset.one : status.dataset.many.replace("%(count)s", String(count));
  }

  // The typed text shown in bold where the suggestion starts with it.
  function optionFor(suggestion, index, typed) {
    const option = document.createElement("li");
    option.id = list.id + "-" + index;
    option.className = "suggestion";
    option.setAttribute("role", "option");
    option.setAttribute("aria-selected", "false");
    option.dataset.text = suggestion.text;
    const text = document.createElement("span");
    text.className = "suggestion-text";
    if (suggestion.text.toLowerCase().startsWith(typed.toLowerCase())) {
      const strong = document.createElement("strong");
      strong.textContent = suggestion.text.slice(0, typed.length);
      text.append(strong, suggestion.text.slice(typed.length));
    } else {
      text.textContent = suggestion.text;
    }
    option.append(text);
    const label = list.dataset["kind" + suggestion.kind.charAt(0).toUpperCase() + suggestion.kind.slice(1)];
    if (label) {
      const kind = document.createElement("span");
      kind.className = "suggestion-kind";
      kind.textContent = label;
      option.append(" ", kind);
    }
    return option;
  }

  function show(suggestions, typed) {
    if (!suggestions.length) {
      close();
      return;
    }
    list.replaceChildren(...suggestions.map((suggestion, i) => optionFor(suggestion, i, typed)));
    list.hidden = false;
    active = -1;
    shownFor = typed;
    input.setAttribute("aria-expanded", "true");
    input.removeAttribute("aria-activedescendant");
    announce(suggestions.length);
  }

  function worthAsking(typed) {
    if (form.querySelector("input[type=hidden][name=photo]")) return false; // words added to a photo
    return typed.length >= MIN_LATIN_CHARS || CJK.test(typed);
  }

  function fetchSoon() {
    clearTimeout(timer);
    const typed = input.value.trim();
    if (!worthAsking(typed)) {
      close();
      return;
    }
    if (typed === shownFor) return;
    timer = setTimeout(() => {
      if (controller) controller.abort();
      controller = new AbortController();
      fetch(list.dataset.url + "?q=" + encodeURIComponent(typed), {
        headers: { Accept: "application/json" },
        signal: controller.signal,
      })
        .then((response) => (response.ok ? response.json() : { suggestions: [] }))
        .then((data) => {
          // An answer for words no longer in the box, or for a box the shopper left, is dropped.
          if (input.value.trim() !== typed || document.activeElement !== input || composing) return;
          show(data.suggestions || [], typed);
        })
        .catch(() => {}); // no suggestions is a working search box
    }, DEBOUNCE_MS);
  }

  function choose(option) {
    input.value = option.dataset.text;
    close();
    form.requestSubmit(); // search.js searches in place (or the browser submits the form)
  }

  // An input method composes a word in several steps: nothing is asked until it commits.
  input.addEventListener("compositionstart", () => {
    composing = true;
    close();
  });
  input.addEventListener("compositionend", () => {
    composing = false;
    fetchSoon();
  });
  input.addEventListener("input", (event) => {
    if (event.isComposing || composing) return;
    fetchSoon();
  });

  // Listened to on the form while capturing, so that it comes before search.js's keys on
  // the box: Escape closes an open list (a second Escape clears the box, as before).
  form.addEventListener(
    "keydown",
    (event) => {
      if (event.target !== input || event.isComposing || composing || event.keyCode === 229) return;
      const all = options();
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        if (!isOpen()) {
          if (event.altKey || event.key === "ArrowDown") fetchSoon();
          return;
        }
        event.preventDefault();
        const step = event.key === "ArrowDown" ? 1 : -1;
        // Past the last option (or above the first) the box itself: what was typed.
        let next = active + step;
        if (next >= all.length) next = -1;
        else if (next < -1) next = all.length - 1;
        highlight(next);
      } else if (event.key === "Enter" && isOpen() && active >= 0) {
        event.preventDefault();
        event.stopPropagation();
        choose(all[active]);
      } else if (event.key === "Escape" && isOpen()) {
        event.preventDefault();
        event.stopPropagation();
        close();
      } else if (event.key === "Tab") {
        close();
      }
    },
    true,
  );

  // A press on an option keeps the focus in the box (no blur that would close the list);
  // a touch sends its mousedown just before its click.
  list.addEventListener("mousedown", (event) => {
    if (event.target.closest("[role=option]")) event.preventDefault();
  });
  list.addEventListener("click", (event) => {
    const option = event.target.closest("[role=option]");
    if (option) choose(option);
  });
  input.addEventListener("blur", close);
  form.addEventListener("submit", close, true);
})();
