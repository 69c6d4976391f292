"""The search service: encode the query, ask the index, hydrate products from the DB.

Queries are a text, an image, or an existing product or image ("more like this", which
excludes the product itself). Results are one hit per product (its best image), in rank
order, with the cosine score.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from catalog.models import Product, ProductImage
from embeddings.index import IndexFilters, get_index
from embeddings.model import get_encoder
from searchsite.errors import InputRejected

logger = logging.getLogger(__name__)

MAX_LIMIT = 100
NO_FILTERS = IndexFilters()


class SearchError(InputRejected):
    """The query cannot be run as asked."""


@dataclass(frozen=True)
class SearchHit:
    product: Product
    image: ProductImage
    score: float


@dataclass(frozen=True)
class SearchResult:
    hits: list[SearchHit]
    limit: int
    offset: int
    embedding_space: str
    took_ms: float


def product_search(
    *,
    text: str = "",
    image: Image.Image | None = None,
    like_product_id: int | None = None,
    like_image_id: int | None = None,
    filters: IndexFilters = NO_FILTERS,
    limit: int = 24,
    offset: int = 0,
) -> SearchResult:
    started = time.monotonic()
    text = text.strip()
    given = sum(bool(x) for x in (text, image is not None, like_product_id, like_image_id))
    if given != 1:
        raise SearchError(
            "bad_query", "Give exactly one of: a text, an image, a product to find similar ones, or an image id."
        )
    if not 1 <= limit <= MAX_LIMIT:
        raise SearchError("bad_limit", f"limit must be between 1 and {MAX_LIMIT}.")
    if offset < 0:
        raise SearchError("bad_offset", "offset cannot be negative.")

    encoder = get_encoder()
    space = encoder.space
    index = get_index()
    if text:
        vector = encoder.texts_encode([text])[0]
    elif image is not None:
        vector = encoder.images_encode([image])[0]
    else:
        vector, product_id = _reference_vector(space, index, like_product_id, like_image_id)
        filters = replace(filters, exclude_product_ids=(*filters.exclude_product_ids, product_id))

    index_hits = index.query(space, vector, filters=filters, limit=limit, offset=offset)
    products = Product.objects.in_bulk([hit.product_id for hit in index_hits])
    images = ProductImage.objects.in_bulk([hit.image_id for hit in index_hits])
    hits = []
    for hit in index_hits:
        product, product_image = products.get(hit.product_id), images.get(hit.image_id)
        # The DB is the truth: a point whose row is gone (deleted while the index lagged,
        # or a product deactivated moments ago) is not shown.
        if product is None or product_image is None or (filters.active_only and not product.is_active):
            continue
        hits.append(SearchHit(product=product, image=product_image, score=float(hit.score)))
    took_ms = (time.monotonic() - started) * 1000
    logger.debug("Search returned %d hits in %.1f ms", len(hits), took_ms)
    return SearchResult(hits=hits, limit=limit, offset=offset, embedding_space=space.id, took_ms=took_ms)


def _reference_vector(space, index, like_product_id: int | None, like_image_id: int | None) -> tuple[np.ndarray, int]:
    if like_image_id:
        image = ProductImage.objects.filter(pk=like_image_id).first()
        if image is None:
            raise SearchError("not_found", f"There is no image with id {like_image_id}.")
        image_ids, product_id = [image.pk], image.product_id
    else:
        product = Product.objects.filter(pk=like_product_id).first()
        if product is None:
            raise SearchError("not_found", f"There is no product with id {like_product_id}.")
        image_ids, product_id = list(product.images.values_list("pk", flat=True)), product.pk
    vectors = list(index.vectors(space, image_ids).values())
    if not vectors:
        raise SearchError("not_indexed", "That product has no indexed image yet, so there is nothing to compare.")
    mean = np.mean(vectors, axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12), product_id
