"""The API's documentation pages, served under the site's Content-Security-Policy
(settings.CONTENT_SECURITY_POLICY): no inline script, no inline style, nothing loaded from
outside (Swagger UI's and ReDoc's files come from drf_spectacular_sidecar).

- Swagger UI: drf-spectacular's split view serves the start-up script as a file of its own
  (``/api/docs/?script=``) instead of inline; the page's inline ``<style>`` moves to a file.
- ReDoc styles itself with styled-components, which writes ``<style>`` elements at run
  time: those carry this response's nonce (ReDoc's ``nonce`` option), which this page
  alone adds to ``style-src``. As it loads, before it can be given the nonce, the bundle
  also writes perfect-scrollbar's stylesheet (into an empty ``<style>`` first): those two
  are allowed by their hashes. Its search index runs in a worker made from a blob URL:
  this page alone allows it. Nothing comes from outside: the system's fonts, not Google
  Fonts, and no Redocly logo from their CDN (static/vitrine/redoc.js).
"""

from __future__ import annotations

from csp.constants import NONCE, SELF
from csp.decorators import csp_update
from django.utils.decorators import method_decorator
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView


class SwaggerView(SpectacularSwaggerSplitView):
    template_name = "api/swagger_ui.html"


# The hashes of what ReDoc's bundle writes before the nonce (see above). Should an upgrade
# of drf-spectacular-sidecar change them, tests/test_browser.py fails on /api/redoc/, and
# chromium's console message names the new hash.
REDOC_STYLE_HASHES = [
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",  # the empty <style>
    "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='",  # perfect-scrollbar 1.5's CSS
]
REDOC_POLICY = {
    "style-src": [NONCE, *REDOC_STYLE_HASHES],
    "worker-src": [SELF, "blob:"],
}


# Added to the policy in force, whichever header carries it (VITRINE_CSP_REPORT_ONLY).
@method_decorator(csp_update(REDOC_POLICY), name="get")
@method_decorator(csp_update(REDOC_POLICY, REPORT_ONLY=True), name="get")
class RedocView(SpectacularRedocView):
    template_name = "api/redoc.html"
