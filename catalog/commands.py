"""Helpers for the management commands that add images (here and in other apps)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.management.base import CommandError
from tqdm import tqdm

from catalog import signals
from catalog.models import ProductImage
from searchsite.errors import ServiceUnavailable

logger = logging.getLogger(__name__)


def is_in_process() -> bool:
    """True when tasks run in this process (no broker): the embedded mode."""
    return bool(settings.CELERY_TASK_ALWAYS_EAGER)


def intake_start(sender: object) -> None:
    """Tell the index a command is about to add images; stop with its reason if this
    process is to embed them and cannot (the embedded store is held by another process)."""
    try:
        signals.intake_starting.send(sender=sender)
    except ServiceUnavailable as exc:
        raise CommandError(str(exc)) from None


def intake_finish(sender: object) -> None:
    """Tell the index a command has added its images (a failure there is logged: the
    images are in, whatever the index does next)."""
    for receiver, outcome in signals.intake_finished.send_robust(sender=sender):
        if isinstance(outcome, Exception):
            logger.warning("After the intake, %s failed: %s", receiver.__name__, outcome)


@dataclass(frozen=True)
class IndexRun:
    queued: int
    seconds: float
    failures: dict[int, str]

    @property
    def images_per_second(self) -> float:
        return self.queued / self.seconds if self.seconds > 0 else 0.0


def held_images_index(held: signals.HeldSignals, *, show_progress: bool = True) -> IndexRun:
    """Send what a ``signals.deferred()`` block held: the added images go in batches of
    VITRINE_EMBED_BATCH_SIZE with a progress bar, and in the embedded mode each batch is
    embedded here before the next. Returns how many, how long, and which failed (why)."""
    image_ids = list(dict.fromkeys(held.added))
    started = time.monotonic()
    with tqdm(total=len(image_ids), desc="Embedding", unit="img", disable=not (image_ids and show_progress)) as bar:
        held.flush(batch_size=settings.VITRINE_EMBED_BATCH_SIZE, progress=bar.update)
    seconds = time.monotonic() - started
    failures = dict(
        ProductImage.objects.filter(pk__in=image_ids, state=ProductImage.State.FAILED).values_list("pk", "error")
    )
    return IndexRun(queued=len(image_ids), seconds=seconds, failures=failures)
