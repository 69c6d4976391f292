"""Compressed responses: pages, fragments, API answers, CSS and JavaScript.

Django's GZipMiddleware compresses whatever it is given, photos too (a WebP or JPEG only
grows, and each one served would cost CPU): this one compresses text alone.

BREACH (https://www.breachattack.com/): a compressed page that reflects what a visitor
sent (the search words) beside a secret can leak that secret through the response's
size. The only secret Vitrine's pages carry is the CSRF token, and Django masks it with a
new random mask in every response (since Django 1.10), so no two responses carry the
same bytes for it; Django's GZipMiddleware also pads each response with random bytes
(since 4.2, "Heal the BREACH"). Session cookies travel in headers, never compressed.
https://docs.djangoproject.com/en/5.2/ref/middleware/#module-django.middleware.gzip
"""

from __future__ import annotations

from django.middleware.gzip import GZipMiddleware

COMPRESSIBLE_TYPES = frozenset(
    {
        "application/javascript",
        "application/json",
        "application/xml",
        "application/vnd.oai.openapi",  # the API's schema (YAML)
        "image/svg+xml",
    }
)


def is_compressible(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type.startswith("text/") or media_type in COMPRESSIBLE_TYPES or media_type.endswith(("+json", "+xml"))


class TextGZipMiddleware(GZipMiddleware):
    """GZip for text responses only. Placed before WhiteNoise's middleware, so it also
    compresses the CSS and JavaScript WhiteNoise serves from the source folders (``make
    run``); files it serves already compressed (collected with ``VITRINE_STATIC_MANIFEST``:
    their ``.gz`` and ``.br`` made once at build) carry a Content-Encoding and are left as
    they are."""

    def process_response(self, request, response):
        if not is_compressible(response.get("Content-Type", "")):
            return response
        return super().process_response(request, response)
