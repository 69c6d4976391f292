"""Reads from the catalog, for the faces (pages, admin, API) and the index's housekeeping."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from catalog.models import FeedImport, Product, ProductImage


def product_get_by_external_id(external_id: str) -> Product | None:
    return Product.objects.filter(external_id=external_id).first()


def product_list(
    *,
    category: str | None = None,
    brand: str | None = None,
    is_active: bool | None = None,
    updated_since: datetime | None = None,
) -> QuerySet[Product]:
    """Products, most recently changed first, narrowed by whatever is given."""
    products = Product.objects.order_by("-updated_at", "-id")
    if category is not None:
        products = products.filter(category=category)
    if brand is not None:
        products = products.filter(brand=brand)
    if is_active is not None:
        products = products.filter(is_active=is_active)
    if updated_since is not None:
        products = products.filter(updated_at__gte=updated_since)
    return products


def image_state_counts() -> dict[str, int]:
    counts = dict(ProductImage.objects.values_list("state").annotate(n=Count("pk")).values_list("state", "n"))
    return {state: counts.get(state, 0) for state in ProductImage.State.values}


def image_counts(images: Iterable[ProductImage]) -> dict[str, int]:
    """How many of these images are in each state (every state listed)."""
    counts = {state: 0 for state in ProductImage.State.values}
    for image in images:
        counts[image.state] += 1
    return counts


@dataclass(frozen=True)
class ImagesStatus:
    images: list[ProductImage]
    summary: dict[str, int]
    missing: list[int]  # asked-for ids with no image


def images_status(*, image_ids: list[int] | None = None, product: Product | None = None) -> ImagesStatus:
    """The indexing state of the images asked for by id (in id order; unknown ids listed as
    missing) or of one product's images."""
    if (image_ids is None) == (product is None):
        raise ValueError("Give image_ids or product.")
    if product is not None:
        images = list(product.images.select_related("product"))
        return ImagesStatus(images=images, summary=image_counts(images), missing=[])
    images = list(ProductImage.objects.filter(pk__in=image_ids).select_related("product").order_by("pk"))
    found = {image.pk for image in images}
    missing = [image_id for image_id in dict.fromkeys(image_ids) if image_id not in found]
    return ImagesStatus(images=images, summary=image_counts(images), missing=missing)


def images_needing_embedding(space_id: str) -> list[int]:
    """Images that are not indexed in this space (pending, or indexed in another); failed
    ones wait for a person (or ``reindex --include-failed``)."""
    query = ProductImage.objects.exclude(Q(state=ProductImage.State.INDEXED) & Q(embedding_space=space_id))
    return list(query.exclude(state=ProductImage.State.FAILED).values_list("pk", flat=True))


def products_by_photo(products: QuerySet[Product], has_photo: str) -> QuerySet[Product]:
    """Narrow products by their photos: "yes" (one indexed at least), "none_indexed" (photos,
    none of them indexed: pending or failed), "no" (no photo at all)."""
    images = ProductImage.objects.filter(product=OuterRef("pk"))
    indexed = images.filter(state=ProductImage.State.INDEXED)
    if has_photo == "yes":
        return products.filter(Exists(indexed))
    if has_photo == "none_indexed":
        return products.filter(Exists(images)).exclude(Exists(indexed))
    if has_photo == "no":
        return products.exclude(Exists(images))
    return products


def feed_import_photoless_products(job: FeedImport) -> QuerySet[Product]:
    """The products of a feed import that had an image fail and have no usable photo now
    (none indexed or waiting to be): what a merchandiser has to fix by hand. Read from the
    import's report, whose image_failed rows name them."""
    external_ids = {
        line.get("external_id", "")
        for line in csv.DictReader(io.StringIO(job.report))
        if line.get("status") == "image_failed"
    }
    usable = ProductImage.objects.filter(
        product=OuterRef("pk"), state__in=[ProductImage.State.INDEXED, ProductImage.State.PENDING]
    )
    return Product.objects.filter(external_id__in=external_ids - {""}).exclude(Exists(usable))
