"""Celery tasks: thin wrappers that take primitive ids and call one function of ``indexing``.

All run on the ``embeddings`` queue (CELERY_TASK_ROUTES), but captions (``captions``: a slow
remote API must not hold back embedding). ``acks_late`` with
``reject_on_worker_lost`` (settings) means a batch whose worker is killed goes back to
the queue; the work is idempotent, so running it again is safe.
"""

from __future__ import annotations

import logging
import random

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from embeddings import indexing
from embeddings.index import IndexUnavailable
from embeddings.model import ModelUnavailable

logger = logging.getLogger(__name__)

MAX_RETRIES = 8
RETRY_BASE_SECONDS = 5
RETRY_CAP_SECONDS = 600
# An embedding batch's time limits (soft, then hard). The broker's visibility timeout must
# exceed the hard one, or a slow batch is handed to a second worker (a system check says so).
BATCH_SOFT_SECONDS = 600
BATCH_HARD_SECONDS = 660
# Images per caption task: each is one call to a remote vision model (seconds each, up to
# VITRINE_CAPTION_TIMEOUT × retries), so a batch stays well inside the time limits above and
# a worker that also runs feed imports is not held long.
CAPTION_BATCH_SIZE = 4
# A caption task waiting for the per-minute budget is retried this often at most (a
# minute each: an hour of a spent budget, then the images are left for the next run).
CAPTION_MAX_RETRIES = 60
# The database is down, restarting or unreachable: a hiccup to wait out, like the store's.
DATABASE_ERRORS = (OperationalError, InterfaceError)


def retry_countdown(retries: int) -> float:
    """Exponential backoff with full jitter, capped, and at most half the broker's
    visibility timeout: a worker holds a waiting retry unacknowledged, and one held past
    that timeout is handed out again (the same batch twice)."""
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    cap = min(RETRY_CAP_SECONDS, visibility / 2)
    return random.uniform(0, min(cap, RETRY_BASE_SECONDS * 2**retries))


@shared_task(bind=True, max_retries=MAX_RETRIES, soft_time_limit=BATCH_SOFT_SECONDS, time_limit=BATCH_HARD_SECONDS)
def embed_images(self, image_ids: list[int]) -> None:
    try:
        # A small batch takes along other images waiting (a trickle of uploads): one
        # forward pass for many; their own tasks then find them indexed and skip.
        image_ids = list(image_ids) + indexing.images_waiting_claim(exclude=image_ids)
        indexing.images_embed(image_ids=image_ids)
    except ModelUnavailable as exc:
        # A configuration problem, not a hiccup: retrying would not help.
        indexing.images_mark_failed(image_ids=image_ids, reason=f"The model could not be loaded: {exc}")
    except DATABASE_ERRORS as exc:
        # Marking the rows needs the database too: retry the batch (it is idempotent). Given
        # up, the rows stay pending, and reconcile (scheduled) queues them again.
        _database_retry(self, exc, f"batch of {len(image_ids)} images")
    except IndexUnavailable as exc:
        if self.request.retries >= self.max_retries:
            indexing.images_mark_failed(
                image_ids=image_ids,
                reason=f"The vector store stayed unavailable after {self.max_retries} retries ({exc}). "
                "Re-embed the image once it is back.",
            )
            return
        logger.warning("Vector store unavailable, retrying batch of %d: %s", len(image_ids), exc)
        raise self.retry(exc=exc, countdown=retry_countdown(self.request.retries)) from exc
    except Exception as exc:
        # A bug or something unforeseen: say so on the rows, so no image stays pending
        # silently, and let Celery log the traceback.
        indexing.images_mark_failed(
            image_ids=image_ids,
            reason=f"Indexing failed unexpectedly ({type(exc).__name__}: {exc}); see the worker log, then re-embed.",
        )
        raise


@shared_task(bind=True, max_retries=MAX_RETRIES)
def refresh_product_payload(self, product_id: int) -> None:
    try:
        indexing.product_payload_refresh(product_id=product_id)
    except DATABASE_ERRORS as exc:
        _database_retry(self, exc, f"the payload of product {product_id}")
    except IndexUnavailable as exc:
        raise self.retry(exc=exc, countdown=retry_countdown(self.request.retries)) from exc


@shared_task(bind=True, max_retries=MAX_RETRIES)
def refresh_product_payloads(self, product_ids: list[int]) -> None:
    """Many products at once (a bulk upsert); a retry redoes them all (idempotent)."""
    try:
        for product_id in product_ids:
            indexing.product_payload_refresh(product_id=product_id)
    except DATABASE_ERRORS as exc:
        _database_retry(self, exc, f"the payloads of {len(product_ids)} products")
    except IndexUnavailable as exc:
        raise self.retry(exc=exc, countdown=retry_countdown(self.request.retries)) from exc


