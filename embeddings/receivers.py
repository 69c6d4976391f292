"""The index's side of the catalog's signals (``catalog.signals``): queue the embedding,
unindexing and payload tasks. Connected once, in ``EmbeddingsConfig.ready()``; nothing
else calls these.

Every task is sent only after the transaction commits, so a worker never looks for a row
that is not there yet. If the broker is down the write still succeeds: embedding batches
stay in the outbox (``embeddings.outbox``: pending rows never queued, sent again on Celery
beat's schedule); payload refreshes and unindexing are done by this process instead (a few
cheap index calls). Only when the index cannot take them either are they lost (logged):
``reconcile`` deletes orphan points; a payload stays old until the product changes again.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models.signals import post_delete, post_save

from catalog import signals
from catalog.commands import is_in_process
from embeddings import indexing, tasks
from embeddings.commands import index_claim, index_optimize
from embeddings.index import IndexUnavailable
from embeddings.indexing import PAYLOAD_FIELDS
from embeddings.models import RelevanceCutoff, Synonym
from embeddings.outbox import batch_send, task_send
from embeddings.relevance import cutoffs_forget
from embeddings.search.understanding import vocabulary_touch

logger = logging.getLogger(__name__)


def images_enqueue(image_ids: list[int]) -> None:
    """Queue images for embedding, in batches of VITRINE_EMBED_BATCH_SIZE, once the
    transaction commits; a trickle waits a moment (``coalesce_seconds``) so that its task
    embeds what arrives meanwhile."""
    size = settings.VITRINE_EMBED_BATCH_SIZE
    wait = coalesce_seconds(len(image_ids))
    for start in range(0, len(image_ids), size):
        batch = list(image_ids[start : start + size])
        transaction.on_commit(lambda batch=batch: batch_send(batch, wait))


def coalesce_seconds(count: int) -> float:
    """How long a task of ``count`` images waits in the queue: fewer than a batch, with a
    broker, VITRINE_EMBED_COALESCE_SECONDS (uploads one file per request, from the bulk
    page or the API, then share forward passes); otherwise none."""
    if is_in_process() or count >= settings.VITRINE_EMBED_BATCH_SIZE:
        return 0.0
    return settings.VITRINE_EMBED_COALESCE_SECONDS


def on_images_added(sender, image_ids: list[int], **kwargs) -> None:
    images_enqueue(image_ids)
    transaction.on_commit(vocabulary_touch, robust=True)  # new products' words become searchable


def on_images_removed(sender, image_ids: list[int], **kwargs) -> None:
    ids = list(image_ids)
    transaction.on_commit(lambda: _unindex(ids), robust=True)


def on_products_changed(sender, changes: dict[int, tuple[str, ...]], **kwargs) -> None:
    """Only a change of a field the index holds (the points' payload) is worth a task."""
    product_ids = sorted(pk for pk, fields in changes.items() if set(fields) & PAYLOAD_FIELDS)
    if product_ids:
        transaction.on_commit(vocabulary_touch, robust=True)
        transaction.on_commit(lambda: _payloads_refresh(product_ids), robust=True)


# When the broker cannot take these tasks, the web process tells the index itself: a few
# cheap calls, where a lost task would leave points with an old price, state or category
# (reconcile repairs missing and orphan points, not payloads) or a deleted photo findable.


def _payloads_refresh(product_ids: list[int]) -> None:
    if len(product_ids) == 1:
        sent = task_send(tasks.refresh_product_payload, (product_ids[0],), what=f"product {product_ids[0]}")
    else:
        sent = task_send(tasks.refresh_product_payloads, (product_ids,), what=f"{len(product_ids)} products")
    if not sent:
        _here_and_now(lambda: _payloads_write(product_ids))


def _payloads_write(product_ids: list[int]) -> None:
    for product_id in product_ids:
        indexing.product_payload_refresh(product_id=product_id)


def _unindex(image_ids: list[int]) -> None:
    if not task_send(tasks.unindex_images, (image_ids,), what=f"{len(image_ids)} images"):
        _here_and_now(lambda: indexing.images_unindex(image_ids=image_ids))


def _here_and_now(work) -> None:
    try:
        work()
    except (IndexUnavailable, DatabaseError) as exc:
        logger.warning("Neither the broker nor the index could take an index update (%s); it is lost", exc)


def on_intake_starting(sender, **kwargs) -> None:
    """In the embedded mode the command's own process will index: refuse now if it cannot
    open the store (raises IndexUnavailable, a ServiceUnavailable)."""
    index_claim()


def on_intake_finished(sender, **kwargs) -> None:
    """A command added many images in this process (the embedded mode): build the HNSW
    graph where the collection has outgrown an exact scan."""
    if is_in_process():
        index_optimize()


def on_synonyms_changed(sender, **kwargs) -> None:
    transaction.on_commit(vocabulary_touch, robust=True)


def on_cutoffs_changed(sender, **kwargs) -> None:
    """A cutoffs row was saved or deleted (the admin, a calibration): this process reads it
    again now, and once more after the commit (a search in between may have read the old one).
    Other processes read it within ``CUTOFFS_CACHE_SECONDS``."""
    cutoffs_forget()
    transaction.on_commit(cutoffs_forget)


def connect() -> None:
    post_save.connect(on_cutoffs_changed, sender=RelevanceCutoff, dispatch_uid="embeddings.cutoffs_saved")
    post_delete.connect(on_cutoffs_changed, sender=RelevanceCutoff, dispatch_uid="embeddings.cutoffs_deleted")
    post_save.connect(on_synonyms_changed, sender=Synonym, dispatch_uid="embeddings.synonym_saved")
    post_delete.connect(on_synonyms_changed, sender=Synonym, dispatch_uid="embeddings.synonym_deleted")
    signals.images_added.connect(on_images_added, dispatch_uid="embeddings.images_added")
    signals.images_removed.connect(on_images_removed, dispatch_uid="embeddings.images_removed")
    signals.products_changed.connect(on_products_changed, dispatch_uid="embeddings.products_changed")
    signals.intake_starting.connect(on_intake_starting, dispatch_uid="embeddings.intake_starting")
    signals.intake_finished.connect(on_intake_finished, dispatch_uid="embeddings.intake_finished")
