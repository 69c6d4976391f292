/* Starts ReDoc on /api/redoc/, fully offline. The <style> elements ReDoc writes carry this
   script's nonce, which the page's Content-Security-Policy allows (see api/docs.py).
   - Fonts: the system's (ReDoc's defaults name Roboto and Montserrat, which drf-spectacular's
     own page fetches from Google Fonts).
   - Redocly's logo: ReDoc 2 draws it in the sidebar from cdn.redoc.ly, with no option to
     leave it out. Its address is swapped for an empty image before the browser sees it; the
     image then fails to load and ReDoc's own error handler removes it. Nothing is fetched. */
(function () {
  "use strict";
  const LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg";
  const NOTHING = "data:,";
  const setAttribute = HTMLImageElement.prototype.setAttribute;
  HTMLImageElement.prototype.setAttribute = function (name, value) {
    const offline = String(name).toLowerCase() === "src" && value === LOGO;
    return setAttribute.call(this, name, offline ? NOTHING : value);
  };
  const src = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "src");
  Object.defineProperty(HTMLImageElement.prototype, "src", {
    configurable: true,
    enumerable: src.enumerable,
    get: src.get,
    set: function (value) { src.set.call(this, value === LOGO ? NOTHING : value); },
  });

  const SYSTEM_FONTS = 'system-ui, -apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK SC", sans-serif';
  const MONOSPACE = 'ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace';
  const container = document.getElementById("redoc-container");
  const nonce = document.currentScript.nonce;
  window.Redoc.init(
    container.dataset.specUrl,
    {
      nonce,
      hideLoading: true,
      theme: {
        typography: {
          fontFamily: SYSTEM_FONTS,
          headings: { fontFamily: SYSTEM_FONTS },
          code: { fontFamily: MONOSPACE },
        },
      },
    },
    container,
  );
})();
