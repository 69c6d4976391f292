"""Blue/green re-embedding: which embedding space serves searches while another is built.

One space is live (an ``IndexSpace`` row): searches encode their query with its model and
read its collection, both chosen once per search, so a search never mixes spaces. When the
configured model (VITRINE_CLIP_MODEL / VITRINE_CLIP_PRETRAINED) gives another space, that
space is *building*: new images are embedded in both spaces, a background build embeds
the rest in the new one (``space_build_start``: Celery tasks with a broker, a thread of the
web process in the embedded mode, or ``manage.py reindex``), and when the new collection
holds every image (``space_switch_if_complete``, checked after every batch) the rows swap,
the alias moves, and the next search uses the new model. The old collection is kept (a
rollback is a setting change away) until ``manage.py reconcile --drop-retired``.

Both models are in memory during the build: keep the old weights where its settings point
until the switch. If they are gone, searches use the configured model at once (consistent,
but finding only what is already re-embedded) and say so in the log.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from catalog.models import ProductImage
from embeddings.index import collection_name, get_index
from embeddings.model import (
    ClipEncoder,
    EmbeddingSpace,
    ModelUnavailable,
    encoder_for,
    encoders_release,
    get_encoder,
)
from embeddings.models import IndexSpace

logger = logging.getLogger(__name__)

# Seconds a process trusts its reading of the live space (a switch reaches every process
# within this; each search reads one space throughout, so none mixes them meanwhile).
LIVE_CACHE_SECONDS = 1.0

_live_cache: tuple[float, IndexSpace | None] = (0.0, None)
_build_thread: threading.Thread | None = None
_build_lock = threading.Lock()


def live_space_row() -> IndexSpace | None:
    global _live_cache
    expires, row = _live_cache
    if time.monotonic() < expires:
        return row
    row = IndexSpace.objects.filter(state=IndexSpace.State.LIVE).first()
    _live_cache = (time.monotonic() + LIVE_CACHE_SECONDS, row)
    return row


def live_space_forget() -> None:
    global _live_cache
    _live_cache = (0.0, None)


def _other_live(encoder: ClipEncoder) -> IndexSpace | None:
    """The live row if another space than ``encoder``'s is live (the first space ever used
    is made live)."""
    live = live_space_row()
    if live is None:
        _live_claim(encoder)
        return None
    return None if live.embedding_space == encoder.space.id else live


def serving_encoder() -> ClipEncoder:
    """The encoder of the live space: the one every search uses."""
    configured = get_encoder()
    live = _other_live(configured)
    if live is None:
        return configured
    try:
        encoder = encoder_for(live.model_name, live.pretrained)
    except ModelUnavailable as exc:
        logger.warning("The live space's model cannot be loaded (%s); searching with the configured one.", exc)
        return configured
    if encoder.space.id != live.embedding_space:
        logger.warning(
            "The live space %s's settings now load %s (its weights changed); searching with the configured model.",
            live.embedding_space,
            encoder.space.id,
        )
        return configured
    return encoder


def _live_claim(encoder: ClipEncoder) -> None:
    """The first space ever used becomes the live one."""
    with transaction.atomic():
        if not IndexSpace.objects.filter(state=IndexSpace.State.LIVE).exists():
            _live_row_write(encoder.space.id)
    live_space_forget()


def _live_row_write(space_id: str) -> None:
    """The configured model's space becomes the live one (its row made if missing)."""
    IndexSpace.objects.update_or_create(
        embedding_space=space_id,
        defaults={
            "model_name": settings.VITRINE_CLIP_MODEL,
            "pretrained": settings.VITRINE_CLIP_PRETRAINED,
            "state": IndexSpace.State.LIVE,
            "live_since": timezone.now(),
            "retired_at": None,
        },
    )


