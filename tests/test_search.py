"""The search engine's ranking on a tiny catalog of noise photos: one card per product,
pages, more like this, filters, inactive products, refused queries. (Fewer than 20
products: no relevance cutoff; ``test_catalog_search`` covers it on a demo shop.)"""

from __future__ import annotations

import numpy as np
import pytest

from catalog import services
from catalog.intake import image_decode_rgb
from embeddings.index import IndexFilters, get_index
from embeddings.model import get_encoder
from embeddings.search import FacetFilters, SearchError, SearchQuery, catalog_search
from tests import images

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def catalog():
    """Six products with two distinct photos each, indexed."""
    products, photos = [], {}
    for number in range(6):
        result = services.product_upsert(
            external_id=f"sku-{number}",
            title=f"Product {number}",
            category="kitchen" if number % 2 else "garden",
            brand="Kito" if number < 3 else "Nordlys",
            price=10 * (number + 1),
        )
        product = result.product
        for shot in range(2):
            content = images.noise_jpeg(100 * number + shot)
            services.image_create(product=product, content=content)
            photos[(number, shot)] = content
        products.append(product)
    return products, photos  # indexed as they were added


def search(**query):
    return catalog_search(SearchQuery(relevant_only=False, **query))


def test_a_photo_of_a_product_finds_that_product_first(catalog):
    products, photos = catalog
    query = image_decode_rgb(content=photos[(4, 1)])

    result = search(image=query, limit=3)

    assert result.hits[0].product == products[4]
    assert result.hits[0].image.sha256 == products[4].images.get(position=1).sha256
    assert result.hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert [hit.score for hit in result.hits] == sorted((hit.score for hit in result.hits), reverse=True)


def test_results_have_one_card_per_product(catalog):
    result = search(text="a product", limit=20)
    product_ids = [hit.product.pk for hit in result.hits]
    assert len(product_ids) == len(set(product_ids)) == 6


def test_pages_do_not_overlap_and_cover_everything(catalog):
    first = search(text="mug", limit=4, offset=0)
    second = search(text="mug", limit=4, offset=4)
    everything = search(text="mug", limit=10)
    assert [h.product.pk for h in first.hits + second.hits] == [h.product.pk for h in everything.hits]


def test_more_like_this_excludes_the_product_itself(catalog):
    products, _ = catalog

    result = search(like_product_id=products[2].pk, limit=10)

    assert products[2].pk not in [hit.product.pk for hit in result.hits]
    assert len(result.hits) == 5


def test_more_like_an_image_ranks_products_by_their_closest_photo(catalog):
    products, _ = catalog
    reference = products[1].images.get(position=0)
    space = get_encoder().space
    index = get_index()
    all_images = [image for product in products for image in product.images.all()]
    vectors = index.vectors(space, [image.pk for image in all_images])
    target = vectors[reference.pk]
    best_score = {}
    for image in all_images:
        if image.product_id != products[1].pk:
            score = float(np.dot(vectors[image.pk], target))
            best_score[image.product_id] = max(score, best_score.get(image.product_id, -2.0))
    expected = sorted(best_score, key=best_score.get, reverse=True)

    result = search(like_image_id=reference.pk, limit=10)

    assert [hit.product.pk for hit in result.hits] == expected
    assert [hit.score for hit in result.hits] == pytest.approx([best_score[p] for p in expected], abs=1e-4)


def test_filters_apply(catalog):
    products, _ = catalog
    result = search(
        text="anything",
        filters=FacetFilters(categories=("kitchen",), brands=("Nordlys",), price_max=50),
        limit=10,
    )
    # kitchen = odd numbers; Nordlys = 3, 4, 5; price <= 50 = numbers 0..4
    assert [hit.product for hit in result.hits] == [products[3]]


def test_inactive_products_are_hidden_unless_asked_for(catalog):
    products, photos = catalog
    services.product_upsert(external_id="sku-4", title="Product 4", is_active=False)
    query = image_decode_rgb(content=photos[(4, 0)])

    active = search(image=query, limit=10)
    everything = search(image=query, limit=10, active=None)

    assert products[4].pk not in [h.product.pk for h in active.hits]
    assert everything.hits[0].product.pk == products[4].pk
    # The index itself knows (not only the DB check after it).
    vector = get_encoder().images_encode([query])[0]
    index_hits = get_index().query(get_encoder().space, vector, filters=IndexFilters(), limit=10, offset=0)
    assert products[4].pk not in [hit.product_id for hit in index_hits]


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({}, "bad_query"),
        ({"text": "mug", "like_product_id": 1}, "bad_query"),
        ({"text": "mug", "sort": "cheapest"}, "bad_sort"),
        ({"text": "mug", "limit": 0}, "bad_limit"),
        ({"text": "mug", "offset": -1}, "bad_offset"),
        ({"like_product_id": 987654}, "not_found"),
        ({"like_image_id": 987654}, "not_found"),
    ],
)
def test_bad_queries_are_refused_with_a_reason(kwargs, code):
    with pytest.raises(SearchError) as caught:
        catalog_search(SearchQuery(**kwargs))
    assert caught.value.code == code


def test_a_product_without_indexed_images_cannot_be_compared(no_worker):
    product = services.product_upsert(external_id="new", title="New").product
    services.image_create(product=product, content=images.noise_jpeg(5))  # pending: no worker took it
    with pytest.raises(SearchError) as caught:
        catalog_search(SearchQuery(like_product_id=product.pk))
    assert caught.value.code == "not_indexed"
