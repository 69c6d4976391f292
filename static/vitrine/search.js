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
  let shownSearch = location.pathname + location.search; // the search the results are of

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

  // The filters start folded (on wide screens they show anyway); after a swap they stay as
  // the shopper left them, and the language switch returns to the page now shown.
  function afterSwap(wasOpen) {
    const panel = document.querySelector(".filters-panel");
    if (panel && phone.matches) panel.open = Boolean(wasOpen);
    const next = document.querySelector(".language-switch input[name=next]");
    if (next) next.value = location.pathname + location.search;
    document.querySelectorAll(".crop-open").forEach((button) => { button.hidden = false; });
    const skip = document.querySelector(".skip-to-results");
    if (skip) skip.hidden = !document.getElementById("results-list");
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
        shownSearch = location.pathname + location.search;
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
  // An input method (pinyin, zhuyin, kana…) composes a word in several input events; only
  // the characters it commits are searched. A timer started by the previous word's
  // compositionend is cancelled as soon as the next word starts composing.
  let composing = false;
  input.addEventListener("compositionstart", () => {
    composing = true;
    clearTimeout(timer);
  });
  input.addEventListener("compositionend", () => {
    composing = false;
    searchSoon();
  });
  input.addEventListener("input", (event) => {
    if (event.isComposing || composing) {
      clearTimeout(timer);
      return;
    }
    searchSoon();
  });
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
    input.placeholder = params.get("photo") ? input.dataset.placeholderPhoto : input.dataset.placeholderWords;
  }

  // Back and Forward between searches; a jump to an anchor on this page (skip links) also
  // fires popstate, and is not a new search.
  window.addEventListener("popstate", () => {
    if (location.pathname + location.search === shownSearch) return;
    syncCarried(location.href);
    input.value = new URL(location.href).searchParams.get("q") || "";
    load(location.href, null);
  });

  // A box drawn over a photo (pointer: drag; keyboard: arrows move it, Shift+arrows resize
  // it). Its value is x,y,width,height as fractions of the photo, or "" for the whole photo.
  function cropper(frame, onChange) {
    const image = frame.querySelector("img");
    const box = frame.querySelector(".crop-box");
    let rect = null; // [x, y, w, h] in fractions
    let start = null;
    const clamp = (v) => Math.min(1, Math.max(0, v));
    function point(event) {
      const bounds = image.getBoundingClientRect();
      return [clamp((event.clientX - bounds.left) / bounds.width), clamp((event.clientY - bounds.top) / bounds.height)];
    }
    function draw() {
      box.hidden = !rect;
      if (rect) {
        box.style.left = rect[0] * 100 + "%";
        box.style.top = rect[1] * 100 + "%";
        box.style.width = rect[2] * 100 + "%";
        box.style.height = rect[3] * 100 + "%";
        const pct = rect.map((v) => Math.round(v * 100));
        box.title = pct[0] + "%, " + pct[1] + "% · " + pct[2] + "% × " + pct[3] + "%";
      }
      if (onChange) onChange(value());
    }
    function value() {
      if (!rect || rect[2] < 0.02 || rect[3] < 0.02) return "";
      return rect.map((v) => v.toFixed(4).replace(/0+$/, "").replace(/\.$/, "")).join(",");
    }
    frame.addEventListener("pointerdown", (event) => {
      if (event.button !== 0 || event.target === box) return;
      event.preventDefault();
      start = point(event);
      rect = [start[0], start[1], 0, 0];
      frame.setPointerCapture(event.pointerId);
      draw();
    });
    frame.addEventListener("pointermove", (event) => {
      if (!start) return;
      const [x, y] = point(event);
      rect = [Math.min(x, start[0]), Math.min(y, start[1]), Math.abs(x - start[0]), Math.abs(y - start[1])];
      draw();
    });
    const finish = () => {
      if (!start) return;
      start = null;
      if (!value()) rect = null;
      draw();
      if (rect) box.focus();
    };
    frame.addEventListener("pointerup", finish);
    frame.addEventListener("pointercancel", finish);
    box.addEventListener("keydown", (event) => {
      const step = 0.02;
      const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
      const move = moves[event.key];
      if (!move || !rect) return;
      event.preventDefault();
      if (event.shiftKey) {
        rect[2] = Math.min(1 - rect[0], Math.max(0.05, rect[2] + move[0]));
        rect[3] = Math.min(1 - rect[1], Math.max(0.05, rect[3] + move[1]));
      } else {
        rect[0] = Math.min(1 - rect[2], Math.max(0, rect[0] + move[0]));
        rect[1] = Math.min(1 - rect[3], Math.max(0, rect[1] + move[1]));
      }
      draw();
    });
    return {
      value,
      set(text) {
        const parts = String(text || "").split(",").map(Number);
        rect = parts.length === 4 && parts.every((v) => v >= 0 && v <= 1) ? parts : null;
        draw();
      },
      // A keyboard start: a box over the middle of the photo, to move and resize.
      centre() {
        if (!rect) rect = [0.25, 0.25, 0.5, 0.5];
        draw();
        box.focus();
      },
    };
  }

  // The results page's photo: "Search part of the photo" opens the cropper on it.
  let resultsCropper = null;
  document.addEventListener("click", (event) => {
    const open = event.target.closest(".crop-open");
    const panel = document.getElementById("crop-panel");
    if (open && panel) {
      panel.hidden = false;
      resultsCropper = cropper(panel.querySelector(".crop-frame"));
      resultsCropper.set(open.dataset.crop);
      const image = panel.querySelector("img");
      if (image.complete) resultsCropper.centre();
      else image.addEventListener("load", () => resultsCropper.centre(), { once: true });
      return;
    }
    if (event.target.closest(".crop-cancel") && panel) {
      panel.hidden = true;
      return;
    }
    if (event.target.closest(".crop-search") && panel && resultsCropper) {
      const url = new URL(location.href);
      const crop = resultsCropper.value();
      if (crop) url.searchParams.set("crop", crop);
      else url.searchParams.delete("crop");
      url.searchParams.delete("page");
      const target = url.pathname + url.search;
      syncCarried(target);
      load(target, "push");
    }
  });

  // Filters on a phone: "Show N results" folds the panel and goes to the results.
  document.addEventListener("click", (event) => {
    const show = event.target.closest(".show-results");
    if (!show) return;
    event.preventDefault();
    const panel = show.closest("details");
    if (panel) panel.open = false;
    const status = document.getElementById("results-status");
    if (status) {
      status.scrollIntoView({ block: "start" });
      status.focus();
    }
  });

  // Like / Not this are links shown as toggle buttons: Space presses them too.
  document.addEventListener("keydown", (event) => {
    const button = event.target.closest && event.target.closest("a[role=button]");
    if (button && event.key === " ") {
      event.preventDefault();
      button.click();
    }
  });

  // The price range is checked here, before anything is asked of the server: a range the
  // wrong way round or a price that is not a number says so beside the fields.
  document.addEventListener("submit", (event) => {
    const priceForm = event.target.closest(".price-form");
    if (!priceForm) return;
    event.preventDefault();
    const low = priceForm.querySelector("[name=price_min]");
    const high = priceForm.querySelector("[name=price_max]");
    const error = priceForm.querySelector(".field-error");
    const bad = [low, high].filter((field) => !field.checkValidity());
    let message = "";
    if (bad.length) message = priceForm.dataset.invalid;
    else if (low.value && high.value && Number(low.value) > Number(high.value)) message = priceForm.dataset.inverted;
    [low, high].forEach((field) => field.removeAttribute("aria-invalid"));
    error.textContent = message;
    if (message) {
      (bad.length ? bad : [low, high]).forEach((field) => field.setAttribute("aria-invalid", "true"));
      (bad[0] || low).focus();
      return;
    }
    const params = new URLSearchParams();
    for (const [name, value] of new FormData(priceForm)) {
      if (String(value).trim()) params.append(name, String(value).trim());
    }
    const url = form.getAttribute("action") + "?" + params.toString();
    syncCarried(url);
    load(url, "push");
  });

  // Photo search: choose, take, drop or paste a photo; see it, mark the part to find and add
  // words if wanted; then the form posts and the server redirects to the results.
  if (photoForm) {
    const status = photoForm.querySelector(".upload-status");
    const fileInput = document.getElementById("id_image");
    const cameraInput = document.getElementById("id_camera");
    const preview = document.getElementById("photo-preview");
    const previewImage = document.getElementById("photo-preview-image");
    const cropField = document.getElementById("id_crop");
    const words = document.getElementById("id_photo_words");
    const maxBytes = Number(photoForm.dataset.maxBytes || 0);
    const uploadCropper = cropper(document.getElementById("crop-frame"), (value) => { cropField.value = value; });
    let previewUrl = null;

    function refuse(message) {
      if (status) status.textContent = message;
      fileInput.value = "";
      cameraInput.value = "";
      preview.hidden = true;
    }
    function show(file) {
      if (!file) return;
      if (file.type && !file.type.startsWith("image/")) return refuse(photoForm.dataset.notImage);
      if (maxBytes && file.size > maxBytes) return refuse(photoForm.dataset.tooLarge);
      if (previewUrl) URL.revokeObjectURL(previewUrl);
      previewUrl = URL.createObjectURL(file);
      previewImage.src = previewUrl;
      preview.hidden = false;
      uploadCropper.set("");
      if (status) status.textContent = "";
      if (photoPanel) photoPanel.open = true;
      photoForm.scrollIntoView({ block: "nearest" });
      words.focus();
    }
    function usePhoto(file) {
      if (!file) return;
      const transfer = new DataTransfer();
      transfer.items.add(file);
      fileInput.files = transfer.files;
      cameraInput.value = "";
      document.getElementById("id_image_url").value = "";
      show(file);
    }
    fileInput.addEventListener("change", () => {
      cameraInput.value = "";
      show(fileInput.files[0]);
    });
    cameraInput.addEventListener("change", () => {
      fileInput.value = "";
      show(cameraInput.files[0]);
    });
    document.getElementById("crop-reset").addEventListener("click", () => uploadCropper.set(""));
    document.getElementById("crop-start").addEventListener("click", () => uploadCropper.centre());
    photoForm.addEventListener("submit", () => {
      if (status) status.textContent = fileInput.files.length || cameraInput.files.length ? photoForm.dataset.uploading : photoForm.dataset.searching;
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

  // "Imagine it": the form posts as it is (no JavaScript needed); drawing takes seconds, so
  // say so and keep a second click from asking for a second picture.
  const imagineForm = document.getElementById("imagine-form");
  if (imagineForm) {
    const status = imagineForm.querySelector(".upload-status");
    const button = imagineForm.querySelector("button[type=submit]");
    imagineForm.addEventListener("submit", (event) => {
      if (imagineForm.getAttribute("aria-busy") === "true") { event.preventDefault(); return; }
      imagineForm.setAttribute("aria-busy", "true");
      button.setAttribute("aria-disabled", "true");
      if (status) status.textContent = imagineForm.dataset.drawing;
      document.body.classList.add("loading");
    });
    // Back to this page from the results (the page cache): ready for another description.
    window.addEventListener("pageshow", () => {
      imagineForm.removeAttribute("aria-busy");
      button.removeAttribute("aria-disabled");
      if (status) status.textContent = "";
      document.body.classList.remove("loading");
    });
  }

  afterSwap(false);
})();
