/* The product page's gallery: each thumbnail shows its photo in the main frame, in place.
   Without this file the thumbnails are links to the large photos. With it they become
   buttons (aria-pressed tells which photo is shown), reachable with Tab and pressed with
   Enter or Space; the main photo keeps its srcset, so it stays sharp at every width. */
(function () {
  "use strict";
  const gallery = document.querySelector("[data-gallery]");
  if (!gallery) return;
  const main = gallery.querySelector("[data-gallery-main]");
  const link = gallery.querySelector("[data-gallery-link]");
  const links = gallery.querySelectorAll("a.product-thumb");
  if (!main || !links.length) return;
  const buttons = [];

  function show(button) {
    const photo = button.dataset;
    // srcset first: a browser choosing from the old srcset would fetch the old photo.
    if (photo.photoSrcset) {
      main.setAttribute("sizes", photo.photoSizes);
      main.setAttribute("srcset", photo.photoSrcset);
    } else {
      main.removeAttribute("srcset");
      main.removeAttribute("sizes");
    }
    main.setAttribute("src", photo.photoSrc);
    main.setAttribute("width", photo.photoWidth);
    main.setAttribute("height", photo.photoHeight);
    main.setAttribute("alt", photo.photoAlt);
    if (link) link.setAttribute("href", photo.photoLarge);
    for (const other of buttons) other.setAttribute("aria-pressed", String(other === button));
  }

  links.forEach(function (anchor) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "product-thumb";
    for (const [name, value] of Object.entries(anchor.dataset)) button.dataset[name] = value;
    button.dataset.photoLarge = anchor.getAttribute("href");
    button.setAttribute("aria-pressed", String(anchor.getAttribute("aria-current") === "true"));
    while (anchor.firstChild) button.appendChild(anchor.firstChild);
    anchor.replaceWith(button);
    button.addEventListener("click", function () { show(button); });
    buttons.push(button);
  });
})();
