"""Writes to the catalog. Keyword-only, typed; validation happens before anything is written.

Every write that changes what can be searched sends its signal (``catalog.signals``) once
its rows are written, so the index is told by the catalog itself. The API, the admin, the
feeds and the commands all write through these functions, so they validate the same way.
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
from django.db.models import Count
from django.utils import timezone

from catalog import signals
from catalog.intake import AcceptedImage, ImageRejected, image_accept
from catalog.models import Product, ProductImage
from catalog.validators import external_id_problem

logger = logging.getLogger(__name__)

PRODUCT_FIELDS = ("title", "description", "brand", "category", "price", "currency", "url", "attributes", "is_active")


@dataclass(frozen=True)
class ProductUpsertResult:
    product: Product
    is_created: bool
    changed_fields: tuple[str, ...]

    @property
    def status(self) -> str:
        if self.is_created:
            return "created"
        return "updated" if self.changed_fields else "unchanged"


@dataclass(frozen=True)
class ProductWriteError:
    """Why one product of a bulk write was not written (the others were)."""

    external_id: str
    code: str
    message: str
    fields: dict | None = None


def product_upsert(*, external_id: str, title: str, **fields: Any) -> ProductUpsertResult:
    """Create or update the product with this ``external_id``; unchanged input writes nothing.
    Fields left out keep their stored values (or take their defaults on a new product)."""
    values = _product_values({"title": title, **fields})
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
        return _product_write(product, values)


def product_update(*, product: Product, attributes_merge: bool = False, **fields: Any) -> ProductUpsertResult:
    """Change only the given fields of a product (``external_id`` among them).

    With ``attributes_merge``, ``attributes`` is merged key by key into the stored ones and a
    key given as None is removed (the API's PATCH)."""
    values = _product_values(fields, allowed=("external_id", *PRODUCT_FIELDS))
    with transaction.atomic():
        stored = Product.objects.select_for_update().filter(pk=product.pk).first()
        if stored is None:
            raise ValidationError("The product no longer exists.", code="not_found")
        if attributes_merge and "attributes" in values:
            current = stored.attributes if isinstance(stored.attributes, dict) else {}
            merged = {**current, **(values["attributes"] or {})}
            values["attributes"] = {key: value for key, value in merged.items() if value is not None}
        try:
            with transaction.atomic():
                result = _product_write(stored, values)
        except IntegrityError:
            raise ValidationError({"external_id": "Another product has this external_id."}) from None
    product.refresh_from_db()
    return ProductUpsertResult(product=product, is_created=False, changed_fields=result.changed_fields)


def products_bulk_upsert(*, products: list[dict]) -> list[ProductUpsertResult | ProductWriteError]:
    """Create or update many products (dicts with ``external_id``, ``title`` and any other
    fields), each like :func:`product_upsert`. One that fails is not written at all; the
    others are. Results come in the given order; an ``external_id`` given twice is an error
    the second time. The index is told once, for all of them.

    New products are validated, then inserted in one statement; existing ones are read in
    one query and only those that differ are written."""
    results: dict[int, ProductUpsertResult | ProductWriteError] = {}
    wanted: dict[str, tuple[int, dict]] = {}
    for index, raw in enumerate(products):
        values = dict(raw)
        external_id = str(values.pop("external_id", ""))
        problem = external_id_problem(external_id)
        if problem:
            results[index] = ProductWriteError(external_id, "bad_external_id", problem)
        elif external_id in wanted:
            message = "This external_id came earlier in the same request."
            results[index] = ProductWriteError(external_id, "duplicate_external_id", message)
        else:
            wanted[external_id] = (index, values)
    with transaction.atomic(), signals.deferred():
        # Rows are locked in external_id order, whatever the given order: two bulk writes
        # sharing products then wait for each other instead of deadlocking.
        stored = {
            product.external_id: product
            for product in Product.objects.select_for_update().filter(external_id__in=wanted).order_by("external_id")
        }
        to_create: list[tuple[int, Product, tuple[str, ...]]] = []
        for external_id, (index, values) in sorted(wanted.items()):
            try:
                checked = _product_values(values)
                if external_id in stored:
                    with transaction.atomic():  # a failing product rolls back alone
                        results[index] = _product_write(stored[external_id], checked)
                    continue
                product = Product(external_id=external_id, **checked)
                product.full_clean(validate_unique=False)
            except ValidationError as exc:
                fields = validation_fields(exc)
                results[index] = ProductWriteError(external_id, "invalid", "The product is not valid.", fields)
                continue
            to_create.append((index, product, tuple(checked)))
        try:
            with transaction.atomic():
                Product.objects.bulk_create([product for _, product, _ in to_create])
        except IntegrityError:
            # Another writer created one of them meanwhile: one by one, each finds its row
            # (and one the database refuses is rolled back alone).
            for index, product, given in to_create:
                values = {name: getattr(product, name) for name in given}
                try:
                    with transaction.atomic():
                        results[index] = product_upsert(external_id=product.external_id, **values)
                except ValidationError as exc:
                    results[index] = ProductWriteError(
                        product.external_id, "invalid", "The product is not valid.", validation_fields(exc)
                    )
        else:
            for index, product, given in to_create:
                results[index] = ProductUpsertResult(product=product, is_created=True, changed_fields=given)
    return [results[index] for index in range(len(products))]


def validation_fields(exc: ValidationError) -> dict:
    """A ValidationError as {field: [messages]} (errors not about one field under non_field_errors)."""
    return exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}


