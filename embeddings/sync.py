"""Tell the index what changed in the catalog. Called by the edges (views, API, admin,
commands) right after a catalog service; every task is sent only after the transaction
commits, so a worker never looks for a row that is not there yet.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from catalog import services
from catalog.services import ProductUpsertResult
from embeddings import tasks


def images_enqueue(image_ids: list[int]) -> None:
    """Queue images for embedding, in batches of VITRINE_EMBED_BATCH_SIZE."""
    size = settings.VITRINE_EMBED_BATCH_SIZE
    for start in range(0, len(image_ids), size):
        batch = list(image_ids[start : start + size])
        # robust: if the broker is down the rows stay pending (the health endpoint counts
        # them) and `manage.py reindex` queues them again; the request itself succeeds.
        transaction.on_commit(lambda batch=batch: tasks.embed_images.delay(batch), robust=True)


def images_requeue(image_ids: list[int]) -> None:
    """Embed these images again: mark them pending and queue them (after the commit)."""
    if not image_ids:
        return
    with transaction.atomic():
        services.image_mark_pending(image_ids=image_ids)
        images_enqueue(image_ids)


def product_changed(result: ProductUpsertResult) -> None:
    if result.is_index_payload_changed:
        product_id = result.product.pk
        transaction.on_commit(lambda: tasks.refresh_product_payload.delay(product_id), robust=True)


def products_changed(results: list[ProductUpsertResult]) -> None:
    """Like product_changed, for many products: one task for all of them."""
    product_ids = [result.product.pk for result in results if result.is_index_payload_changed]
    if product_ids:
        transaction.on_commit(lambda: tasks.refresh_product_payloads.delay(product_ids), robust=True)


def images_removed(image_ids: list[int]) -> None:
    if image_ids:
        ids = list(image_ids)
        transaction.on_commit(lambda: tasks.unindex_images.delay(ids), robust=True)
