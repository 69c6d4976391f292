"""The product page through Django's test client: facts in the shopper's language, the
gallery's sizes, the search box, "find more like this", and similar products of the same
kind first. (tests/test_browser.py switches the gallery's photos in chromium.)"""

from __future__ import annotations

import io
import re

import pytest
from django.test import Client
from django.utils import translation
from PIL import Image

from catalog import services
from catalog.models import Product, ProductImage
from catalog.translations import is_translation_key, localized, localized_attributes
from embeddings.search import SearchQuery, catalog_search
from tests import images

pytestmark = pytest.mark.django_db(transaction=True)

MUG_ATTRIBUTES = {
    "kind": "mug",
    "colour": "red",
    "pattern": "striped",
    "gift_wrap": "yes",
    "kind_zh": "杯子",
    "colour_zh": "红色",
    "pattern_zh": "条纹",
    "title_zh": "红色条纹杯子",
    "description_zh": "一个红色条纹杯子。",
    "category_zh": "厨房",
}


def big_jpeg(width: int = 1500, height: int = 1000) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((width, height), 60).convert("RGB").save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


@pytest.fixture
def mug(db):
    product = services.product_upsert(
        external_id="SKU-RED-MUG-0042",
        title="Red striped mug",
        description="A red striped mug.",
        category="kitchen",
        price=12,
        currency="EUR",
        attributes=MUG_ATTRIBUTES,
    ).product
    services.image_create(product=product, content=images.noise_jpeg(1))
    return product


def facts(html: str) -> list[tuple[str, str]]:
    return re.findall(r"<dt>([^<]*)</dt><dd>([^<]*)</dd>", html)


def test_facts_are_readable_labels_without_translations_or_the_shops_own_key(mug):
    html = Client().get(f"/products/{mug.pk}/").content.decode()
    assert facts(html) == [
        ("Category", "kitchen"),
        ("Kind", "mug"),
        ("Colour", "red"),
        ("Pattern", "striped"),
        ("Gift wrap", "yes"),
    ]
    assert "zh" not in " ".join(label for label, _ in facts(html))
    assert "Product id" not in html and "SKU-RED-MUG-0042" not in html
    assert '<h1 id="product-title">Red striped mug</h1>' in html


def test_a_chinese_shopper_reads_the_products_translations(mug):
    with translation.override("zh-hans"):
        response = Client().get(f"/products/{mug.pk}/", headers={"Accept-Language": "zh-hans"})
    html = response.content.decode()
    assert '<h1 id="product-title">红色条纹杯子</h1>' in html
    assert "一个红色条纹杯子。" in html
    assert [value for _, value in facts(html)] == ["厨房", "杯子", "红色", "条纹", "yes"]
    assert 'alt="红色条纹杯子' in html


def test_translations_fall_back_to_the_original_and_are_never_attributes():
    product = Product(title="Lamp", category="home", attributes={"colour": "blue", "colour_zh": "", "size": "M"})
    assert localized(product, "title", "zh-hans") == "Lamp"
    assert localized(product, "category", "en") == "home"
    assert localized_attributes(product, "zh-hans") == [("colour", "blue"), ("size", "M")]
    assert localized_attributes(Product(attributes={"colour": "red", "colour_zh": "红色"}), "zh-Hans") == [
        ("colour", "红色")
    ]
    assert is_translation_key("title_zh") and is_translation_key("colour_zh")
    assert not is_translation_key("colour") and not is_translation_key("_zh") and not is_translation_key("zh")


def test_the_main_photo_offers_sizes_up_to_its_own_and_is_loaded_first(db):
    product = services.product_upsert(external_id="big", title="Big photo").product
    image = services.image_create(product=product, content=big_jpeg()).image
    html = Client().get(f"/products/{product.pk}/").content.decode()
    main = re.search(r'<img class="product-photo"[^>]*>', html)[0]
    sha = image.sha256
    assert f'srcset="/thumbnails/{sha}-320.webp 320w, /thumbnails/{sha}-640.webp 640w, ' in main
    assert f'/thumbnails/{sha}-1024.webp 1024w"' in main
    assert 'sizes="' in main and 'fetchpriority="high"' in main and "loading=" not in main
    assert 'width="1024" height="683"' in main
    served = Client().get(f"/thumbnails/{sha}-1024.webp")
    assert served.status_code == 200
    assert Image.open(io.BytesIO(b"".join(served.streaming_content))).size == (1024, 683)


