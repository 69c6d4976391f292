"""Drift between the database (the truth) and the vector index, and its repair.

Drift happens when a worker gave up (the store stayed down past the retries), when
someone deleted points or rows behind Vitrine's back, or after a model change:

- **missing**: images the database says are indexed in the current space, with no point;
- **orphans**: points whose image row is gone (an unindex task that never ran);
- **other space**: images indexed with another model than the configured one;
- **pending**: images waiting for a worker (not drift by itself; a stuck queue shows here).
- **stale pending**: queued more than VITRINE_STALE_PENDING_SECONDS ago and still pending:
  the task was lost after the broker took it (a broker restarted without its data, a
  worker that gave up on the database). Images whose task never reached the broker are
  the outbox's (``receivers.outbox_flush``), sent again within a minute.

:func:`reconcile` re-queues missing, other-space and stale pending images, and deletes
orphan points.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from catalog import services
from catalog.models import ProductImage
from embeddings.index import get_index
from embeddings.model import EmbeddingSpace, get_encoder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Drift:
    space: EmbeddingSpace
    points: int
    missing: list[int]
    orphans: list[int]
    other_space: list[int]
    pending: int
    other_collections: dict[str, int] = field(default_factory=dict)
    # Queued longer than VITRINE_STALE_PENDING_SECONDS ago, still pending: their task was lost.
    stale_pending: list[int] = field(default_factory=list)

    @property
    def is_clean(self) -> bool:
        return not (self.missing or self.orphans or self.other_space or self.stale_pending)


@dataclass(frozen=True)
class ReconcileReport:
    requeued: int
    orphans_deleted: int


def index_drift(space: EmbeddingSpace | None = None) -> Drift:
    space = space or get_encoder().space
    stale = timedelta(seconds=settings.VITRINE_STALE_PENDING_SECONDS)
    index = get_index()
    in_index = index.image_ids(space)
    indexed_here = set(
        ProductImage.objects.filter(state=ProductImage.State.INDEXED, embedding_space=space.id).values_list(
            "pk", flat=True
        )
    )
    existing = set(ProductImage.objects.filter(pk__in=in_index).values_list("pk", flat=True))
    other_space = list(
        ProductImage.objects.filter(state=ProductImage.State.INDEXED)
        .exclude(embedding_space=space.id)
        .values_list("pk", flat=True)
    )
    return Drift(
        space=space,
        points=len(in_index),
        missing=sorted(indexed_here - in_index),
        orphans=sorted(in_index - existing),
        other_space=sorted(other_space),
        pending=ProductImage.objects.filter(state=ProductImage.State.PENDING).count(),
        other_collections=index.other_collections(space),
        stale_pending=sorted(
            ProductImage.objects.filter(state=ProductImage.State.PENDING)
            .filter(
                # queued long ago; or never queued, and the outbox has not sent it either
                Q(queued_at__lt=timezone.now() - stale) | Q(queued_at=None, updated_at__lt=timezone.now() - stale)
            )
            .values_list("pk", flat=True)
        ),
    )


def reconcile(drift: Drift | None = None) -> ReconcileReport:
    """Repair the drift: re-queue what the index lacks (and stale pending images, whose
    task was lost), delete what it should not hold."""
    drift = drift or index_drift()
    requeue = sorted(set(drift.missing) | set(drift.other_space) | set(drift.stale_pending))
    if drift.orphans:
        get_index().delete_images(drift.orphans)
    services.images_reembed(image_ids=requeue)
    logger.info("Reconciled the index: %d images re-queued, %d orphan points deleted", len(requeue), len(drift.orphans))
    return ReconcileReport(requeued=len(requeue), orphans_deleted=len(drift.orphans))
