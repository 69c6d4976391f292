"""Helpers shared by the embeddings app's management commands."""

from __future__ import annotations

import logging
import time

from django.core.management.base import CommandError

from catalog.commands import is_in_process
from embeddings.index import IndexUnavailable, get_index

logger = logging.getLogger(__name__)


def index_claim() -> None:
    """In the embedded mode this process will index: raise IndexUnavailable now if it
    cannot open the store (another process holds it)."""
    if is_in_process():
        get_index()


def index_optimize() -> bool:
    """Build what makes the current space's collection fast once it is large (the HNSW
    graph of the embedded engine; a Qdrant server does it by itself). True if built."""
    from embeddings.model import get_encoder

    started = time.monotonic()
    built = get_index().optimize(get_encoder().space)
    if built:
        logger.info("Built the index's HNSW graph in %.1f s", time.monotonic() - started)
    return built


def index_claim_for_command() -> None:
    """:func:`index_claim`, stopping a command with the reason."""
    try:
        index_claim()
    except IndexUnavailable as exc:
        raise CommandError(str(exc)) from None