def _product_values(fields: dict, allowed: tuple[str, ...] = PRODUCT_FIELDS) -> dict:
    unknown = set(fields) - set(allowed)
    if unknown:
        raise ValidationError({name: "Unknown product field." for name in sorted(unknown)})
    values = dict(fields)
    if values.get("price") is not None:
        values["price"] = _decimal(values["price"])
    if values.get("currency"):
        values["currency"] = str(values["currency"]).upper()
    return values


def _product_write(product: Product, values: dict) -> ProductUpsertResult:
    """Write the fields that differ (validated first) and tell the index; the caller holds the row lock."""
    changed = tuple(name for name, value in values.items() if getattr(product, name) != value)
    if not changed:
        return ProductUpsertResult(product=product, is_created=False, changed_fields=())
    for name in changed:
        setattr(product, name, values[name])
    product.full_clean(validate_unique=False)
    product.save(update_fields=[*changed, "updated_at"])
    signals.send_products_changed({product.pk: changed})
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
            images_reembed(image_ids=[existing.pk])
            existing.refresh_from_db()
        return ImageCreateResult(image=existing, is_created=False)
    if position is None:
        position = ProductImage.objects.filter(product=product).count()
    image = _image_row(product, accepted, source_url=source_url, position=position)
    stored_name, is_new_file = _file_store(image, accepted)
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
        _file_restore_after_commit(stored_name, accepted.content)
    signals.send_images_added([image.pk])
    logger.debug(
        "Accepted image %s for product %s (%dx%d %s)",
        image.pk,
        product.external_id,
        image.width,
        image.height,
        image.format,
    )
    return ImageCreateResult(image=image, is_created=True)


def images_create_many(
    *, items: list[tuple[Product, bytes | AcceptedImage]], source_urls: list[str] | None = None
) -> list[ImageCreateResult | ImageRejected]:
    """Like :func:`image_create` for many images at once (imports): the same checks and
    outcomes per image, in a handful of queries instead of a dozen per image. Each item's
    result is its image, or why it was refused (refused ones write nothing). Images already
    checked (``intake.image_accept``) are not decoded again."""
    urls = source_urls or [""] * len(items)
    results: list[ImageCreateResult | ImageRejected | None] = [None] * len(items)
    accepted: dict[int, AcceptedImage] = {}
    for number, (_, content) in enumerate(items):
        try:
            accepted[number] = content if isinstance(content, AcceptedImage) else image_accept(content=content)
        except ImageRejected as exc:
            results[number] = exc
    product_ids = {items[number][0].pk for number in accepted}
    existing = {
        (image.product_id, image.sha256): image
        for image in ProductImage.objects.filter(
            product_id__in=product_ids, sha256__in={a.sha256 for a in accepted.values()}
        )
    }
    positions = dict(
        ProductImage.objects.filter(product_id__in=product_ids)
        .values_list("product_id")
        .annotate(n=Count("pk"))
        .values_list("product_id", "n")
    )
    new_rows: dict[tuple[int, str], tuple[int, ProductImage]] = {}
    shared_files: list[tuple[str, bytes]] = []  # files other products' rows already used
    for number, image in accepted.items():
        product = items[number][0]
        key = (product.pk, image.sha256)
        if key in existing or key in new_rows:
            continue  # the same photo of the same product twice: one image (below)
        position = positions.get(product.pk, 0)
        positions[product.pk] = position + 1
        row = _image_row(product, image, source_url=urls[number], position=position)
        stored_name, is_new_file = _file_store(row, image)
        if not is_new_file:
            shared_files.append((stored_name, image.content))
        new_rows[key] = (number, row)
    try:
        with transaction.atomic():
            ProductImage.objects.bulk_create([row for _, row in new_rows.values()])
            for stored_name, content in shared_files:
                _file_restore_after_commit(stored_name, content)
    except IntegrityError:
        # Another writer added one of these meanwhile: do them one by one (each finds its twin).
        return [
            result
            if isinstance(result, ImageRejected)
            else image_create(product=product, content=_bytes(content), source_url=url)
            for result, (product, content), url in zip(results, items, urls, strict=True)
        ]
    created = {key: row for key, (_, row) in new_rows.items()}
    failed_twins = [image.pk for image in existing.values() if image.state == ProductImage.State.FAILED]
    images_reembed(image_ids=failed_twins)
    for number, image in accepted.items():
        key = (items[number][0].pk, image.sha256)
        if key in existing:
            twin = existing[key]
            if twin.pk in failed_twins:
                twin.state, twin.error = ProductImage.State.PENDING, ""
            results[number] = ImageCreateResult(image=twin, is_created=False)
        else:
            row = created[key]
            results[number] = ImageCreateResult(image=row, is_created=new_rows[key][0] == number)
    signals.send_images_added([row.pk for row in created.values()])
    return results


