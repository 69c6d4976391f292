"""Catalog tasks (queue ``catalog``): feed imports started from the admin."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.db.models import F, Q
from django.utils import timezone

from catalog import signals
from catalog.feeds.formats import FeedError, feed_format, feed_read
from catalog.feeds.importer import FeedReport, feed_import
from catalog.models import FeedImport

logger = logging.getLogger(__name__)
PROGRESS_EVERY = 10
# A running import beats at least this often (every PROGRESS_EVERY rows; a chunk's image
# downloads take well under a minute); one silent for longer lost its worker.
STALE_HEARTBEAT = timedelta(minutes=10)


@shared_task(soft_time_limit=6 * 3600, time_limit=6 * 3600 + 60)
def import_feed(feed_import_id: int) -> None:
    # Claim the job with a conditional update: only one worker moves it to running, so a
    # redelivered message (or a second worker) never runs an import twice. A running job
    # whose heartbeat stopped lost its worker (killed, machine gone) and may be claimed again.
    now = timezone.now()
    claimable = Q(state=FeedImport.State.QUEUED) | Q(
        state=FeedImport.State.RUNNING, heartbeat_at__lt=now - STALE_HEARTBEAT
    )
    claimed = FeedImport.objects.filter(claimable, pk=feed_import_id).update(
        state=FeedImport.State.RUNNING, rows_done=0, error="", heartbeat_at=now
    )
    if not claimed:
        return  # deleted, running elsewhere, or finished
    job = FeedImport.objects.get(pk=feed_import_id)
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
            FeedImport.objects.filter(pk=job.pk).update(
                rows_done=F("rows_done") + PROGRESS_EVERY, heartbeat_at=timezone.now()
            )

    report = FeedReport()
    try:
        # The new images are queued together when the import ends (also when it stops
        # half-way: what was added before a failure is indexed all the same).
        with signals.deferred():
            feed_import(rows, on_row=on_row, report=report)
    except BaseException as exc:  # the soft time limit too
        logger.exception("Feed import %s failed", job.pk)
        FeedImport.objects.filter(pk=job.pk).update(
            state=FeedImport.State.FAILED, error=f"The import stopped: {exc!r}", finished_at=timezone.now()
        )
        raise
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


@shared_task(soft_time_limit=120, time_limit=180)
def resume_stalled_imports() -> int:
    """Celery beat's schedule: send again the imports whose message was lost (queued for
    longer than STALE_HEARTBEAT, e.g. a broker restarted without its data) or whose worker
    died (running, heartbeat silent that long). The claim in ``import_feed`` keeps a
    second delivery of a live import from running it twice."""
    stale = timezone.now() - STALE_HEARTBEAT
    stalled = list(
        FeedImport.objects.filter(
            Q(state=FeedImport.State.QUEUED, created_at__lt=stale)
            | Q(state=FeedImport.State.RUNNING, heartbeat_at__lt=stale)
        ).values_list("pk", flat=True)
    )
    for job_id in stalled:
        import_feed.delay(job_id)
    if stalled:
        logger.warning("Feed imports sent again (lost message or worker): %s", stalled)
    return len(stalled)