def test_a_small_photo_is_never_enlarged(mug):
    image = mug.images.get()
    html = Client().get(f"/products/{mug.pk}/").content.decode()
    main = re.search(r'<img class="product-photo"[^>]*>', html)[0]
    assert "srcset" not in main and 'width="96" height="96"' in main
    served = Client().get(f"/thumbnails/{image.sha256}-1024.webp")
    assert Image.open(io.BytesIO(b"".join(served.streaming_content))).size == (96, 96)


def test_each_gallery_thumbnail_links_to_its_large_photo_without_javascript(mug):
    second = services.image_create(product=mug, content=big_jpeg(800, 1200)).image
    html = Client().get(f"/products/{mug.pk}/").content.decode()
    thumbs = re.findall(r'<a class="product-thumb" href="([^"]+)"( aria-current="true")?', html)
    assert thumbs == [
        (f"/thumbnails/{mug.images.first().sha256}-320.webp", ' aria-current="true"'),
        (f"/thumbnails/{second.sha256}-1024.webp", ""),
    ]
    assert f'src="/thumbnails/{second.sha256}-160.webp"' in html
    assert 'data-photo-alt="Red striped mug, photo 2 of 2"' in html
    assert "vitrine/product.js" in html


def test_the_product_page_has_a_labelled_search_box(mug):
    html = Client().get(f"/products/{mug.pk}/").content.decode()
    assert '<form class="product-search" role="search" action="/" method="get">' in html
    assert '<label class="visually-hidden" for="product-search-q">Search the shop</label>' in html
    assert 'id="product-search-q" name="q"' in html


def test_find_more_like_this_is_offered_only_for_a_product_with_an_indexed_photo(mug):
    assert ProductImage.objects.get(product=mug).state == ProductImage.State.INDEXED
    html = Client().get(f"/products/{mug.pk}/").content.decode()
    assert f'href="/?similar={mug.pk}" id="find-more-like-this"' in html
    assert Client().get("/", {"similar": mug.pk}).status_code == 200

    bare = services.product_upsert(external_id="bare", title="No photo yet").product
    html = Client().get(f"/products/{bare.pk}/").content.decode()
    assert "find-more-like-this" not in html and "Find more like this" not in html
    assert "Similar products appear once this product" in html


def test_similar_products_of_the_same_kind_come_first(small_shop):
    """On the demo shop, the blue dotted bag's look-alikes of other kinds (a hat, a vase, a
    clock sharing its colour and pattern) came before the other bags."""
    by_kind: dict[str, list[Product]] = {}
    for product in small_shop:
        by_kind.setdefault(product.attributes["kind"], []).append(product)
    checked = 0
    for product in small_shop:
        others = len(by_kind[product.attributes["kind"]]) - 1
        if others < 3:
            continue
        page = catalog_search(SearchQuery(like_product_id=product.pk, relevant_only=False, limit=8, facets=False))
        first = [hit.product for hit in page.hits[:3]]
        assert [p.attributes["kind"] for p in first] == [product.attributes["kind"]] * 3, (
            product.title,
            [p.title for p in first],
        )
        checked += 1
    assert checked >= 10


def test_the_product_pages_similar_strip_starts_with_the_same_kind(small_shop):
    product = next(p for p in small_shop if p.attributes["kind"] == "bag")
    html = Client().get(f"/products/{product.pk}/").content.decode()
    strip = re.findall(r'<span class="title">([^<]+)</span>', html)
    bags = sum(1 for p in small_shop if p.attributes["kind"] == "bag") - 1
    assert len(strip) == 8
    assert all(title.endswith("bag") for title in strip[: min(bags, 3)]), strip
