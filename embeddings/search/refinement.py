"""Queries made of products: "more like this" (a product's photos), recommendations
(products the shopper liked) and refinement ("like" moves the query towards products,
"not this" away from them: Rocchio's relevance feedback)."""

from __future__ import annotations

import numpy as np

from catalog.models import Product, ProductImage
from embeddings.search.types import SearchError

MAX_REFINEMENTS = 20
# Rocchio weights for "like" and "not this": the query moves towards liked products and
# away from rejected ones (rejected ones are also left out).
LIKE_WEIGHT = 0.75
NOT_WEIGHT = 0.35


def unit(vector: np.ndarray) -> np.ndarray:
    return (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)


def reference_vector(
    space, index, like_product_id: int | None, like_image_id: int | None
) -> tuple[np.ndarray, Product]:
    """The query of "more like this": the mean of the product's photos (or the one photo),
    and the product."""
    if like_image_id:
        image = ProductImage.objects.select_related("product").filter(pk=like_image_id).first()
        if image is None:
            raise SearchError("not_found", f"There is no image with id {like_image_id}.")
        image_ids, product = [image.pk], image.product
    else:
        product = Product.objects.filter(pk=like_product_id).first()
        if product is None:
            raise SearchError("not_found", f"There is no product with id {like_product_id}.")
        image_ids = list(product.images.values_list("pk", flat=True))
    vectors = list(index.vectors(space, image_ids).values())
    if not vectors:
        raise SearchError("not_indexed", "That product has no indexed image yet, so there is nothing to compare.")
    mean = np.mean(vectors, axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12), product


def liked_vector(space, index, product_ids: tuple[int, ...]) -> np.ndarray:
    """The mean of the liked products' mean photo vectors (each product counts once)."""
    image_ids = dict(ProductImage.objects.filter(product_id__in=product_ids).values_list("pk", "product_id"))
    by_product: dict[int, list[np.ndarray]] = {}
    for image_id, image_vector in index.vectors(space, list(image_ids)).items():
        by_product.setdefault(image_ids[image_id], []).append(image_vector)
    if not by_product:
        raise SearchError("not_indexed", "None of these products has an indexed photo yet.")
    return unit(np.mean([unit(np.mean(vectors, axis=0)) for vectors in by_product.values()], axis=0))


def refined_vector(
    space, index, vector: np.ndarray, positive: tuple[int, ...], negative: tuple[int, ...]
) -> np.ndarray:
    image_ids = dict(ProductImage.objects.filter(product_id__in=[*positive, *negative]).values_list("pk", "product_id"))
    vectors = index.vectors(space, list(image_ids))
    by_product: dict[int, list[np.ndarray]] = {}
    for image_id, image_vector in vectors.items():
        by_product.setdefault(image_ids[image_id], []).append(image_vector)

    def mean_of(product_ids) -> np.ndarray | None:
        found = [unit(np.mean(by_product[p], axis=0)) for p in product_ids if p in by_product]
        return np.mean(found, axis=0) if found else None

    refined = vector.astype(np.float32).copy()
    liked, rejected = mean_of(positive), mean_of(negative)
    if liked is not None:
        refined += LIKE_WEIGHT * liked
    if rejected is not None:
        refined -= NOT_WEIGHT * rejected
    return unit(refined)
