"""Celery tasks of the analytics: thin wrappers over ``services``."""

from __future__ import annotations

import logging

from celery import shared_task

from analytics import services

logger = logging.getLogger(__name__)


@shared_task
def prune() -> None:
    """Scheduled daily (CELERY_BEAT_SCHEDULE): rows older than VITRINE_ANALYTICS_DAYS go.
    Idempotent: a second run finds nothing more to delete."""
    deleted = services.analytics_prune()
    if deleted:
        logger.info("Search analytics: %d searches older than the retention deleted", deleted)
