"""The index module against qdrant-client's local storage in a temp dir."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from embeddings.index import (
    ImagePoint,
    IndexFilters,
    IndexUnavailable,
    collection_name,
    get_index,
    image_point_id,
    reset_index,
)
from embeddings.model import EmbeddingSpace

SPACE = EmbeddingSpace(model="test-model", weights="w1", dimension=4)


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def point(image_id, product_id, vector, *, category="mugs", brand="Kito", price=10.0, is_active=True):
    payload = {"category": category, "brand": brand, "price": price, "is_active": is_active}
    return ImagePoint(image_id=image_id, product_id=product_id, vector=vector, payload=payload)


@pytest.fixture
def index():
    index = get_index()
    index.upsert(
        SPACE,
        [
            point(1, 10, unit(1, 0, 0, 0)),
            point(2, 10, unit(0.9, 0.1, 0, 0)),  # a second photo of product 10
            point(3, 20, unit(0.8, 0.2, 0, 0), category="bags", brand="Nordlys", price=50.0),
            point(4, 30, unit(0.5, 0.5, 0, 0), price=5.0),
            point(5, 40, unit(0.7, 0.3, 0, 0), is_active=False),
        ],
    )
    return index


def test_point_ids_are_stable_per_image():
    assert image_point_id(7) == image_point_id(7)
    assert image_point_id(7) != image_point_id(8)


def test_a_retried_upsert_overwrites_instead_of_duplicating(index):
    index.upsert(SPACE, [point(1, 10, unit(1, 0, 0, 0))])
    assert index.count(SPACE) == 5


def test_query_returns_one_hit_per_product_best_first(index):
    hits = index.query(SPACE, unit(1, 0, 0, 0), filters=IndexFilters(), limit=10, offset=0)

    assert [(h.product_id, h.image_id) for h in hits] == [(10, 1), (20, 3), (30, 4)]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_limit_and_offset_page_through_products(index):
    first = index.query(SPACE, unit(1, 0, 0, 0), filters=IndexFilters(), limit=2, offset=0)
    second = index.query(SPACE, unit(1, 0, 0, 0), filters=IndexFilters(), limit=2, offset=2)
    assert [h.product_id for h in first] == [10, 20]
    assert [h.product_id for h in second] == [30]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (IndexFilters(categories=("bags",)), [20]),
        (IndexFilters(brands=("Kito",)), [10, 30]),
        (IndexFilters(price_min=Decimal("6"), price_max=Decimal("20")), [10]),
        (IndexFilters(price_max=Decimal("5")), [30]),
        (IndexFilters(active_only=False), [10, 20, 40, 30]),
        (IndexFilters(exclude_product_ids=(10,)), [20, 30]),
    ],
    ids=["category", "brand", "price-range", "price-max", "inactive-included", "exclude"],
)
def test_filters(index, filters, expected):
    hits = index.query(SPACE, unit(1, 0, 0, 0), filters=filters, limit=10, offset=0)
    assert [h.product_id for h in hits] == expected


def test_delete_images_and_update_product_payload(index):
    index.delete_images([1, 2])
    index.set_product_payload(20, {"category": "mugs"})

    hits = index.query(SPACE, unit(1, 0, 0, 0), filters=IndexFilters(categories=("mugs",)), limit=10, offset=0)
    assert [h.product_id for h in hits] == [20, 30]


def test_each_space_has_its_own_collection_and_the_alias_names_the_first(index, settings):
    other = EmbeddingSpace(model="test-model", weights="w2", dimension=8)
    index.ensure(other)

    assert collection_name(other) != collection_name(SPACE)
    aliases = {a.alias_name: a.collection_name for a in index.client.get_aliases().aliases}
    assert aliases == {settings.VITRINE_INDEX_ALIAS: collection_name(SPACE)}
    assert index.count(other) == 0


def test_vectors_come_back_for_known_images_only(index):
    vectors = index.vectors(SPACE, [1, 99])
    assert list(vectors) == [1]
    assert np.allclose(vectors[1], unit(1, 0, 0, 0), atol=1e-6)


def test_a_store_held_by_another_client_is_reported_as_unavailable(settings):
    from qdrant_client import QdrantClient

    holder = QdrantClient(path=str(settings.QDRANT_LOCAL_PATH))
    try:
        reset_index()
        with pytest.raises(IndexUnavailable) as caught:
            get_index()
        assert "in use by another Vitrine process" in str(caught.value)
        assert str(settings.QDRANT_LOCAL_PATH) in str(caught.value)
    finally:
        holder.close()


def test_an_unreachable_server_is_reported_as_unavailable(settings):
    settings.QDRANT_URL = "http://127.0.0.1:9"  # discard port: nothing listens
    settings.QDRANT_TIMEOUT = 1
    reset_index()
    with pytest.raises(IndexUnavailable) as caught:
        get_index().count(SPACE)
    assert "127.0.0.1:9" in str(caught.value)