def _bytes(content: bytes | AcceptedImage) -> bytes:
    return content.content if isinstance(content, AcceptedImage) else content


def _image_row(product: Product, accepted: AcceptedImage, *, source_url: str, position: int) -> ProductImage:
    return ProductImage(
        product=product,
        source_url=source_url,
        sha256=accepted.sha256,
        format=accepted.format,
        width=accepted.width,
        height=accepted.height,
        byte_size=accepted.byte_size,
        position=position,
    )


def _file_store(image: ProductImage, accepted: AcceptedImage) -> tuple[str, bool]:
    """Store the bytes under their content's name, once (another product's identical photo
    shares the file); sets and returns the stored name, and whether this call wrote it."""
    stored_name = image.file.field.generate_filename(image, f"{accepted.sha256}.{accepted.extension}")
    is_new_file = not default_storage.exists(stored_name)
    if is_new_file:
        stored_name = default_storage.save(stored_name, ContentFile(accepted.content))
    image.file.name = stored_name
    return stored_name, is_new_file


def _file_restore_after_commit(stored_name: str, content: bytes) -> None:
    """Another product's delete may remove a shared file between our check and our commit
    (it saw no committed row using it): put it back once the rows are committed. Call it
    after the rows are written, inside their transaction."""

    def file_restore_if_deleted() -> None:
        if not default_storage.exists(stored_name):
            default_storage.save(stored_name, ContentFile(content))

    transaction.on_commit(file_restore_if_deleted)


ALT_TEXT_FIELDS = ("alt_text", "alt_text_zh")


def image_alt_text_set(*, image: ProductImage, **texts: str) -> tuple[str, ...]:
    """Change an image's alt text (``alt_text``, ``alt_text_zh``: those given); returns the
    fields that changed. The index is told: the keyword side reads alt text."""
    unknown = set(texts) - set(ALT_TEXT_FIELDS)
    if unknown:
        raise ValidationError({name: "Unknown image field." for name in sorted(unknown)})
    values = {name: " ".join(str(value or "").split()) for name, value in texts.items()}
    for name, value in values.items():
        limit = ProductImage._meta.get_field(name).max_length
        if len(value) > limit:
            raise ValidationError({name: f"At most {limit} characters."})
    # Compared with the row, not ``image``: a bound admin form has already set its fields.
    stored = ProductImage.objects.filter(pk=image.pk).values(*ALT_TEXT_FIELDS).first()
    if stored is None:
        raise ValidationError("The image no longer exists.", code="not_found")
    changed = tuple(name for name, value in values.items() if stored[name] != value)
    if changed:
        ProductImage.objects.filter(pk=image.pk).update(
            **{name: values[name] for name in changed}, updated_at=timezone.now()
        )
        for name in changed:
            setattr(image, name, values[name])
        signals.send_products_changed({image.product_id: changed})
    return changed


def image_delete(*, image: ProductImage) -> int:
    """Delete one image row and, if no other row uses it, its file. Returns the image id."""
    image_id = image.pk
    stored_name = image.file.name
    image.delete()
    _file_delete_if_unused(stored_name)
    signals.send_images_removed([image_id])
    return image_id


def product_delete(*, product: Product) -> list[int]:
    """Delete a product with its images and their files. Returns the deleted image ids."""
    images = list(product.images.values_list("pk", "file"))
    product.delete()
    for _, stored_name in images:
        _file_delete_if_unused(stored_name)
    image_ids = [image_id for image_id, _ in images]
    signals.send_images_removed(image_ids)
    return image_ids


def images_reembed(*, image_ids: list[int]) -> int:
    """Embed these images again: back to pending (error cleared) and queued. Returns how many."""
    if not image_ids:
        return 0
    with transaction.atomic():
        count = ProductImage.objects.filter(pk__in=image_ids).update(
            state=ProductImage.State.PENDING, error="", queued_at=None, updated_at=timezone.now()
        )
        signals.send_images_added(image_ids)
    return count


def images_mark_queued(*, image_ids: list[int]) -> int:
    """Their embedding task reached the broker (the outbox no longer holds them)."""
    return ProductImage.objects.filter(pk__in=image_ids, state=ProductImage.State.PENDING).update(
        queued_at=timezone.now()
    )


def images_duplicate_keep(*, image_ids: list[int]) -> int:
    """A person decided these are not duplicates: clear the flag for good."""
    return ProductImage.objects.filter(pk__in=image_ids).update(
        duplicate_of=None, duplicate_score=None, duplicate_kept=True, updated_at=timezone.now()
    )


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