@shared_task(bind=True, max_retries=MAX_RETRIES)
def unindex_images(self, image_ids: list[int]) -> None:
    try:
        indexing.images_unindex(image_ids=image_ids)
    except DATABASE_ERRORS as exc:
        _database_retry(self, exc, f"unindexing {len(image_ids)} images")
    except IndexUnavailable as exc:
        raise self.retry(exc=exc, countdown=retry_countdown(self.request.retries)) from exc


@shared_task(bind=True, max_retries=MAX_RETRIES, soft_time_limit=1800, time_limit=1900)
def reconcile_index(self) -> None:
    """Celery beat's schedule (VITRINE_RECONCILE_MINUTES): queue again the images whose task
    was lost (pending too long, after a broker or database outage) or whose point is
    missing, and delete orphan points."""
    from embeddings.reconcile import reconcile

    try:
        report = reconcile()
    except DATABASE_ERRORS as exc:
        _database_retry(self, exc, "the scheduled reconcile")
        return
    except IndexUnavailable as exc:
        logger.warning("Scheduled reconcile skipped: %s", exc)  # the next one will try again
        return
    if report.requeued or report.orphans_deleted:
        logger.info(
            "Scheduled reconcile: %d images re-queued, %d orphan points deleted",
            report.requeued,
            report.orphans_deleted,
        )


@shared_task(bind=True, max_retries=0, soft_time_limit=300, time_limit=360)
def flush_outbox(self) -> None:
    """Celery beat's schedule (VITRINE_OUTBOX_SECONDS): send the embedding tasks a broker
    outage kept from being sent (``receivers.outbox_flush``)."""
    from embeddings.outbox import outbox_flush

    try:
        sent = outbox_flush()
    except DATABASE_ERRORS as exc:
        connection.close()
        logger.warning("Outbox not flushed (the database is unavailable): %s", exc)  # next round
        return
    if sent:
        logger.info("Outbox: %d images sent to the embedding queue", sent)


def _database_retry(task, exc: Exception, what: str) -> None:
    """Retry a task the database failed, with backoff, on a fresh connection; after the
    last retry, log it and end (what the rows say stays as it was: pending images are
    queued again by reconcile)."""
    connection.close()  # a broken connection is not reused by the retry
    if task.request.retries >= task.max_retries:
        logger.error("Database unavailable; gave up %s after %d retries: %s", what, task.max_retries, exc)
        return
    logger.warning("Database unavailable, retrying %s: %s", what, exc)
    raise task.retry(exc=exc, countdown=retry_countdown(task.request.retries)) from exc


@shared_task(
    bind=True, max_retries=CAPTION_MAX_RETRIES, soft_time_limit=BATCH_SOFT_SECONDS, time_limit=BATCH_HARD_SECONDS
)
def caption_images(self, image_ids: list[int]) -> None:
    """Caption these images (``captions.images_caption``): a pending suggestion each, or a
    failed one with the reason. When the per-minute budget is spent or the service rate
    limits us, the images not yet asked are retried once it allows (never marked failed)."""
    from embeddings import captions
    from embeddings.generative import GenerativeError

    done: list[int] = []
    try:
        report = captions.images_caption(image_ids=image_ids, progress=lambda image_id, _: done.append(image_id))
    except SoftTimeLimitExceeded:
        # A slow API (timeouts × retries): the photos not done yet go back to the queue
        # (the one in flight too: writing its suggestion again is harmless).
        finished = set(done)
        rest = [image_id for image_id in image_ids if image_id not in finished]
        if not done:  # not even one photo in the time: queuing them again would loop
            logger.error("Caption batch ran out of time on its first photo; %d photos left as they were", len(rest))
            return
        logger.warning("Caption batch ran out of time: %d photos queued again", len(rest))
        caption_images.apply_async((rest,))
        return
    except GenerativeError as exc:  # not_configured: turned off since it was queued
        logger.warning("Captions not written for %d images: %s", len(image_ids), exc.message)
        return
    except DATABASE_ERRORS as exc:
        _database_retry(self, exc, f"captions of {len(image_ids)} images")
        return
    if not report.waiting:
        return
    if self.request.is_eager or self.request.retries >= self.max_retries:
        # In-process (no broker) a retry would run at once, into the same spent budget.
        logger.warning(
            "Caption budget spent: %d images left without a suggestion (run the action or "
            "`manage.py caption --missing` again)",
            len(report.waiting),
        )
        return
    logger.info("Caption budget spent: %d images wait %.0f s", len(report.waiting), report.retry_after)
    raise self.retry(args=[report.waiting], countdown=report.retry_after)
