"""Reads from the catalog for pages and the API."""

from __future__ import annotations

from django.db.models import Count, Q

from catalog.models import Product, ProductImage


def category_choices() -> list[str]:
    return _distinct_values("category")


def brand_choices() -> list[str]:
    return _distinct_values("brand")


def _distinct_values(field_name: str) -> list[str]:
    values = (
        Product.objects.filter(is_active=True)
        .exclude(**{field_name: ""})
        .order_by(field_name)
        .values_list(field_name, flat=True)
        .distinct()
    )
    return list(values)


def image_state_counts() -> dict[str, int]:
    counts = dict(ProductImage.objects.values_list("state").annotate(n=Count("pk")).values_list("state", "n"))
    return {state: counts.get(state, 0) for state in ProductImage.State.values}


def product_get_by_external_id(external_id: str) -> Product | None:
    return Product.objects.filter(external_id=external_id).first()


def images_needing_embedding(space_id: str) -> list[int]:
    """Images that are not indexed in this space (pending, or indexed in another); failed
    ones wait for a person (or ``reindex --include-failed``)."""
    query = ProductImage.objects.exclude(Q(state=ProductImage.State.INDEXED) & Q(embedding_space=space_id))
    return list(query.exclude(state=ProductImage.State.FAILED).values_list("pk", flat=True))
