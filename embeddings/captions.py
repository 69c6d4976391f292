"""Generated alt text and descriptions: a vision model writes them, a person accepts them.

What is asked for is only what is missing: alt text for an image without any, and a
description for a product without one (from its first photo). Each image's answer becomes
a :class:`~embeddings.models.CaptionSuggestion` (or a failed one, with the error in words);
nothing reaches the shop until a person accepts it. Accepting writes the alt text onto the
image (``alt_text`` / ``alt_text_zh``) and the description into the product
(``description``, and ``attributes["description_zh"]``, catalog.translations' key), and
refreshes the product's keyword terms in the index.

What is sent: a ``THUMBNAIL_SIDE`` JPEG of the stored photo and the product's title,
category and brand, as facts (embeddings.generative); nothing while the service is off.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from catalog import services
from catalog.intake import ImageRejected, image_decode_rgb
from catalog.models import Product, ProductImage
from embeddings import tasks
from embeddings.generative import GenerativeError, caption_image, caption_service, service_require
from embeddings.models import CaptionSuggestion

logger = logging.getLogger(__name__)

# A vision model sees a few hundred pixels anyway (OpenAI's "low detail" is 512²); a
# larger photo only costs upload time and tokens.
THUMBNAIL_SIDE = 512
JPEG_QUALITY = 85
# Not the item's fault: the items wait (a task is retried later; the command waits).
WAITING_CODES = frozenset({"budget_exhausted", "rate_limited"})


@dataclass
class CaptionReport:
    suggested: list[int] = field(default_factory=list)  # image ids with a new pending suggestion
    failed: dict[int, str] = field(default_factory=dict)  # image id → why
    skipped: list[int] = field(default_factory=list)  # gone, or nothing missing any more
    waiting: list[int] = field(default_factory=list)  # not asked: the budget is spent for now
    retry_after: float | None = None  # seconds until ``waiting`` can be asked


# --- Selecting -------------------------------------------------------------------------


def _first_image_ids():
    return Subquery(
        ProductImage.objects.filter(product_id=OuterRef("product_id")).order_by("position", "id").values("pk")[:1]
    )


def images_needing_captions(
    *, product_ids: list[int] | None = None, limit: int | None = None, include_reviewed: bool = False
) -> list[int]:
    """Images lacking text: no alt text, or the first photo of a product without a
    description. Unless ``include_reviewed``, those whose suggestion waits for review or was
    rejected are left out (a person has it, or said no). Without ``product_ids``, products
    taken off sale are left out too (named ones are captioned whatever their state)."""
    images = ProductImage.objects.filter(Q(alt_text="") | Q(product__description="", pk=_first_image_ids()))
    if product_ids is not None:
        images = images.filter(product_id__in=product_ids)
    else:
        images = images.filter(product__is_active=True)
    if not include_reviewed:
        images = images.exclude(
            caption_suggestion__state__in=[CaptionSuggestion.State.PENDING, CaptionSuggestion.State.REJECTED]
        )
    ids = images.order_by("product_id", "position", "pk").values_list("pk", flat=True)
    return list(ids[:limit] if limit else ids)


def _missing(image: ProductImage) -> tuple[bool, bool]:
    """(needs alt text, needs a description) for an image read by ``_image_read``, now."""
    return not image.alt_text, not image.product.description and image.pk == image.first_id


def _image_read(image_id: int) -> ProductImage | None:
    """The image, its product, and its product's first photo's id: one query."""
    images = ProductImage.objects.select_related("product").annotate(first_id=_first_image_ids())
    return images.filter(pk=image_id).first()


# --- Writing suggestions ---------------------------------------------------------------


def image_jpeg(image: ProductImage, side: int = THUMBNAIL_SIDE) -> bytes:
    """The stored photo as a small JPEG (what the vision model is sent)."""
    with image.file.open("rb") as handle:
        rgb = image_decode_rgb(content=handle.read())
    rgb.thumbnail((side, side))
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def product_context(product: Product) -> str:
    """What the shop knows, given to the model as facts (it names the thing better)."""
    facts = [("Title", product.title), ("Category", product.category), ("Brand", product.brand)]
    return ". ".join(f"{name}: {value}" for name, value in facts if value)


def images_caption(
    *,
    image_ids: list[int],
    progress: Callable[[int, str], object] | None = None,
    wait_for_budget: bool = False,
) -> CaptionReport:
    """Ask for captions of these images, one by one, and write each answer as a pending
    suggestion (replacing one waiting for review) or a failed one. When the budget is spent
    or the service rate limits us, the rest are left ``waiting`` (or, ``wait_for_budget``,
    waited for). Raises GenerativeError ``not_configured`` before sending anything when
    the service is off. ``progress(image_id, outcome)`` is called after each image."""
    service = caption_service()
    service_require(service)
    report = CaptionReport()
    queue = list(image_ids)
    while queue:
        image_id = queue[0]
        image = _image_read(image_id)
        needs_alt, needs_description = _missing(image) if image is not None else (False, False)
        if not (needs_alt or needs_description):
            report.skipped.append(queue.pop(0))
            _tell(progress, image_id, "skipped")
            continue
        try:
            caption = caption_image(image_jpeg(image), context=product_context(image.product), service=service)
        except (ImageRejected, OSError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            report.failed[queue.pop(0)] = _suggestion_fail(image, f"The photo could not be read: {message}", service)
            _tell(progress, image_id, "failed")
            continue
        except GenerativeError as exc:
            if exc.code == "not_configured":
                raise
            if exc.code in WAITING_CODES:
                wait = exc.retry_after if exc.retry_after else 60.0
                if wait_for_budget:
                    logger.info("Caption service: %s; waiting %.0f s", exc.message, wait)
                    time.sleep(wait)
                    continue
                report.waiting, report.retry_after = queue, wait
                break
            report.failed[queue.pop(0)] = _suggestion_fail(image, exc.message, service)
            _tell(progress, image_id, "failed")
            continue
        _suggestion_write(image, caption, needs_alt=needs_alt, needs_description=needs_description, service=service)
        report.suggested.append(queue.pop(0))
        _tell(progress, image_id, "suggested")
    logger.info(
        "Captions: %d suggested, %d failed, %d skipped, %d waiting for the budget",
        len(report.suggested),
        len(report.failed),
        len(report.skipped),
        len(report.waiting),
    )
    return report


def _tell(progress, image_id: int, outcome: str) -> None:
    if progress is not None:
        progress(image_id, outcome)


def _suggestion_values(image: ProductImage, service, **values) -> dict:
    return {
        "product_id": image.product_id,
        "state": CaptionSuggestion.State.PENDING,
        "alt_en": "",
        "alt_zh": "",
        "description_en": "",
        "description_zh": "",
        "error": "",
        "model": service.model[:200],
        "created_at": timezone.now(),
        "decided_at": None,
        "decided_by": None,
        **values,
    }


def _suggestion_write(image, caption, *, needs_alt: bool, needs_description: bool, service) -> None:
    values = {}
    if needs_alt:
        values.update(alt_en=caption.alt.get("en", "")[:300], alt_zh=caption.alt.get("zh", "")[:300])
    if needs_description:
        values.update(
            description_en=caption.description.get("en", ""), description_zh=caption.description.get("zh", "")
        )
    CaptionSuggestion.objects.update_or_create(image=image, defaults=_suggestion_values(image, service, **values))


def _suggestion_fail(image, message: str, service) -> str:
    values = _suggestion_values(image, service, state=CaptionSuggestion.State.FAILED, error=message)
    CaptionSuggestion.objects.update_or_create(image=image, defaults=values)
    return message


def captions_queue(image_ids: list[int], *, batch_size: int | None = None) -> int:
    """Queue the caption task for these images, in batches, once the transaction commits."""
    size = batch_size or tasks.CAPTION_BATCH_SIZE
    for start in range(0, len(image_ids), size):
        batch = list(image_ids[start : start + size])
        transaction.on_commit(lambda batch=batch: tasks.caption_images.delay(batch))
    return len(image_ids)


# --- Deciding --------------------------------------------------------------------------


def caption_accept(suggestion: CaptionSuggestion, *, user=None) -> bool:
    """Write a suggestion's text (as it stands: a person may have edited it) into the
    image and product; False when it cannot be accepted (failed, or gone)."""
    if suggestion.state == CaptionSuggestion.State.FAILED:
        return False
    with transaction.atomic():
        image = ProductImage.objects.select_for_update().filter(pk=suggestion.image_id).first()
        if image is None:
            return False
        alt = {"alt_text": suggestion.alt_en.strip(), "alt_text_zh": suggestion.alt_zh.strip()}
        alt = {name: value[:300] for name, value in alt.items() if value}
        if alt:
            # The index is told (products_changed): the keyword side reads alt text.
            services.image_alt_text_set(image=image, **alt)
        fields = {}
        if suggestion.description_en.strip():
            fields["description"] = suggestion.description_en.strip()
        if suggestion.description_zh.strip():
            # catalog.translations' key for the Chinese description (merged into the rest).
            fields["attributes"] = {"description_zh": suggestion.description_zh.strip()}
        if fields:
            product = Product.objects.get(pk=image.product_id)
            services.product_update(product=product, attributes_merge=True, **fields)
        CaptionSuggestion.objects.filter(pk=suggestion.pk).update(
            state=CaptionSuggestion.State.ACCEPTED, decided_at=timezone.now(), decided_by=user
        )
    return True


def caption_reject(suggestion: CaptionSuggestion, *, user=None) -> bool:
    """Say no: nothing is written (an accepted one's text stays: edit it on the image or
    product)."""
    if suggestion.state == CaptionSuggestion.State.ACCEPTED:
        return False
    CaptionSuggestion.objects.filter(pk=suggestion.pk).update(
        state=CaptionSuggestion.State.REJECTED, decided_at=timezone.now(), decided_by=user
    )
    return True
