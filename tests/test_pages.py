from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from catalog import services
from embeddings import sync
from embeddings.index import IndexUnavailable
from tests import images

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shop():
    products = []
    for number, (category, brand) in enumerate([("kitchen", "Kito"), ("garden", "Nordlys"), ("kitchen", "Nordlys")]):
        product = services.product_upsert(
            external_id=f"sku-{number}",
            title=f"Thing {number}",
            category=category,
            brand=brand,
            price=5 + number,
            currency="EUR",
        ).product
        services.image_create(product=product, content=images.noise_jpeg(number))
        products.append(product)
    sync.images_enqueue([p.images.get().pk for p in products])
    return products


def test_the_empty_page_suggests_queries_in_english_and_chinese_and_names_the_model():
    response = Client().get("/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Type a description or choose a photo" in html
    assert '<a href="?q=red%20striped%20mug" lang="en">red striped mug</a>' in html
    assert '<a href="?q=%E7%BA%A2%E8%89%B2%E6%9D%A1%E7%BA%B9%E6%9D%AF%E5%AD%90" lang="zh">红色条纹杯子</a>' in html
    assert "Model: vitrine-demo" in html


def test_an_untrained_model_is_labelled_as_such(settings):
    settings.VITRINE_CLIP_MODEL = "vitrine-tiny"
    settings.VITRINE_CLIP_PRETRAINED = ""
    assert "untrained: random weights" in Client().get("/").content.decode()


def test_a_text_search_shows_cards_with_thumbnail_title_price_and_score(shop):
    response = Client().get("/", {"q": "a thing"})
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('class="card"') == 3
    assert "Thing 1" in html and "6.00 EUR" in html
    assert "score " in html
    assert shop[0].images.get().file.url in html


def test_filters_narrow_the_results(shop):
    response = Client().get("/", {"q": "a thing", "category": "kitchen", "brand": "Nordlys"})
    html = response.content.decode()
    assert html.count('class="card"') == 1
    assert "Thing 2" in html


def test_a_photo_search_puts_the_pictured_product_first(shop):
    photo = SimpleUploadedFile("me.jpg", images.noise_jpeg(1), "image/jpeg")
    response = Client().post("/", {"image": photo})
    html = response.content.decode()
    assert response.status_code == 200
    assert html.index("Thing 1") < html.index("Thing 0")


def test_a_bad_photo_shows_the_intake_message(shop):
    photo = SimpleUploadedFile("me.jpg", b"hello", "image/jpeg")
    response = Client().post("/", {"image": photo})
    assert response.status_code == 400
    assert "not an image Vitrine can read" in response.content.decode()


def test_an_unavailable_store_gives_a_503_page_that_says_so(shop, monkeypatch):
    from embeddings import search

    def down():
        raise IndexUnavailable("The embedded vector store at /x is in use by another Vitrine process")

    monkeypatch.setattr(search, "get_index", down)
    response = Client().get("/", {"q": "mug"})
    assert response.status_code == 503
    assert "Search is unavailable right now" in response.content.decode()


def test_thumbnails_are_served(shop):
    url = shop[0].images.get().file.url
    response = Client().get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content)[:2] == b"\xff\xd8"  # a JPEG
