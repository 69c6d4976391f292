/* Search analytics: a click on a result is reported (search id, product, position) with
   navigator.sendBeacon, which the browser delivers even as it leaves the page. Listens on
   the document, so results swapped in place by search.js are covered too. The page works
   the same without it: only the click goes unrecorded. */
(function () {
  "use strict";
  const endpoint = "/events/click";
  function report(link) {
    const data = new URLSearchParams({
      search: link.dataset.search,
      product: link.dataset.product,
      position: link.dataset.position,
    });
    if (navigator.sendBeacon) navigator.sendBeacon(endpoint, data);
  }
  // A left click, a middle click (new tab) and Enter all open the product.
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-search][data-product]");
    if (link) report(link);
  });
  document.addEventListener("auxclick", (event) => {
    const link = event.target.closest("a[data-search][data-product]");
    if (link && event.button === 1) report(link);
  });
})();
