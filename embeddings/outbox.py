"""The outbox: embedding batches that could not be handed to the broker.

An upload commits its rows, then sends the batch's task (``receivers.images_enqueue``). A
broker that is down (Redis restarting) cannot take it; the upload is still answered, and
its images wait, pending with no ``queued_at``, until ``outbox_flush`` (Celery beat, every
VITRINE_OUTBOX_SECONDS) sends them. A task lost after the broker took it is reconcile's
(stale pending, ``embeddings.reconcile``).
"""

from __future__ import annotations

import logging
import time
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
# After a hand-off fails, the next ones in this process go straight to the outbox for this
# long: a broker that is frozen costs each attempt CELERY_BROKER_SOCKET_TIMEOUT, and every
# upload meanwhile would pay it.
BROKER_RETRY_SECONDS = 5.0
_broker_down_until = 0.0


def broker_outage_forget() -> None:
    """Hand batches to the broker again at once (tests; each starts with a broker that answers)."""
    global _broker_down_until
    _broker_down_until = 0.0


def batch_send(image_ids: list[int], wait: float = 0.0) -> bool:
    """Hand one batch to the broker and note it on the rows. A broker that cannot take it
    leaves the rows pending with no ``queued_at``: the outbox, which ``outbox_flush``
    (Celery beat, every VITRINE_OUTBOX_SECONDS) sends again. The write that made them
    stands either way."""
    if not task_send(tasks.embed_images, (image_ids,), countdown=wait or None, what=f"{len(image_ids)} images"):
        return False  # they wait in the outbox
    try:
        services.images_mark_queued(image_ids=image_ids)
    except DatabaseError as exc:
        # Sent, but not noted: the outbox sends it once more (embedding twice is harmless).
        logger.warning("Could not note %d images as queued: %s", len(image_ids), exc)
    return True


def task_send(task, args: tuple, *, countdown: float | None = None, what: str = "") -> bool:
    """Send a task from a request; False (logged) when the broker cannot take it.

    A second try a moment later when the connection was refused or reset (Redis
    restarting; the pool's connection went stale), none after a timeout: a frozen broker
    costs each try CELERY_BROKER_SOCKET_TIMEOUT, and kombu's own retry policy reconnects
    and tries again several times (9 s for one upload, measured). After a failure, sends
    from this process give up at once for BROKER_RETRY_SECONDS."""
    global _broker_down_until
    if time.monotonic() < _broker_down_until:
        logger.info("Broker unavailable moments ago: %s not sent (%s)", task.name, what)
        return False
    for attempt in (1, 2):
        try:
            task.apply_async(args, countdown=countdown, retry=False)
            return True
        except Exception as exc:  # noqa: BLE001 - kombu raises its own and the socket's errors
            failure = exc
            if attempt == 2 or _timed_out(exc):
                break
            time.sleep(0.2)
    _broker_down_until = time.monotonic() + BROKER_RETRY_SECONDS
    logger.warning("Broker unavailable: %s (%s) not sent: %s", task.name, what, failure)
    return False


def _timed_out(exc: BaseException | None) -> bool:
    """A timeout anywhere in the chain: kombu raises its OperationalError from redis-py's
    TimeoutError, raised from the socket's (the built-in TimeoutError)."""
    while exc is not None:
        if isinstance(exc, TimeoutError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


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
