"""Zero-shot tags: each product's photos scored against the taxonomy with the CLIP model.

For every facet, each value is described to the text encoder (the facet's prompt, and the
Chinese name too when given; their embeddings are averaged), and the product's photo
vectors (averaged) are compared with every value. A softmax over the facet's values with
CLIP's usual temperature (×100) turns cosines into probabilities; the best value becomes a
suggestion when its probability reaches ``VITRINE_TAG_CONFIDENCE``. Each suggestion keeps its
margin over the runner-up too, which tells a clear choice from a close call. A person accepts or
rejects it; an accepted tag is written into the product's attributes (so the search page
can filter and count it) and the index payload is refreshed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from catalog import services
from catalog.models import Product, ProductImage
from embeddings.index import get_index
from embeddings.model import get_encoder
from embeddings.models import TagFacet, TagSuggestion, TagValue

logger = logging.getLogger(__name__)
TEMPERATURE = 100.0


@dataclass(frozen=True)
class TaggingReport:
    products: int
    suggested: int


def tags_suggest(product_ids: list[int] | None = None) -> TaggingReport:
    """Score products (default: all with indexed photos) against every facet; create
    suggestions for facets not yet decided for the product."""
    facets = [facet for facet in TagFacet.objects.prefetch_related("values") if facet.values.exists()]
    if not facets:
        return TaggingReport(products=0, suggested=0)
    encoder = get_encoder()
    space = encoder.space
    images = ProductImage.objects.filter(state=ProductImage.State.INDEXED, embedding_space=space.id)
    if product_ids is not None:
        images = images.filter(product_id__in=product_ids)
    by_product: dict[int, list[int]] = {}
    for product_id, image_id in images.values_list("product_id", "pk"):
        by_product.setdefault(product_id, []).append(image_id)
    vectors = get_index().vectors(space, [i for ids in by_product.values() for i in ids])
    product_vectors = {}
    for product_id, ids in by_product.items():
        found = [vectors[i] for i in ids if i in vectors]
        if found:
            mean = np.mean(found, axis=0)
            product_vectors[product_id] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    if not product_vectors:
        return TaggingReport(products=0, suggested=0)
    decided = set(
        TagSuggestion.objects.filter(product_id__in=product_vectors).values_list("product_id", "value__facet_id")
    )
    product_list = list(product_vectors)
    matrix = np.stack([product_vectors[p] for p in product_list])
    threshold = settings.VITRINE_TAG_CONFIDENCE
    suggestions = []
    for facet in facets:
        values = list(facet.values.all())
        text_vectors = np.stack([_value_vector(encoder, facet, value) for value in values])
        for product_id, score in zip(product_list, facet_scores(matrix, text_vectors), strict=True):
            if score.confidence >= threshold and (product_id, facet.pk) not in decided:
                suggestions.append(
                    TagSuggestion(
                        product_id=product_id,
                        value=values[score.best],
                        confidence=round(score.confidence, 4),
                        margin=round(score.margin, 4),
                    )
                )
    TagSuggestion.objects.bulk_create(suggestions, ignore_conflicts=True)
    logger.info("Suggested %d tags for %d products", len(suggestions), len(product_list))
    return TaggingReport(products=len(product_list), suggested=len(suggestions))


@dataclass(frozen=True)
class FacetScore:
    best: int  # the index of the best value
    confidence: float  # its probability among the facet's values (CLIP's softmax)
    margin: float  # its cosine minus the runner-up's: how clear the choice is


def facet_scores(products: np.ndarray, values: np.ndarray) -> list[FacetScore]:
    """Each product's (rows of normalised vectors) best value among a facet's (rows too).

    The probability is CLIP's softmax at its temperature: with a model trained on the
    catalog's kind of photos it is 1.0 to four places for nearly every product, clear or
    not, so it says little to a person reviewing them. The margin to the runner-up does:
    reviewers sort by it and look at the close calls first."""
    cosines = products @ values.T
    logits = TEMPERATURE * cosines
    logits -= logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    scores = []
    for row in range(len(products)):
        order = np.argsort(-cosines[row])
        best = int(order[0])
        runner_up = float(cosines[row, order[1]]) if len(order) > 1 else -1.0
        scores.append(
            FacetScore(
                best=best,
                confidence=float(probabilities[row, best]),
                margin=float(cosines[row, best]) - runner_up,
            )
        )
    return scores


def _value_vector(encoder, facet: TagFacet, value) -> np.ndarray:
    texts = [facet.prompt.replace("{value}", value.value)]
    if value.value_zh:
        texts.append(value.value_zh)
    vectors = encoder.texts_encode(texts)
    mean = np.mean(vectors, axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def tags_decide(suggestions, *, accept: bool) -> int:
    """Accept (write into the product's attributes) or reject suggestions; returns how many."""
    count = 0
    for suggestion in suggestions.select_related("product", "value__facet"):
        with transaction.atomic():
            if accept:
                product = Product.objects.get(pk=suggestion.product_id)
                services.product_update(
                    product=product,
                    attributes={suggestion.value.facet.name: suggestion.value.value},
                    attributes_merge=True,
                )
                # Another value of the same facet accepted before is replaced by this one.
                TagSuggestion.objects.filter(
                    product_id=product.pk, value__facet=suggestion.value.facet, state=TagSuggestion.State.ACCEPTED
                ).exclude(pk=suggestion.pk).update(state=TagSuggestion.State.REJECTED, decided_at=timezone.now())
            elif suggestion.state == TagSuggestion.State.ACCEPTED:
                # Taking back an accepted tag takes its value out of the product too.
                product = Product.objects.select_for_update().get(pk=suggestion.product_id)
                name = suggestion.value.facet.name
                if (product.attributes or {}).get(name) == suggestion.value.value:
                    services.product_update(product=product, attributes={name: None}, attributes_merge=True)
            state = TagSuggestion.State.ACCEPTED if accept else TagSuggestion.State.REJECTED
            TagSuggestion.objects.filter(pk=suggestion.pk).update(state=state, decided_at=timezone.now())
            count += 1
    return count


def demo_taxonomy_create() -> None:
    """The demo shop's tag taxonomy (colour, pattern, kind, with Chinese names), for the
    admin's zero-shot tag suggestions."""
    from catalog.demo import COLOURS, KINDS, PATTERNS

    for name, name_zh, values in (
        ("colour", "颜色", [(key, zh) for key, (_, zh, _) in COLOURS.items()]),
        ("pattern", "图案", [(key, zh) for key, (_, zh) in PATTERNS.items()]),
        ("kind", "种类", [(key, zh) for key, (_, zh, _, _) in KINDS.items()]),
    ):
        facet, _ = TagFacet.objects.get_or_create(name=name, defaults={"name_zh": name_zh})
        for value, value_zh in values:
            TagValue.objects.get_or_create(facet=facet, value=value, defaults={"value_zh": value_zh})
