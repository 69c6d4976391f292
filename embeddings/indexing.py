"""Embedding images into the index: read → decode/preprocess → encode → write, in batches.

The work behind the Celery tasks, as plain functions. Each image ends ``indexed`` (with the
space it was indexed in) or ``failed`` with a reason a person can act on.
"""

from __future__ import annotations

import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from catalog.intake import ImageRejected, image_decode_rgb
from catalog.models import Product, ProductImage
from embeddings.index import ImagePoint, attribute_field, get_index
from embeddings.keywords import product_terms
from embeddings.model import get_encoder
from embeddings.spaces import building_space_note, serving_encoder, space_switch_if_complete
from searchsite.caching import cache_call

logger = logging.getLogger(__name__)


@dataclass
class EmbedReport:
    indexed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)


# The product fields copied into each of its images' points (the payload), so the index
# can filter on them; a change to any of them refreshes the payload.
# (Title, description and external id are the keyword side's: its terms are a payload too.)
PAYLOAD_FIELDS = frozenset(
    {"category", "brand", "price", "is_active", "attributes", "title", "description", "external_id"}
    # An image's alt text (catalog.services.image_alt_text_set) is keyword text too.
    | {"alt_text", "alt_text_zh"}
)


def product_payload(product: Product, keywords: dict[str, float] | None = None) -> dict:
    """The product's fields its points carry. ``keywords``: its terms (computed if not given)."""
    attributes = product.attributes if isinstance(product.attributes, dict) else {}
    if keywords is None:
        keywords = product_terms(product)
    return {
        "category": product.category,
        "brand": product.brand,
        "price": float(product.price) if product.price is not None else None,
        "is_active": product.is_active,
        # For sorting by newest without reading the product rows.
        "created": product.created_at.timestamp(),
        # Every attribute, for the search engine's facets over its candidates.
        "attributes": attributes,
        # The faceted attributes (accepted tags among them) as indexed keyword lists, for
        # filters in the index. (None when absent, so that a refresh clears a removed value.)
        **{attribute_field(key): attribute_keywords(attributes.get(key)) for key in settings.VITRINE_FACET_ATTRIBUTES},
        # The keyword side's terms, for "every word matches" filters (weights: the sparse vector).
        "terms": sorted(keywords),
    }


