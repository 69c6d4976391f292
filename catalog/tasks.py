"""Catalog tasks (queue ``catalog``): feed imports started from the admin."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db.models import F
from django.utils import timezone

from catalog.feeds import FeedError, FeedReport, feed_format, feed_import, feed_read
from catalog.models import FeedImport

logger = logging.getLogger(__name__)
PROGRESS_EVERY = 10


@shared_task(soft_time_limit=6 * 3600, time_limit=6 * 3600 + 60)
def import_feed(feed_import_id: int) -> None:
    job = FeedImport.objects.filter(pk=feed_import_id).first()
    if job is None or job.state == FeedImport.State.DONE:
        return  # deleted, or a redelivery of a finished import
    from embeddings import sync

    FeedImport.objects.filter(pk=job.pk).update(state=FeedImport.State.RUNNING, rows_done=0, error="")
    try:
        with job.file.open("rb") as handle:
            content = handle.read()
        rows = list(feed_read(content, format=job.format or feed_format(job.name or job.file.name, content)))
    except Exception as exc:  # noqa: BLE001 - any reading problem ends the import with its reason
        message = exc.message if isinstance(exc, FeedError) else f"The feed file cannot be read: {exc!r}"
        FeedImport.objects.filter(pk=job.pk).update(
            state=FeedImport.State.FAILED, error=message, finished_at=timezone.now()
        )
        return
    FeedImport.objects.filter(pk=job.pk).update(rows_total=len(rows))
    done = 0

    def on_row(row) -> None:
        nonlocal done
        done += 1
        if done % PROGRESS_EVERY == 0:
            FeedImport.objects.filter(pk=job.pk).update(rows_done=F("rows_done") + PROGRESS_EVERY)

    report = FeedReport()
    try:
        feed_import(rows, on_row=on_row, report=report)
    except BaseException as exc:  # the soft time limit too
        logger.exception("Feed import %s failed", job.pk)
        FeedImport.objects.filter(pk=job.pk).update(
            state=FeedImport.State.FAILED, error=f"The import stopped: {exc!r}", finished_at=timezone.now()
        )
        raise
    finally:
        # What was added before a failure is indexed all the same.
        sync.images_enqueue(report.new_image_ids)
    FeedImport.objects.filter(pk=job.pk).update(
        state=FeedImport.State.DONE,
        rows_done=len(rows),
        created=report.created,
        updated=report.updated,
        unchanged=report.unchanged,
        failed=report.failed,
        images_added=report.images_added,
        images_removed=report.images_removed,
        image_failures=report.image_failures,
        report=report.csv(),
        finished_at=timezone.now(),
    )
    logger.info("Feed import %s: %s", job.pk, report.summary())
