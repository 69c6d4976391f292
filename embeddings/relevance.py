"""The relevance cutoff: the score below which a result is only "loosely related".

Cosine scores mean different things in different models (the demo model's relevant text
matches sit near 0.53, a LAION ViT-B-32's near 0.30), so the cutoff is calibrated per
embedding space from the catalog itself:

- **Text queries.** Each sampled product's title is scored against its own photo (a
  *matched* pair) and against the other products' photos (*mismatched* pairs). The cutoff
  is the 5th percentile of matched scores: 95 % of products would be found by their own
  title. (On the demo shop this gives 0.50; the best single threshold for its judged
  queries, found by sweeping, is 0.49: mean F1 0.924 vs 0.925.)
- **Photo queries** (a photo, "more like this"): two photos of the same product are a
  matched pair, photos of two products a mismatched one. A shopper's photo is a different
  picture of a similar thing, not a second shot of the same product, so the cutoff is the
  lower of the matched 5th percentile and the mismatched 99th percentile (demo: 0.83,
  where two renders of the same attributes score 0.90 at their 5th percentile).
- **A photo with words** ("this, but in red"): an item is relevant when the words reach
  the text cutoff and it still resembles the photo more than half of all pairs of photos
  of different products do. (It must differ from the photo where the words say so, so
  the photo cutoff would be far too strict: on the demo model a red striped mug scores
  0.37 against a blue striped mug's photo.) The order is by the sum of both.

Calibration runs after ``load_demo_catalog`` and ``reindex``, with ``calibrate_relevance``,
and on the first search of a space that has none (it takes well under a second for the
demo model). It is redone when the catalog has grown to twice the sample it was made on.
Too few products (fewer than :data:`MIN_PRODUCTS`) give no cutoff: everything is shown.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import IntegrityError
from django.db.models import Q
from django.utils import timezone

from catalog.models import Product, ProductImage
from embeddings.index import get_index
from embeddings.model import EmbeddingSpace, get_encoder
from embeddings.models import RelevanceCutoff
from searchsite.caching import cache_call

logger = logging.getLogger(__name__)

MIN_PRODUCTS = 20
SAMPLE_PRODUCTS = 400
MATCHED_PERCENTILE = 5
RECHECK_SECONDS = 600
# Seconds a process trusts its reading of a space's cutoffs row (read on every search
# otherwise). Saving or deleting the row (the admin, a calibration) forgets it at once in
# the process that saved it (``receivers``: post_save / post_delete); other processes see
# the change within this many seconds.
CUTOFFS_CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class Cutoffs:
    text: float | None
    image: float | None
    source: str  # "settings", "calibrated", "admin", "none"
    # For a photo with words: how much an item must still resemble the photo (the median
    # of photos of different products: more alike than a typical unrelated pair).
    resemblance: float | None = None
    # Strong vector evidence for words the catalog has no keyword for: as close as a typical
    # product is to its own title (the median of matched pairs; never below ``text``).
    strong: float | None = None
    # Words without keyword evidence must also stand out: score − query·centroid ≥ margin.
    centroid: np.ndarray | None = None
    margin: float | None = None

    def distinct(self, query_vector: np.ndarray) -> float:
        """The score a vector-only match needs to stand out from the query's mean score over
        the catalog (-inf: no such test, as without calibration or with an override)."""
        if self.centroid is None or self.margin is None or len(self.centroid) != len(query_vector):
            return float("-inf")
        return float(query_vector @ self.centroid) + self.margin

    def for_query(self, kind: str) -> float | None:
        if kind == "text":
            return self.text
        if kind in ("image", "product"):
            return self.image
        return None  # a photo with words has two tests: the words, and resemblance


def cutoffs_get(space: EmbeddingSpace) -> Cutoffs:
    """The cutoffs in force for the space (calibrating first when there are none yet)."""
    text_setting, image_setting = settings.VITRINE_TEXT_CUTOFF, settings.VITRINE_IMAGE_CUTOFF
    row = _row(space)
    text = text_setting if text_setting is not None else (row.text if row else None)
    image = image_setting if image_setting is not None else (row.image if row else None)
    if text_setting is not None or image_setting is not None:
        source = "settings"
    elif row is not None and (row.text_override is not None or row.image_override is not None):
        source = "admin"
    elif text is not None or image is not None:
        source = "calibrated"
    else:
        source = "none"
    resemblance = ((row.stats or {}).get("image") or {}).get("mismatched_p50") if row else None
    text_stats = ((row.stats or {}).get("text") or {}) if row else {}
    strong = text_stats.get("matched_p50")
    if text is not None:
        strong = max(strong, text) if strong is not None else text
    centroid = _centroid(row) if row is not None else None
    if source in ("settings", "admin") and text is not None:
        # A person set the bar for words: it is the one bar for vector evidence.
        strong, centroid = text, None
    return Cutoffs(
        text=text,
        image=image,
        source=source,
        resemblance=resemblance,
        strong=strong,
        centroid=centroid,
        margin=text_stats.get("margin_p5"),
    )


# space id → (monotonic expiry, row): see CUTOFFS_CACHE_SECONDS.
_rows: dict[str, tuple[float, RelevanceCutoff]] = {}


def _row(space: EmbeddingSpace) -> RelevanceCutoff | None:
    """The space's cutoffs row, calibrated first when there is none or the catalog has
    outgrown it; read from the database at most every ``CUTOFFS_CACHE_SECONDS``. No row
    (too few products to calibrate) is not kept: the next search tries again."""
    cached = _rows.get(space.id)
    if cached is not None and time.monotonic() < cached[0]:
        return cached[1]
    row = RelevanceCutoff.objects.filter(embedding_space=space.id).first()
    if row is None or _grown(space, row):
        row = cutoffs_calibrate(space) or row
    if row is not None:
        _rows[space.id] = (time.monotonic() + CUTOFFS_CACHE_SECONDS, row)
    return row


def cutoffs_forget() -> None:
    """Read the cutoffs from the database on the next search (a row was saved or deleted
    behind this process's back: tests)."""
    _rows.clear()


_centroids: dict = {}


def _centroid(row: RelevanceCutoff) -> np.ndarray | None:
    """The calibration's centroid as an array (converted once per calibration)."""
    key = (row.embedding_space, row.calibrated_at)
    if key not in _centroids:
        values = ((row.stats or {}).get("text") or {}).get("centroid")
        if len(_centroids) > 16:
            _centroids.clear()
        _centroids[key] = np.asarray(values, dtype=np.float32) if values else None
    return _centroids[key]


def _grown(space: EmbeddingSpace, row: RelevanceCutoff) -> bool:
    """Whether the catalog has outgrown the sample (checked every few minutes at most)."""
    if row.sample_products >= SAMPLE_PRODUCTS:
        return False
    key = f"vitrine:cutoff-checked:{space.id}"
    if cache_call("get", True, key):  # a cache that is down counts as checked: no count per search
        return False
    cache_call("set", None, key, True, RECHECK_SECONDS)
    return _indexed_products(space).count() >= 2 * max(row.sample_products, MIN_PRODUCTS // 2)


def _indexed_products(space: EmbeddingSpace):
    indexed = Q(images__state=ProductImage.State.INDEXED, images__embedding_space=space.id)
    return Product.objects.filter(indexed).exclude(title="").distinct()


def cutoffs_calibrate(space: EmbeddingSpace | None = None, *, seed: int = 0) -> RelevanceCutoff | None:
    """Measure the score distributions of the catalog and store the cutoffs (None: too
    few products to say anything)."""
    encoder = get_encoder()
    space = space or encoder.space
    index = get_index()
    product_ids = list(_indexed_products(space).order_by("pk").values_list("pk", flat=True))
    if len(product_ids) < MIN_PRODUCTS:
        logger.debug("No relevance cutoff yet: %d indexed products (need %d)", len(product_ids), MIN_PRODUCTS)
        return None
    sample = sorted(random.Random(seed).sample(product_ids, min(SAMPLE_PRODUCTS, len(product_ids))))
    titles = dict(Product.objects.filter(pk__in=sample).values_list("pk", "title"))
    image_rows = (
        ProductImage.objects.filter(product_id__in=sample, state=ProductImage.State.INDEXED, embedding_space=space.id)
        .order_by("product_id", "position", "pk")
        .values_list("product_id", "pk")
    )
    images_by_product: dict[int, list[int]] = {}
    for product_id, image_id in image_rows:
        images_by_product.setdefault(product_id, []).append(image_id)
    vectors = index.vectors(space, [i for ids in images_by_product.values() for i in ids[:2]])

    stats: dict = {}
    firsts = [(pid, ids[0]) for pid, ids in images_by_product.items() if ids[0] in vectors]
    text_cutoff = None
    if len(firsts) >= MIN_PRODUCTS:
        text_vectors = encoder.texts_encode([titles[pid] for pid, _ in firsts])
        photo_vectors = np.stack([vectors[image_id] for _, image_id in firsts])
        scores = text_vectors @ photo_vectors.T
        text_cutoff, stats["text"] = _cutoff_from_pairs(scores, loosest=False)
        # Distinctiveness: how far a title's own photo stands above the title's mean score
        # over the catalog (the sample's centroid). Words a model cannot read give flat
        # scores: high everywhere, standing out nowhere.
        centroid = photo_vectors.mean(axis=0)
        margins = np.diag(scores) - text_vectors @ centroid
        stats["text"]["margin_p5"] = round(float(np.percentile(margins, MATCHED_PERCENTILE)), 4)
        stats["text"]["centroid"] = [round(float(v), 5) for v in centroid]

    pairs = [
        (vectors[ids[0]], vectors[ids[1]])
        for ids in images_by_product.values()
        if len(ids) > 1 and ids[0] in vectors and ids[1] in vectors
    ]
    image_cutoff = None
    if len(pairs) >= MIN_PRODUCTS:
        first, second = np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs])
        image_cutoff, stats["image"] = _cutoff_from_pairs(first @ second.T, loosest=True)

    values = {
        "text_auto": text_cutoff,
        "image_auto": image_cutoff,
        "sample_products": len(sample),
        "stats": stats,
        "calibrated_at": timezone.now(),
    }
    try:
        row, _ = RelevanceCutoff.objects.update_or_create(embedding_space=space.id, defaults=values)
    except IntegrityError:  # two first searches calibrated at once: the other one's row stands
        row = RelevanceCutoff.objects.get(embedding_space=space.id)
    logger.info("Relevance cutoffs for %s: text %s, photo %s", space.id, text_cutoff, image_cutoff)
    return row


def _cutoff_from_pairs(scores: np.ndarray, *, loosest: bool) -> tuple[float, dict]:
    """``scores[i, j]``: query i against item j; the diagonal holds the matched pairs.
    ``loosest``: no higher than the mismatched pairs' 99th percentile either."""
    matched = np.diag(scores)
    mismatched = scores[~np.eye(len(scores), dtype=bool)]
    cutoff = float(np.percentile(matched, MATCHED_PERCENTILE))
    if loosest:
        cutoff = min(cutoff, float(np.percentile(mismatched, 99)))
    cutoff = round(cutoff, 4)
    stats = {
        "pairs": int(len(matched)),
        "matched_p5": round(float(np.percentile(matched, 5)), 4),
        "matched_p50": round(float(np.percentile(matched, 50)), 4),
        "mismatched_p50": round(float(np.percentile(mismatched, 50)), 4),
        "mismatched_p99": round(float(np.percentile(mismatched, 99)), 4),
        "mismatched_above_cutoff": round(float(np.mean(mismatched >= cutoff)), 4),
    }
    return cutoff, stats
