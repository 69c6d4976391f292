/* Starts ReDoc on /api/redoc/. The <style> elements ReDoc writes carry this script's nonce,
   which the page's Content-Security-Policy allows (see api/docs.py). */
(function () {
  "use strict";
  const container = document.getElementById("redoc-container");
  const nonce = document.currentScript.nonce;
  window.Redoc.init(container.dataset.specUrl, { nonce }, container);
})();