def building_space_note(target: ClipEncoder) -> IndexSpace | None:
    """The row of the configured space when it is not the live one (made if missing)."""
    if _other_live(target) is None:
        return None
    row, created = IndexSpace.objects.get_or_create(
        embedding_space=target.space.id,
        defaults={"model_name": settings.VITRINE_CLIP_MODEL, "pretrained": settings.VITRINE_CLIP_PRETRAINED},
    )
    if not created and row.state == IndexSpace.State.RETIRED:  # going back to an older model
        IndexSpace.objects.filter(pk=row.pk).update(state=IndexSpace.State.BUILDING, retired_at=None)
        row.state = IndexSpace.State.BUILDING
    return row


def images_missing_from(space_id: str):
    """Images the space still lacks (failed ones wait for a person, as everywhere)."""
    return ProductImage.objects.exclude(state=ProductImage.State.FAILED).exclude(
        state=ProductImage.State.INDEXED, embedding_space=space_id
    )


@dataclass(frozen=True)
class BuildProgress:
    live: str
    building: str
    done: int
    total: int

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 100


def space_build_progress() -> BuildProgress | None:
    """How far the configured space's build is, or None when it is the live one."""
    target = get_encoder().space.id
    live = live_space_row()
    if live is None or live.embedding_space == target:
        return None
    total = ProductImage.objects.exclude(state=ProductImage.State.FAILED).count()
    done = total - images_missing_from(target).count()
    return BuildProgress(live=live.embedding_space, building=target, done=done, total=total)


def space_switch_if_complete() -> bool:
    """Make the configured space live once its collection holds every image: rows, alias,
    relevance cutoffs. True when it switched."""
    target = get_encoder()
    live = live_space_row()
    if live is None or live.embedding_space == target.space.id:
        return False
    if images_missing_from(target.space.id).exists():
        return False
    index = get_index()
    with transaction.atomic():
        IndexSpace.objects.filter(state=IndexSpace.State.LIVE).update(
            state=IndexSpace.State.RETIRED, retired_at=timezone.now()
        )
        _live_row_write(target.space.id)
    index.alias_point(target.space)
    live_space_forget()
    encoders_release(keep={target.space.id})
    logger.info("Switched searches from %s to %s.", live.embedding_space, target.space.id)
    from embeddings.relevance import cutoffs_calibrate, cutoffs_get

    if cutoffs_get(target.space).text is None:
        cutoffs_calibrate(target.space)
    return True


def retired_spaces_drop() -> list[str]:
    """Delete the collections of retired spaces (and their rows); returns their names."""
    index = get_index()
    dropped = []
    for row in IndexSpace.objects.filter(state=IndexSpace.State.RETIRED):
        name = collection_name(EmbeddingSpace.from_id(row.embedding_space))
        index.drop(name)
        row.delete()
        dropped.append(name)
    return dropped


def space_build_start() -> int:
    """Embed every image the configured space lacks, in the background; returns how many.
    With a broker: tasks for the workers. In the embedded mode: a thread of this process
    (the one that owns the store), one batch at a time."""
    from catalog.commands import is_in_process

    target = get_encoder()
    building_space_note(target)
    image_ids = list(images_missing_from(target.space.id).order_by("pk").values_list("pk", flat=True))
    size = settings.VITRINE_EMBED_BATCH_SIZE
    if not is_in_process():
        from embeddings import tasks

        for start in range(0, len(image_ids), size):
            tasks.embed_images.delay(image_ids[start : start + size])
        return len(image_ids)
    global _build_thread
    with _build_lock:
        if _build_thread is not None and _build_thread.is_alive():
            return 0
        _build_thread = threading.Thread(
            target=_build_in_process, args=(image_ids, size), name="vitrine-space-build", daemon=True
        )
        _build_thread.start()
    return len(image_ids)


def space_build_running() -> bool:
    return _build_thread is not None and _build_thread.is_alive()


def _build_in_process(image_ids: list[int], size: int) -> None:
    from embeddings.indexing import images_embed

    try:
        for start in range(0, len(image_ids), size):
            images_embed(image_ids=image_ids[start : start + size])
        space_switch_if_complete()
    except Exception:  # noqa: BLE001 - a background thread: log it; the admin shows progress
        logger.exception("The background re-embedding stopped; start it again from the index health page.")
    finally:
        close_old_connections()
