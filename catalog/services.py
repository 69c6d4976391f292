"""Writes to the catalog. Keyword-only, typed; validation happens before anything is written.

These functions know nothing of the vector index (the dependency rule): callers that
change what is searchable tell ``embeddings.sync`` afterwards.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from catalog.intake import image_accept
from catalog.models import Product, ProductImage

logger = logging.getLogger(__name__)

PRODUCT_FIELDS = ("title", "description", "brand", "category", "price", "currency", "url", "attributes", "is_active")
# The product fields copied into every image's point, so the index can filter on them.
SEARCHABLE_FIELDS = ("category", "brand", "price", "is_active", "attributes")


@dataclass(frozen=True)
class ProductUpsertResult:
    product: Product
    is_created: bool
    changed_fields: tuple[str, ...]

    @property
    def is_index_payload_changed(self) -> bool:
        return not self.is_created and any(f in SEARCHABLE_FIELDS for f in self.changed_fields)


def product_upsert(*, external_id: str, title: str, **fields: Any) -> ProductUpsertResult:
    """Create or update the product with this ``external_id``; unchanged input writes nothing."""
    unknown = set(fields) - set(PRODUCT_FIELDS)
    if unknown:
        raise ValidationError({name: "Unknown product field." for name in sorted(unknown)})
    values = {"title": title, **fields}
    if "price" in values and values["price"] is not None:
        values["price"] = _decimal(values["price"])
    if "currency" in values and values["currency"]:
        values["currency"] = str(values["currency"]).upper()

    with transaction.atomic():
        product = Product.objects.select_for_update().filter(external_id=external_id).first()
        if product is None:
            product = Product(external_id=external_id, **values)
            # Uniqueness is the database's job (IntegrityError below): a check here would
            # turn a concurrent create of the same product into a validation error.
            product.full_clean(validate_unique=False)
            try:
                with transaction.atomic():
                    product.save()
            except IntegrityError:
                # Another request created it between our read and write: update that one.
                product = Product.objects.select_for_update().get(external_id=external_id)
            else:
                return ProductUpsertResult(product=product, is_created=True, changed_fields=tuple(values))
        changed = tuple(name for name, value in values.items() if getattr(product, name) != value)
        if not changed:
            return ProductUpsertResult(product=product, is_created=False, changed_fields=())
        for name in changed:
            setattr(product, name, values[name])
        product.full_clean(validate_unique=False)
        product.save(update_fields=[*changed, "updated_at"])
    return ProductUpsertResult(product=product, is_created=False, changed_fields=changed)


@dataclass(frozen=True)
class ImageCreateResult:
    image: ProductImage
    is_created: bool

    @property
    def needs_indexing(self) -> bool:
        return self.image.state != ProductImage.State.INDEXED


def image_create(
    *, product: Product, content: bytes, source_url: str = "", position: int | None = None
) -> ImageCreateResult:
    """Accept an image for a product (raises ImageRejected before writing anything).

    The same bytes added twice to one product give back the existing image; if that one
    had failed, it goes back to pending (sending the photo again is how people retry).
    """
    accepted = image_accept(content=content)
    existing = ProductImage.objects.filter(product=product, sha256=accepted.sha256).first()
    if existing is not None:
        if existing.state == ProductImage.State.FAILED:
            image_mark_pending(image_ids=[existing.pk])
            existing.refresh_from_db()
        return ImageCreateResult(image=existing, is_created=False)
    if position is None:
        position = ProductImage.objects.filter(product=product).count()
    image = ProductImage(
        product=product,
        source_url=source_url,
        sha256=accepted.sha256,
        format=accepted.format,
        width=accepted.width,
        height=accepted.height,
        byte_size=accepted.byte_size,
        position=position,
    )
    filename = f"{accepted.sha256}.{accepted.extension}"
    stored_name = image.file.field.generate_filename(image, filename)
    # Content-addressed names: if the file is already stored (another product has the same
    # photo), reuse it instead of writing a copy.
    is_new_file = not default_storage.exists(stored_name)
    if is_new_file:
        stored_name = default_storage.save(stored_name, ContentFile(content))
    image.file.name = stored_name
    try:
        with transaction.atomic():
            image.save()
    except IntegrityError:
        if is_new_file and not ProductImage.objects.filter(file=stored_name).exists():
            default_storage.delete(stored_name)
        existing = ProductImage.objects.get(product=product, sha256=accepted.sha256)
        return ImageCreateResult(image=existing, is_created=False)
    except Exception:
        if is_new_file:
            default_storage.delete(stored_name)
        raise
    if not is_new_file:
        # Another product's delete may have removed the shared file between our check
        # and our commit (it saw no committed row using it): put it back.
        def file_restore_if_deleted() -> None:
            if not default_storage.exists(stored_name):
                default_storage.save(stored_name, ContentFile(content))

        transaction.on_commit(file_restore_if_deleted)
    logger.debug(
        "Accepted image %s for product %s (%dx%d %s)",
        image.pk,
        product.external_id,
        image.width,
        image.height,
        image.format,
    )
    return ImageCreateResult(image=image, is_created=True)


def image_delete(*, image: ProductImage) -> int:
    """Delete one image row and, if no other row uses it, its file. Returns the image id."""
    image_id = image.pk
    stored_name = image.file.name
    image.delete()
    _file_delete_if_unused(stored_name)
    return image_id


def product_delete(*, product: Product) -> list[int]:
    """Delete a product with its images and their files. Returns the deleted image ids."""
    images = list(product.images.values_list("pk", "file"))
    product.delete()
    for _, stored_name in images:
        _file_delete_if_unused(stored_name)
    return [image_id for image_id, _ in images]


def image_mark_pending(*, image_ids: list[int]) -> int:
    """Put images back in the queue (re-embed): state pending, error cleared."""
    return ProductImage.objects.filter(pk__in=image_ids).update(state=ProductImage.State.PENDING, error="")


def _file_delete_if_unused(stored_name: str) -> None:
    def delete() -> None:
        if stored_name and not ProductImage.objects.filter(file=stored_name).exists():
            default_storage.delete(stored_name)

    # After commit: a rolled-back delete must still find its file.
    transaction.on_commit(delete)


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValidationError({"price": f"{value!r} is not a number."}) from None
