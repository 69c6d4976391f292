"""Text responses are compressed (pages, CSS, JavaScript, API answers), photos are not, and
CSS and JavaScript carry a cache lifetime. (tests/test_browser.py checks the same under
runserver, as ``make run`` serves them.)"""

from __future__ import annotations

import gzip

import pytest
from django.conf import settings
from django.test import Client

from catalog import services
from searchsite.compression import is_compressible
from tests import images

pytestmark = pytest.mark.django_db(transaction=True)

GZIP = {"Accept-Encoding": "gzip, deflate, br"}


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_pages_are_gzipped_for_a_browser_that_accepts_it():
    response = Client().get("/", headers=GZIP)
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response["Vary"]
    html = gzip.decompress(body(response)).decode()
    assert html.lstrip().lower().startswith("<!doctype html>") and "</html>" in html
    assert len(body(response)) < len(html.encode()) / 2

    plain = Client().get("/")
    assert not plain.has_header("Content-Encoding")
    assert plain.content.decode().lstrip().lower().startswith("<!doctype html>")


@pytest.mark.parametrize(
    "path", ["/static/vitrine/vitrine.css", "/static/vitrine/search.js", "/static/vitrine/product.js"]
)
def test_css_and_javascript_are_gzipped_and_cached_for_an_hour(path):
    response = Client().get(path, headers=GZIP)
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    assert "max-age=3600" in response["Cache-Control"] and "public" in response["Cache-Control"]
    source = (settings.BASE_DIR / path.removeprefix("/")).read_bytes()
    assert gzip.decompress(body(response)) == source


def test_photos_are_never_gzipped(db):
    product = services.product_upsert(external_id="p", title="Photo").product
    image = services.image_create(product=product, content=images.noise_jpeg(3)).image
    response = Client().get(f"/thumbnails/{image.sha256}-320.webp", headers=GZIP)
    assert response.status_code == 200
    assert not response.has_header("Content-Encoding")
    assert body(response)[:4] == b"RIFF"


def test_the_api_documentation_and_answers_are_gzipped():
    assert Client().get("/api/redoc/", headers=GZIP)["Content-Encoding"] == "gzip"
    schema = Client().get("/api/schema/", headers=GZIP)
    assert schema["Content-Encoding"] == "gzip" and b"openapi" in gzip.decompress(body(schema))
    assert is_compressible("application/json") and is_compressible("application/problem+json")
    assert is_compressible("text/javascript; charset=utf-8") and is_compressible("application/vnd.oai.openapi")
    assert not is_compressible("image/webp") and not is_compressible("image/jpeg") and not is_compressible("")
