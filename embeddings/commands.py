"""Helpers shared by the management commands that add images."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.core.management.base import CommandError
from tqdm import tqdm

from catalog.models import ProductImage
from embeddings import sync
from embeddings.index import IndexUnavailable, get_index


def is_in_process() -> bool:
    """True when tasks run in this process (no broker): the embedded mode."""
    return bool(settings.CELERY_TASK_ALWAYS_EAGER)


def index_claim_for_command() -> None:
    """In the embedded mode this process will index: stop early if it cannot open the store."""
    if not is_in_process():
        return
    try:
        get_index()
    except IndexUnavailable as exc:
        raise CommandError(str(exc)) from None


@dataclass(frozen=True)
class EmbedRun:
    queued: int
    seconds: float
    failures: dict[int, str]

    @property
    def images_per_second(self) -> float:
        return self.queued / self.seconds if self.seconds > 0 else 0.0


def images_embed_with_progress(image_ids: list[int], *, show_progress: bool = True) -> EmbedRun:
    """Queue the images; in the embedded mode embed them here, batch by batch, with a bar."""
    started = time.monotonic()
    if not is_in_process():
        sync.images_enqueue(image_ids)
        return EmbedRun(queued=len(image_ids), seconds=0.0, failures={})
    size = settings.VITRINE_EMBED_BATCH_SIZE
    with tqdm(total=len(image_ids), desc="Embedding", unit="img", disable=not (image_ids and show_progress)) as bar:
        for start in range(0, len(image_ids), size):
            batch = image_ids[start : start + size]
            sync.images_enqueue(batch)  # outside a transaction: runs now, in this process
            bar.update(len(batch))
    failures = dict(
        ProductImage.objects.filter(pk__in=image_ids, state=ProductImage.State.FAILED).values_list("pk", "error")
    )
    return EmbedRun(queued=len(image_ids), seconds=time.monotonic() - started, failures=failures)