def attribute_keywords(value) -> str | list[str] | None:
    """An attribute's value as the keywords filters match: strings kept, numbers and
    booleans written as the search page shows them ("true", "12")."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, (str, int, float)) and str(v)] or None
    return None


def images_embed(*, image_ids: list[int]) -> EmbedReport:
    """Embed and index these images. Raises IndexUnavailable / ModelUnavailable (retryable)."""
    report = EmbedReport()
    encoder = get_encoder()
    space = encoder.space
    index = get_index()
    index.ensure(space)
    # After a model change the live space still serves searches: new images go there too.
    building = building_space_note(encoder)

    started = time.monotonic()
    images = list(ProductImage.objects.select_related("product").filter(pk__in=image_ids).order_by("pk"))
    waiting = []
    for image in images:
        # Idempotent: the file of a row never changes, so indexed in this space means done.
        if image.state == ProductImage.State.INDEXED and image.embedding_space == space.id:
            report.skipped.append(image.pk)
        else:
            waiting.append(image)
    to_embed, decoded, vectors, read_seconds, encode_seconds = _encode_pipelined(encoder, waiting, report)

    started = time.monotonic()
    # Once per product (its terms read its photos' alt text: a query).
    products = {image.product_id: image.product for image in to_embed}
    keywords = {product_id: product_terms(product) for product_id, product in products.items()}
    points = [
        ImagePoint(
            image_id=image.pk,
            product_id=image.product_id,
            vector=vector,
            payload=product_payload(image.product, keywords[image.product_id]),
            keywords=keywords[image.product_id],
        )
        for image, vector in zip(to_embed, vectors, strict=True)
    ]
    index.upsert(space, points)
    embedded_ids = [image.pk for image in to_embed]
    if building is not None:
        _live_space_also(index, building, to_embed, decoded, points)
    duplicates = index.nearest_older(
        space,
        {image.pk: vector for image, vector in zip(to_embed, vectors, strict=True) if not image.duplicate_kept},
        threshold=settings.VITRINE_NEAR_DUPLICATE_THRESHOLD,
    )
    with transaction.atomic():
        now = timezone.now()
        ProductImage.objects.filter(pk__in=embedded_ids).update(
            state=ProductImage.State.INDEXED, error="", embedding_space=space.id, indexed_at=now, updated_at=now
        )
        # A point can outlive its row for a moment (a delete in flight): only real images count.
        alive = set(
            ProductImage.objects.filter(pk__in=[o for o, _ in duplicates.values()]).values_list("pk", flat=True)
        )
        for image_id, (other_id, score) in duplicates.items():
            if other_id in alive:
                ProductImage.objects.filter(pk=image_id).update(
                    duplicate_of_id=other_id, duplicate_score=round(score, 5), updated_at=now
                )
        for image_id, reason in report.failed.items():
            ProductImage.objects.filter(pk=image_id).update(
                state=ProductImage.State.FAILED, error=reason, updated_at=now
            )
        still_there = set(ProductImage.objects.filter(pk__in=embedded_ids).values_list("pk", flat=True))
    # An image deleted while its batch ran must not leave its point behind.
    vanished = [image_id for image_id in embedded_ids if image_id not in still_there]
    if vanished:
        index.delete_images(vanished)
    # A product edited while the batch ran: its newer fields may already have been written
    # to the index by refresh_product_payload, and this batch just wrote the older ones.
    written = {point.product_id: point.payload for point in points}
    for product in Product.objects.filter(pk__in=written):
        terms = product_terms(product)
        payload = product_payload(product, terms)
        if payload != written[product.pk]:
            index.set_product_payload(product.pk, payload, terms)
    report.indexed = [image_id for image_id in embedded_ids if image_id in still_there]
    if building is not None:
        space_switch_if_complete()
    write_seconds = time.monotonic() - started

    logger.info(
        "Embedded batch of %d: %d indexed, %d skipped, %d failed; read %.2f s, encode %.2f s, write %.2f s",
        len(image_ids),
        len(report.indexed),
        len(report.skipped),
        len(report.failed),
        read_seconds,
        encode_seconds,
        write_seconds,
    )
    return report


# Pending images older than this are left to reconcile (they were not part of a trickle).
COALESCE_WINDOW_SECONDS = 600


def images_waiting_claim(*, exclude: list[int]) -> list[int]:
    """Up to a batch (less ``exclude``) of other recent pending images, each claimed in the
    cache for this task only, so concurrent tasks do not embed the same ones twice. None
    when coalescing is off, the batch is full, or the cache cannot say."""
    room = settings.VITRINE_EMBED_BATCH_SIZE - len(exclude)
    if not settings.VITRINE_EMBED_COALESCE_SECONDS or room <= 0:
        return []
    since = timezone.now() - timedelta(seconds=COALESCE_WINDOW_SECONDS)
    waiting = (
        ProductImage.objects.filter(state=ProductImage.State.PENDING, created_at__gte=since)
        .exclude(pk__in=exclude)
        .order_by("pk")
        .values_list("pk", flat=True)[: room * 2]
    )
    claimed = []
    for image_id in waiting:
        # A cache that is down claims nothing: the batch is embedded alone.
        if cache_call("add", False, f"vitrine:embed-claim:{image_id}", 1, COALESCE_WINDOW_SECONDS):
            claimed.append(image_id)
            if len(claimed) == room:
                break
    return claimed


# Photos per forward pass in the pipeline: small enough that decoding the next ones
# overlaps the forward pass of these, large enough to batch well.
PIPELINE_CHUNK = 16


def _prepared(encoder, image: ProductImage, min_side: int):
    rgb = image_decode_rgb(content=_read(image), min_side=min_side)
    return rgb, encoder.preprocess(rgb)


def _encode_pipelined(encoder, images: list[ProductImage], report: EmbedReport):
    """Read, decode and preprocess photos on VITRINE_DECODE_THREADS threads while the model
    encodes the chunk before (Pillow and torch release the GIL). Returns the images
    encoded, their decoded pixels, their vectors, and the seconds spent waiting for
    decoding and encoding."""
    factor = settings.VITRINE_DECODE_DRAFT_FACTOR
    min_side = encoder.input_side * factor if factor else 0
    threads = settings.VITRINE_DECODE_THREADS
    to_embed, decoded, parts = [], [], []
    read_seconds = encode_seconds = 0.0
    with contextlib.ExitStack() as stack:
        if threads:
            pool = stack.enter_context(ThreadPoolExecutor(threads, thread_name_prefix="vitrine-decode"))
            futures = [pool.submit(_prepared, encoder, image, min_side) for image in images]
            results = [future.result for future in futures]
        else:
            results = [lambda image=image: _prepared(encoder, image, min_side) for image in images]
        for start in range(0, len(images), PIPELINE_CHUNK):
            started = time.monotonic()
            tensors = []
            chunk = slice(start, start + PIPELINE_CHUNK)
            for image, result in zip(images[chunk], results[chunk], strict=True):
                try:
                    rgb, tensor = result()
                except (ImageRejected, OSError) as exc:
                    report.failed[image.pk] = _read_failure_reason(exc)
                    continue
                to_embed.append(image)
                decoded.append(rgb)
                tensors.append(tensor)
            read_seconds += time.monotonic() - started
            started = time.monotonic()
            parts.append(encoder.tensors_encode(tensors))
            encode_seconds += time.monotonic() - started
    vectors = np.concatenate(parts) if parts else np.zeros((0, encoder.space.dimension), dtype=np.float32)
    return to_embed, decoded, vectors, read_seconds, encode_seconds


def _live_space_also(index, building, images: list[ProductImage], decoded: list, points: list[ImagePoint]) -> None:
    """Index in the live space too the images it lacks (new ones, while a build runs)."""
    serving = serving_encoder()
    if serving.space.id == building.embedding_space:
        return
    present = index.vectors(serving.space, [image.pk for image in images])
    fresh = [n for n, image in enumerate(images) if image.pk not in present]
    if not fresh:
        return
    vectors = serving.images_encode([decoded[n] for n in fresh])
    index.upsert(
        serving.space,
        [
            ImagePoint(
                image_id=images[n].pk,
                product_id=images[n].product_id,
                vector=vector,
                payload=points[n].payload,
                keywords=points[n].keywords,
            )
            for n, vector in zip(fresh, vectors, strict=True)
        ],
    )


def images_mark_failed(*, image_ids: list[int], reason: str) -> None:
    ProductImage.objects.filter(pk__in=image_ids).exclude(state=ProductImage.State.INDEXED).update(
        state=ProductImage.State.FAILED, error=reason, updated_at=timezone.now()
    )


def product_payload_refresh(*, product_id: int) -> None:
    product = Product.objects.filter(pk=product_id).first()
    # A product without photos has no points to update (and the update is a filtered scan).
    if product is None or not ProductImage.objects.filter(product_id=product_id).exists():
        return
    terms = product_terms(product)
    get_index().set_product_payload(product_id, product_payload(product, terms), terms)


def images_unindex(*, image_ids: list[int]) -> None:
    get_index().delete_images(image_ids)


def _read(image: ProductImage) -> bytes:
    with image.file.open("rb") as handle:
        return handle.read()


def _read_failure_reason(exc: Exception) -> str:
    if isinstance(exc, ImageRejected):
        return exc.message
    if isinstance(exc, FileNotFoundError):
        return "The stored image file is missing; upload the image again."
    return f"The stored image file could not be read ({exc})."
