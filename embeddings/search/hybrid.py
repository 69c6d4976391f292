"""Hybrid retrieval: keyword and vector evidence, fused, and the relevance decision.

For words (alone or with a photo), the index is asked twice: for the nearest products to
the query's vector, and for the products holding *every* word the catalog knows (each
word's group: the word and its synonyms; a sparse-vector query, IDF-weighted, with a
filter on the products' ``terms``). Then:

- **Relevant** (shown) are the products matching every known word, and products whose
  vector is as close to the words as a typical product is to its own title (the
  calibrated median of matched pairs: "strong" vector evidence), stands out from the
  query's mean score over the catalog, and (when some products hold every word) is as
  close as theirs (their median). A query the catalog has
  no word for ("laptop", "asdfgh", 🙂) therefore shows only strong vector matches, most
  often none: "nothing matches". When the catalog knows the words but no product has
  them all ("green umbrella" in a shop without one), products above the ordinary cutoff
  that have at least one of the words are shown.
- **Order**: reciprocal rank fusion of the two rankings (``VITRINE_SEARCH_FUSION=rrf``,
  k = 60) or the mean of min–max-normalised scores (``score``). Measured on the demo
  shop's held-out phrasings (README, "Search quality").
- **A photo with words** ("this, but in red"): the words' products (every known word),
  ordered by how much they resemble the photo and how many of the attributes of the
  product the photo shows they keep (those the words do not change), so a blue striped
  mug's photo with "red" gives the red striped mug first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.conf import settings

from embeddings.index import IndexCandidate, IndexFilters
from embeddings.search.refinement import unit
from embeddings.search.types import Candidate
from embeddings.search.understanding import QueryPlan

RRF_K = 60
# The vector score of a keyword match beyond the nearest products, not read yet: below every
# nearest product's (the engine reads it for the products shown).
UNSCORED = float("nan")
# A shared attribute of the photo's product counts as much as this much resemblance.
ATTRIBUTE_WEIGHT = 0.1


@dataclass
class Evidence:
    candidates: list[Candidate]
    complete: bool  # every product that could be relevant is among the candidates
    exhausted: bool = False  # every product is among the candidates (the index had no more)
    loose_count: int = 0  # loosely related products counted but not made into candidates


def hybrid_gather(
    *,
    space,
    index,
    plan: QueryPlan,
    text_vector: np.ndarray,
    image_vector: np.ndarray | None,
    rank_vector: np.ndarray | None,
    cutoff: float | None,
    strong: float | None,
    resemblance: float | None,
    distinct,
    filters: IndexFilters,
    limit: int,
    make,
    keep_loose: bool = True,
    calibrated: bool = True,
) -> Evidence:
    """Candidates for words (``image_vector``: and a photo) with relevance decided and
    ``fused`` set. ``make(found, relevant, keyword_score)`` builds a Candidate.
    ``keep_loose`` False: loosely related products are only counted (``loose_count``).
    ``calibrated`` False: a person set the cutoff (admin, settings, a preview): it is the one
    bar for vector evidence, with no peer or distinctness test."""
    photo = image_vector is not None
    vector = unit(image_vector + text_vector) if photo else text_vector
    # The nearest products' vectors are read only when scores other than the index's are
    # needed (a photo's resemblance, a refined query): 1,000 vectors cost more than the query.
    need_vectors = photo or rank_vector is not None
    dense = index.candidates(space, vector, limit=limit, filters=filters, with_vectors=need_vectors, with_facts=True)
    strict: list[IndexCandidate] = []
    partial: list[IndexCandidate] = []
    if plan.groups:
        strict = index.keyword_candidates(
            space, plan.weights, limit=limit, filters=filters, require=plan.groups, with_facts=True
        )
        if not strict:
            partial = index.keyword_candidates(space, plan.weights, limit=limit, filters=filters, with_facts=True)
    strict_ids = {c.product_id for c in strict}
    keyword = {c.product_id: c.score for c in (strict or partial)}
    # Text alone: the index's score is the vector score. Keyword matches beyond the nearest
    # products score below all of them on vectors: how far below is read only for the few
    # shown (``UNSCORED``; the engine fills it in for the page), or for all of them where it
    # decides relevance (a photo; no product holding every word while the nearest products
    # still reach the cutoff).
    vector_score = {c.product_id: c.score for c in dense} if not photo else {}
    by_product: dict[int, IndexCandidate] = {c.product_id: c for c in dense}
    beyond = [c for c in (strict or partial) if c.product_id not in by_product]
    floor_reached = bool(dense) and len(dense) >= limit and cutoff is not None and dense[-1].score >= cutoff
    exact = photo or rank_vector is not None or (not strict and floor_reached)
    if beyond and exact:
        vectors = index.vectors(space, [c.image_id for c in beyond])
        for found in beyond:
            found.vector = vectors.get(found.image_id)
            if found.vector is not None and not photo:
                vector_score[found.product_id] = float(found.vector @ text_vector)
    for found in beyond:
        by_product[found.product_id] = found

    if photo and strict:
        found = _photo_with_words(
            space, index, filters, by_product, strict_ids, keyword, plan, image_vector, text_vector, resemblance, make
        )
        return Evidence(found, complete=len(strict) < limit, exhausted=len(dense) < limit)

    floor = distinct(text_vector)  # vector-only evidence must stand out from the query's mean
    candidates = []
    if photo:
        # Words the catalog has no keyword for, with a photo: the words' cutoff and a
        # resemblance to the photo, ordered by both (as without a keyword side).
        for product_id, found in by_product.items():
            if found.vector is None:
                continue
            score = float(found.vector @ text_vector)
            looks = float(found.vector @ image_vector)
            relevant = (cutoff is None or score >= cutoff) and (resemblance is None or looks >= resemblance)
            candidate = make(found, relevant, keyword.get(product_id))
            candidate.score = score
            candidate.rank_score = candidate.fused = score + looks
            candidates.append(candidate)
        return Evidence(candidates, complete=len(dense) < limit, exhausted=len(dense) < limit)

    # Relevance and order are decided on plain numbers; a Candidate is made only for what
    # the page may list or count (loosely related ones only when asked for, or to filter).
    order = {}
    for product_id, found in by_product.items():
        if rank_vector is not None and found.vector is not None:
            order[product_id] = float(found.vector @ rank_vector)
        else:
            score = vector_score.get(product_id, UNSCORED)
            order[product_id] = score if score == score else -2.0  # unscored: after every scored one
    fused = _fused(order, keyword, unscored={p for p in by_product if p not in vector_score})
    # With products holding every word, one that lacks a word is shown only if its photo is
    # as close to the words as theirs are (their median): as good as a real match.
    peers = sorted(vector_score[p] for p in strict_ids if p in vector_score)
    if not calibrated:
        peer_bar = float("-inf")
    else:
        peer_bar = peers[len(peers) // 2] if peers else float("inf")
    loose_count = 0
    for product_id, found in by_product.items():
        score = vector_score.get(product_id, UNSCORED)
        if product_id in strict_ids:
            relevant = True
        elif strict:
            relevant = strong is not None and score >= max(strong, peer_bar) and score >= floor
        elif plan.groups:
            # Known words, but no product has them all: the near ones having some of them.
            relevant = product_id in keyword and (cutoff is None or score >= cutoff)
        else:
            relevant = (cutoff is None or score >= cutoff) and score >= floor
        if not relevant and not keep_loose:
            loose_count += 1
            continue
        candidate = make(found, relevant, keyword.get(product_id))
        candidate.score = score
        candidate.fused = candidate.rank_score = fused[product_id]
        candidates.append(candidate)
    # Complete: the index gave every product holding all the words, and the vectors
    # reached below the score that makes a product relevant on its own.
    bar = max(strong, peer_bar) if strict and strong is not None else (strong if strict else cutoff)
    vectors_done = len(dense) < limit or bar is None or not dense or dense[-1].score < bar
    return Evidence(
        candidates,
        complete=len(strict or partial) < limit and vectors_done,
        exhausted=len(dense) < limit,
        loose_count=loose_count,
    )


def _photo_with_words(
    space, index, filters, by_product, strict_ids, keyword, plan, image_vector, text_vector, resemblance, make
):
    """The words' products, closest to the photo first, keeping the photo's product's
    attributes that the words do not change."""
    # The product the photo shows: the nearest to the photo alone.
    nearest = index.candidates(space, image_vector, limit=1, filters=filters, with_facts=True)
    reference = nearest[0].facts.get("attributes") if nearest and nearest[0].facts else None
    reference = reference if isinstance(reference, dict) else {}
    changed = {key for key, _ in plan.attributes}
    kept = {key: value for key, value in reference.items() if key not in changed and isinstance(value, str)}
    candidates = []
    for product_id, found in by_product.items():
        if found.vector is None:
            continue
        looks = float(found.vector @ image_vector)
        attributes = (found.facts or {}).get("attributes") or {}
        shared = sum(1 for key, value in kept.items() if attributes.get(key) == value)
        relevant = product_id in strict_ids and (resemblance is None or looks >= resemblance)
        candidate = make(found, relevant, keyword.get(product_id))
        candidate.score = float(found.vector @ text_vector)
        candidate.rank_score = looks + ATTRIBUTE_WEIGHT * shared + (1.0 if product_id in strict_ids else 0.0)
        candidate.fused = candidate.rank_score
        candidates.append(candidate)
    return candidates


def _fused(order: dict[int, float], keyword: dict[int, float], *, unscored: set[int]) -> dict[int, float]:
    """Each product's fused score: ``order`` its vector side's score (the refined query's
    when refined), ``keyword`` its keyword score (absent: none); ``unscored``: products
    whose vector score is not read (beyond the nearest)."""
    by_vector = sorted(order, key=order.__getitem__, reverse=True)
    by_keyword = sorted(keyword, key=keyword.__getitem__, reverse=True)
    if settings.VITRINE_SEARCH_FUSION == "rrf":
        fused = {product_id: 1.0 / (RRF_K + rank) for rank, product_id in enumerate(by_vector, start=1)}
        for rank, product_id in enumerate(by_keyword, start=1):
            fused[product_id] = fused.get(product_id, 0.0) + 1.0 / (RRF_K + rank)
        return fused
    scored = [order[p] for p in order if p not in unscored]
    low, high = (min(scored), max(scored)) if scored else (0.0, 0.0)
    top = keyword[by_keyword[0]] if by_keyword else 0.0
    fused = {}
    for product_id, value in order.items():
        if product_id in unscored:  # beyond the nearest: the lowest vector part
            vector_part = 0.0
        else:
            vector_part = (value - low) / (high - low) if high > low else 1.0
        keyword_part = keyword.get(product_id, 0.0) / top if top else 0.0
        fused[product_id] = 0.5 * vector_part + 0.5 * keyword_part
    return fused
