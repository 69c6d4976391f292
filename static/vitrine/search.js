/* Progressive enhancement of the search page: search as you type, photo by drag-and-drop
   or paste, results swapped in place with the URL kept current. Without this file every
   control still works as a plain link or form. */
(function () {
  "use strict";
  const form = document.getElementById("search-form");
  if (!form) return;
  const input = document.getElementById("id_q");
  const photoForm = document.getElementById("photo-form");
  const photoPanel = document.getElementById("photo-panel");
  const phone = window.matchMedia("(max-width: 799px)");
  const DEBOUNCE_MS = 300;
  let timer = null;
  let controller = null;

  function region() { return document.getElementById("results"); }

  function formUrl() {
    const params = new URLSearchParams();
    for (const [name, value] of new FormData(form)) {
      if (String(value).trim()) params.append(name, String(value).trim());
    }
    const query = params.toString();
    return form.getAttribute("action") + (query ? "?" + query : "");
  }


  // Screen readers hear the new count (the live region stays while results are swapped).
  function announce() {
    const live = document.getElementById("live-status");
    const status = document.getElementById("results-status");
    const error = document.querySelector("#results [role=alert]");
    if (live) live.textContent = error ? error.textContent.trim() : status ? status.textContent.trim() : "";
  }

  // Phones start with the filters folded; after that they stay as the shopper left them.
  function afterSwap(wasOpen) {
    const panel = document.querySelector(".filters-panel");
    if (panel && phone.matches) panel.open = Boolean(wasOpen);
  }

  function load(url, mode) {
    if (controller) controller.abort();
    controller = new AbortController();
    const old = region();
    const hadFocus = old && old.contains(document.activeElement);
    const openPanel = document.querySelector(".filters-panel");
    const wasOpen = openPanel ? openPanel.open : false;
    old.setAttribute("aria-busy", "true");
    document.body.classList.add("loading");
    return fetch(url, { headers: { "X-Vitrine-Partial": "1" }, signal: controller.signal })
      .then((response) => response.text())
      .then((html) => {
        const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("results");
        if (!fresh) throw new Error("no results in the response");
        region().replaceWith(fresh);
        if (mode === "push") history.pushState({ vitrine: true }, "", url);
        else if (mode === "replace") history.replaceState({ vitrine: true }, "", url);
        if (fresh.dataset.title) document.title = fresh.dataset.title;
        afterSwap(wasOpen);
        announce();
        if (hadFocus) {
          const status = document.getElementById("results-status");
          if (status) status.focus();
        }
      })
      .catch((error) => {
        if (error.name === "AbortError") return;
        window.location.href = url; // let the browser show whatever the server says
      })
      .finally(() => {
        document.body.classList.remove("loading");
        const current = region();
        if (current) current.removeAttribute("aria-busy");
      });
  }

  // Search as you type (debounced); Enter searches at once; Escape clears.
  function searchSoon() {
    clearTimeout(timer);
    timer = setTimeout(() => load(formUrl(), "replace"), DEBOUNCE_MS);
  }
  input.addEventListener("input", (event) => {
    if (!event.isComposing) searchSoon(); // an IME (pinyin…) still composing: wait for the characters
  });
  input.addEventListener("compositionend", searchSoon);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(timer);
    load(formUrl(), "push");
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      clearTimeout(timer);
      input.value = "";
      syncCarried(form.getAttribute("action")); // a clear start: no photo, filters or sort
      load(form.getAttribute("action"), "push");
    }
  });

  // Links inside the results (facets, chips, sort, pages, like / not this, more like this).
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[href]");
    if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    const href = link.getAttribute("href");
    if (!href.startsWith("?") || !link.closest("#results")) return;
    event.preventDefault();
    const url = form.getAttribute("action") + (href === "?" ? "" : href);
    syncCarried(url);
    input.value = new URL(url, location.href).searchParams.get("q") || "";
    load(url, "push");
  });

  // The text form carries the photo, filters and sort: keep its hidden fields in step.
  function syncCarried(url) {
    const params = new URL(url, location.href).searchParams;
    form.querySelectorAll("input[type=hidden]").forEach((field) => field.remove());
    const dropped = new Set(["q", "page", "plus", "minus", "similar", "loose"]);
    for (const [name, value] of params) {
      if (dropped.has(name)) continue;
      const field = document.createElement("input");
      field.type = "hidden";
      field.name = name;
      field.value = value;
      form.appendChild(field);
    }
    input.placeholder = params.get("photo") ? "Add words to your photo, e.g. in red" : "Describe it: blue striped mug, 红色条纹杯子…";
  }

  window.addEventListener("popstate", () => {
    syncCarried(location.href);
    input.value = new URL(location.href).searchParams.get("q") || "";
    load(location.href, null);
  });

  // Photo search: choose, take, drop or paste; the form posts and the server redirects.
  if (photoForm) {
    const status = photoForm.querySelector(".upload-status");
    const fileInput = document.getElementById("id_image");
    function submitPhoto(message) {
      if (status) status.textContent = message || "Uploading your photo…";
      document.body.classList.add("loading");
      photoForm.querySelector(".photo-submit").disabled = true;
      photoForm.submit();
    }
    function usePhoto(file) {
      if (!file) return;
      const transfer = new DataTransfer();
      transfer.items.add(file);
      fileInput.files = transfer.files;
      document.getElementById("id_camera").value = "";
      document.getElementById("id_image_url").value = "";
      if (photoPanel) photoPanel.open = true;
      submitPhoto("Uploading " + (file.name || "your photo") + "…");
    }
    ["id_image", "id_camera"].forEach((id) => {
      document.getElementById(id).addEventListener("change", (event) => {
        if (event.target.files.length) submitPhoto();
      });
    });
    photoForm.addEventListener("submit", () => {
      if (status) status.textContent = "Searching…";
      document.body.classList.add("loading");
    });
    let depth = 0;
    const hasFiles = (event) => event.dataTransfer && Array.from(event.dataTransfer.types).includes("Files");
    document.addEventListener("dragenter", (event) => {
      if (!hasFiles(event)) return;
      depth += 1;
      document.body.classList.add("dragging");
    });
    document.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) document.body.classList.remove("dragging");
    });
    document.addEventListener("dragover", (event) => {
      if (hasFiles(event)) event.preventDefault();
    });
    document.addEventListener("drop", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth = 0;
      document.body.classList.remove("dragging");
      usePhoto(event.dataTransfer.files[0]);
    });
    document.addEventListener("paste", (event) => {
      const files = event.clipboardData ? Array.from(event.clipboardData.files) : [];
      const image = files.find((file) => file.type.startsWith("image/"));
      if (!image) return; // pasting text into a field stays normal
      event.preventDefault();
      usePhoto(image);
    });
  }

  afterSwap(false);
})();
