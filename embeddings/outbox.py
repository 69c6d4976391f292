"""The outbox: embedding batches that could not be handed to the broker.

An upload commits its rows, then sends the batch's task (``receivers.images_enqueue``). A
broker that is down (Redis restarting) cannot take it; the upload is still answered, and
its images wait, pending with no ``queued_at``, until ``outbox_flush`` (Celery beat, every
VITRINE_OUTBOX_SECONDS) sends them. A task lost after the broker took it is reconcile's
(stale pending, ``embeddings.reconcile``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from catalog import services
from catalog.models import ProductImage
from embeddings import tasks

logger = logging.getLogger(__name__)
# An image is in the outbox once its commit's own hand-off has had this long to happen.
OUTBOX_GRACE = timedelta(seconds=30)
# Images sent per round (the next round sends the rest).
OUTBOX_MAX = 10_000


def batch_send(image_ids: list[int], wait: float = 0.0) -> bool:
    """Hand one batch to the broker and note it on the rows. A broker that cannot take it
    leaves the rows pending with no ``queued_at``: the outbox, which ``outbox_flush``
    (Celery beat, every VITRINE_OUTBOX_SECONDS) sends again. The write that made them
    stands either way."""
    try:
        tasks.embed_images.apply_async((image_ids,), countdown=wait or None)
    except Exception as exc:  # noqa: BLE001 - kombu raises its own and the socket's errors
        logger.warning("Broker unavailable: %d images wait in the outbox (%s)", len(image_ids), exc)
        return False
    try:
        services.images_mark_queued(image_ids=image_ids)
    except DatabaseError as exc:
        # Sent, but not noted: the outbox sends it once more (embedding twice is harmless).
        logger.warning("Could not note %d images as queued: %s", len(image_ids), exc)
    return True


def outbox_flush() -> int:
    """Send again the images whose task never reached the broker (pending, never queued,
    older than a moment, so a commit's own hand-off is not doubled). Returns how many."""
    settled = timezone.now() - OUTBOX_GRACE
    waiting = list(
        ProductImage.objects.filter(state=ProductImage.State.PENDING, queued_at=None, updated_at__lt=settled)
        .order_by("pk")
        .values_list("pk", flat=True)[:OUTBOX_MAX]
    )
    size = settings.VITRINE_EMBED_BATCH_SIZE
    sent = 0
    for start in range(0, len(waiting), size):
        batch = waiting[start : start + size]
        if not batch_send(batch):
            break  # the broker is still away: the next round tries again
        sent += len(batch)
    return sent
