/* The admin's bulk upload: one request per file (three at a time), a row per file that
   goes uploading → pending → indexed (or failed, with the reason), states polled from
   the server; retry and remove for failed rows. */
(function () {
  "use strict";
  const form = document.getElementById("bulk-form");
  if (!form) return;
  const table = document.getElementById("bulk-items");
  const body = table.querySelector("tbody");
  const summary = document.getElementById("bulk-summary");
  const drop = document.getElementById("bulk-drop");
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const PARALLEL = 3;
  let itemsUrl = table.dataset.itemsUrl;
  let queue = [];
  let active = 0;
  let uploadId = null;
  let pollTimer = null;

  function cell(row, name) { return row.querySelector("td." + name); }

  function render(row, item) {
    row.dataset.itemId = item.id;
    row.dataset.state = item.state;
    cell(row, "name").textContent = item.name;
    const product = cell(row, "product");
    product.textContent = "";
    if (item.product_url) {
      const link = document.createElement("a");
      link.href = item.product_url;
      link.textContent = item.product;
      product.appendChild(link);
    } else product.textContent = item.product || "";
    const photo = cell(row, "photo");
    if (item.thumbnail && item.state === "indexed" && !photo.querySelector("img")) {
      const img = document.createElement("img");
      img.src = item.thumbnail;
      img.alt = "";
      photo.appendChild(img);
    }
    cell(row, "state").textContent = item.state;
    cell(row, "reason").textContent = [item.reason, item.note].filter(Boolean).join(" ");
    const actions = cell(row, "actions");
    actions.textContent = "";
    if (item.state === "failed") {
      if (item.image_id) actions.appendChild(button("Retry", () => act(row, "retry")));
      actions.appendChild(button("Remove", () => act(row, "remove")));
    }
  }

  function button(label, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "button";
    b.textContent = label;
    b.addEventListener("click", onClick);
    return b;
  }

  function newRow(name) {
    const row = document.createElement("tr");
    row.innerHTML = '<td class="name"></td><td class="product"></td><td class="photo"></td><td class="state"></td><td class="reason"></td><td class="actions"></td>';
    cell(row, "name").textContent = name;
    cell(row, "state").textContent = "waiting";
    row.dataset.state = "waiting";
    body.prepend(row);
    return row;
  }

  function summarise() {
    const counts = {};
    body.querySelectorAll("tr").forEach((row) => { counts[row.dataset.state] = (counts[row.dataset.state] || 0) + 1; });
    summary.textContent = Object.entries(counts).map(([state, n]) => n + " " + state).join(" · ");
  }

  function post(url, data) {
    return fetch(url, { method: "POST", body: data, headers: { "X-CSRFToken": csrf }, credentials: "same-origin" });
  }

  // XMLHttpRequest, not fetch: it reports upload progress.
  function send(url, data, onProgress) {
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open("POST", url);
      request.setRequestHeader("X-CSRFToken", csrf);
      request.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) onProgress(Math.round((100 * event.loaded) / event.total));
      });
      request.addEventListener("load", () => {
        let answer = {};
        try { answer = JSON.parse(request.responseText); } catch (error) { answer = { error: request.statusText }; }
        resolve({ response: { ok: request.status >= 200 && request.status < 300, status: request.status }, answer });
      });
      request.addEventListener("error", () => reject(new Error("the connection failed")));
      request.send(data);
    });
  }

  async function start() {
    if (uploadId) return uploadId;
    const fields = new FormData(form);
    fields.delete("files");
    const response = await post(form.dataset.startUrl, fields);
    const answer = await response.json();
    if (!response.ok) {
      const errors = answer.errors || {};
      throw new Error(Object.values(errors).flat().map((e) => e.message).join(" ") || "The upload could not start.");
    }
    uploadId = answer.upload;
    itemsUrl = form.dataset.startUrl.replace(/start$/, uploadId + "/items");
    table.dataset.itemsUrl = itemsUrl;
    body.textContent = "";
    return uploadId;
  }

  function enqueue(files) {
    if (!files.length) return;
    start().then(() => {
      for (const [file, path] of files) queue.push({ file, path, row: newRow(path || file.name) });
      summarise();
      pump();
    }).catch((error) => { summary.textContent = error.message; });
  }

  function pump() {
    while (active < PARALLEL && queue.length) {
      const job = queue.shift();
      active += 1;
      job.row.dataset.state = "uploading";
      cell(job.row, "state").textContent = "uploading";
      const data = new FormData();
      data.append("file", job.file);
      if (job.path) data.append("path", job.path);
      send(form.dataset.startUrl.replace(/start$/, uploadId + "/files"), data, (percent) => {
        cell(job.row, "state").textContent = percent < 100 ? "uploading " + percent + " %" : "processing";
      })
        .then(({ response, answer }) => {
          if (!response.ok) throw new Error(answer.error || "HTTP " + response.status);
          const [first, ...rest] = answer.items;
          render(job.row, first);
          for (const item of rest) render(newRow(item.name), item); // a zip's other files
        })
        .catch((error) => {
          job.row.dataset.state = "failed";
          cell(job.row, "state").textContent = "failed";
          cell(job.row, "reason").textContent = "The upload failed: " + error.message;
        })
        .finally(() => { active -= 1; summarise(); pump(); poll(); });
    }
  }

  function poll() {
    clearTimeout(pollTimer);
    const waiting = body.querySelector("tr[data-state=pending], tr[data-state=uploading], tr[data-state=waiting]");
    if (!waiting || !itemsUrl) return;
    pollTimer = setTimeout(() => {
      fetch(itemsUrl, { credentials: "same-origin" })
        .then((response) => response.json())
        .then((answer) => {
          for (const item of answer.items) {
            const row = body.querySelector('tr[data-item-id="' + item.id + '"]');
            if (row && row.dataset.state !== item.state) render(row, item);
          }
          summarise();
        })
        .finally(poll);
    }, 1000);
  }

  function act(row, action) {
    const url = table.dataset.actionUrl.replace("/0/ACTION", "/" + row.dataset.itemId + "/" + action);
    post(url, new FormData()).then((response) => response.json()).then((answer) => {
      if (answer.removed) row.remove();
      else if (answer.item) render(row, answer.item);
      else if (answer.error) cell(row, "reason").textContent = answer.error;
      summarise();
      poll();
    });
  }

  // Files named SKU_1.jpg, SKU_2.jpg (or sku-2.png): the product id, then _ or - and a photo
  // number of one or two digits. Chosen files that all follow it, each product's numbers
  // starting at 0 or 1 (so that IMG_1234.jpg from a camera, or MUG-12.jpg and MUG-13.jpg,
  // two products, do not), are grouped by name: the page says so and asks before uploading.
  // The server's own rule for grouping by name is catalog/bulk.py's NUMBERED.
  const SKU_NUMBERED = /^(.+)[_-](\d{1,2})$/;
  function skuGroups(names) {
    const groups = new Map();
    for (const name of names) {
      const base = name.split("/").pop();
      const stem = base.replace(/\.[^.]*$/, "");
      const match = /\.zip$/i.test(base) ? null : SKU_NUMBERED.exec(stem);
      if (!match) return null;
      groups.set(match[1], [...(groups.get(match[1]) || []), Number(match[2])]);
    }
    for (const numbers of groups.values()) if (Math.min(...numbers) > 1) return null;
    return groups.size ? groups : null;
  }

  let modeChosen = false; // the merchandiser picked a mode: it is never changed for them
  let held = [];
  const detected = document.getElementById("bulk-detected");
  const detectedText = document.getElementById("bulk-detected-text");

  function offer(files) {
    const perFile = form.querySelector("input[name=mode][value=per_file]");
    const byName = form.querySelector("input[name=mode][value=by_name]");
    const groups = perFile && byName && perFile.checked && !modeChosen ? skuGroups(files.map(([file, path]) => path || file.name)) : null;
    if (!groups) { enqueue(files); return; }
    byName.checked = true;
    uploadId = null;
    held = files;
    detectedText.textContent = detectedText.dataset.template
      .replace("{files}", files.length).replace("{products}", groups.size);
    detected.hidden = false;
    document.getElementById("bulk-detected-upload").focus();
  }
  document.getElementById("bulk-detected-upload").addEventListener("click", () => {
    detected.hidden = true;
    const files = held;
    held = [];
    enqueue(files);
  });
  document.getElementById("bulk-detected-cancel").addEventListener("click", () => {
    detected.hidden = true;
    held = [];
  });

  form.querySelector("#id_files").addEventListener("change", (event) => {
    offer(Array.from(event.target.files).map((file) => [file, ""]));
    event.target.value = "";
  });
  form.querySelector("#id_folder").addEventListener("change", (event) => {
    offer(Array.from(event.target.files).map((file) => [file, file.webkitRelativePath]));
    event.target.value = "";
  });
  form.querySelectorAll("input[name=mode]").forEach((field) => {
    // A click too: choosing the mode already selected (one product per file) is a choice.
    for (const type of ["click", "change"]) field.addEventListener(type, () => { modeChosen = true; });
  });
  form.querySelectorAll("input[name=mode], #id_product_external_id, #id_category, #id_brand").forEach((field) => {
    field.addEventListener("change", () => { uploadId = null; }); // new settings: a new upload
  });
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("dragging"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("dragging");
    offer(Array.from(event.dataTransfer.files).map((file) => [file, ""]));
  });

  // Rows rendered by the server (after a reload) get their actions, and keep updating.
  // (No upload yet: nothing to ask. The policy lets the page fetch from this site only.)
  const shown = itemsUrl
    ? fetch(itemsUrl, { credentials: "same-origin" }).then((response) => response.json())
    : Promise.resolve({ items: [] });
  shown
    .then((answer) => {
      for (const item of answer.items) {
        const row = body.querySelector('tr[data-item-id="' + item.id + '"]');
        if (row) render(row, item);
      }
      summarise();
      poll();
    });
})();
