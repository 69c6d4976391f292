"""The search engine: one for every face (the search page, the product page's similar
products, the API) and for evaluation.

A query (words, a photo, words and a photo, a product, or liked products) becomes a
vector; the index gives the nearest products (one hit each: its best photo); the
relevance cutoff of the embedding space splits them into relevant and loosely related;
filters, facet counts, sorting and paging work on the database's fields of those
candidates, so counts agree exactly with what is listed.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
import weakref
from dataclasses import replace
from decimal import Decimal

import numpy as np
from django.conf import settings
from PIL import Image

from catalog.models import ProductImage
from catalog.translations import is_translation_key
from embeddings.index import IndexCandidate, IndexFilters, get_index
from embeddings.keywords import whole_term
from embeddings.relevance import cutoffs_get
from embeddings.search.facets import facets_count, failed_filters, matches, price_buckets
from embeddings.search.hybrid import hybrid_gather
from embeddings.search.refinement import MAX_REFINEMENTS, liked_vector, reference_vector, refined_vector, unit
from embeddings.search.rules import RuleEffects, pinned_products, rules_effects, rules_saved
from embeddings.search.types import (
    MAX_LIMIT,
    SORTS,
    Candidate,
    FacetFilters,
    SearchError,
    SearchHit,
    SearchPage,
    SearchQuery,
)
from embeddings.search.understanding import understand, vocabulary
from embeddings.spaces import serving_encoder
from searchsite.caching import cache_call

logger = logging.getLogger(__name__)


def catalog_search(query: SearchQuery) -> SearchPage:
    """Search the catalog for shoppers: the nearest products, cut at the space's relevance
    cutoff, filtered, counted per facet value, sorted and paged.

    Filters and facets work on the database's product fields for the nearest
    ``VITRINE_SEARCH_CANDIDATES`` products, so counts agree with what the page lists.
    """
    started = time.monotonic()
    _validate(query)
    encoder = serving_encoder()  # the live space's model: its collection is read throughout
    space = encoder.space
    index = get_index()
    kind = query.kind
    excluded = set(query.negative_ids)
    text_vector = image_vector = None
    like = None  # "more like this": the product's category and attributes
    # Words are read against the catalog first (spelling, synonyms, known words) when the
    # index has a keyword side: then keyword and vector evidence are fused.
    plan = None
    if kind in ("text", "image+text") and settings.VITRINE_KEYWORD_SEARCH and index.has_keywords(space):
        plan = understand(query.text, correct=query.correct)
    words = plan.vector_text if plan is not None else query.text.strip()
    if kind == "text":
        vector = text_vector = _text_vector(encoder, words)
    elif kind in ("image", "image+text"):
        vector = image_vector = _image_vector(encoder, query.image, query.image_key)
        if kind == "image+text":
            text_vector = _text_vector(encoder, words)
            vector = unit(image_vector + text_vector)
    elif kind == "products":
        vector = liked_vector(space, index, query.positive_ids)
        excluded.update(query.positive_ids)
    else:
        vector, like_product = reference_vector(space, index, query.like_product_id, query.like_image_id)
        excluded.add(like_product.pk)
        # More like a product: its kind first. More like one photo: by resemblance alone
        # (the API's like_image_id ranks products by their closest photo).
        if query.like_product_id:
            like = (like_product.category, like_product.attributes)
    cutoffs = cutoffs_get(space)
    if query.text_cutoff is not None:  # a preview: the one bar for vector evidence, as an override is
        cutoffs = replace(cutoffs, text=query.text_cutoff, strong=query.text_cutoff, centroid=None, source="preview")
    if query.image_cutoff is not None:
        cutoffs = replace(cutoffs, image=query.image_cutoff, source="preview")
    cutoff = cutoffs.for_query("product" if kind == "products" else kind)
    # A photo with words: relevant when the words match and the item still resembles the photo.
    two_tests = kind == "image+text" and cutoffs.text is not None and cutoffs.resemblance is not None
    if two_tests:
        cutoff = cutoffs.text

    rank_vector = None
    if query.positive_ids or query.negative_ids:
        rank_vector = refined_vector(space, index, vector, query.positive_ids, query.negative_ids)

    def relevance(candidate: IndexCandidate) -> bool:
        if two_tests:
            return (
                float(candidate.vector @ text_vector) >= cutoffs.text
                and float(candidate.vector @ image_vector) >= cutoffs.resemblance
            )
        return cutoff is None or candidate.score >= cutoff

    def candidates_from(found: list[IndexCandidate]) -> list[Candidate]:
        candidates = [_candidate(c, rank_vector, relevance(c)) for c in found]
        if like is not None:
            _like_ordered(candidates, *like)
        return candidates

    # Merchandising rules (embeddings/search/rules.py): hidden products are left out at the
    # index, so they are in no list or count; boosts and pins apply to the sorted list below.
    effects = rules_effects(
        rules_saved() if query.rules_override is None else query.rules_override,
        text=query.text,
        categories=(*query.filters.categories, *(plan.categories if plan is not None else ())),
        relevance=query.sort == "relevance",
    )
    excluded.update(effects.hidden)

    # The nearest products, with the fields filters and facets read (from the index's
    # payload: the database is read for the one page shown).
    limit = settings.VITRINE_SEARCH_CANDIDATES
    base = IndexFilters(active=query.active, exclude_product_ids=tuple(sorted(excluded)))
    with_vectors = rank_vector is not None or two_tests
    filters = query.filters
    hybrid = None
    if plan is not None:

        def gather(index_filters: IndexFilters):
            return hybrid_gather(
                space=space,
                index=index,
                plan=plan,
                text_vector=text_vector,
                image_vector=image_vector,
                rank_vector=rank_vector,
                cutoff=cutoffs.text,
                strong=cutoffs.strong,
                resemblance=cutoffs.resemblance,
                distinct=cutoffs.distinct,
                filters=index_filters,
                limit=limit,
                make=lambda found, is_relevant, keyword_score: _candidate(found, None, is_relevant, keyword_score),
                # Loosely related products are listed only when asked for; counted otherwise.
                keep_loose=not query.relevant_only or filters.any,
                calibrated=cutoffs.source == "calibrated",
            )

        hybrid = gather(base)
        found = candidates = hybrid.candidates
    else:
        found = index.candidates(space, vector, limit=limit, filters=base, with_vectors=with_vectors, with_facts=True)
        candidates = candidates_from(found)
    relevant = [c for c in candidates if c.relevant]
    loose = [c for c in candidates if not c.relevant]
    hidden: list[Candidate] = loose if query.relevant_only else []
    if not query.relevant_only and query.loose_limit is not None:
        # "Show loosely related" reveals the next band of them, best first.
        loose = sorted(loose, key=lambda c: -c.rank_score)
        loose, hidden = loose[: query.loose_limit], loose[query.loose_limit :]
    universe = relevant if query.relevant_only else relevant + loose
    if filters.any:
        failures = [failed_filters(c, filters) for c in universe]
        matching = [c for c, failed in zip(universe, failures, strict=True) if not failed]
    else:  # no filter to fail (most searches): no call per candidate
        failures = [()] * len(universe)
        matching = list(universe)
    # The nearest `limit` products hold every relevant one unless all of them are relevant
    # (or everything was asked for). Then filters may match products further away: ask the
    # index for them, filters and cutoff applied there.
    if hybrid is not None:
        complete = hybrid.complete if query.relevant_only else hybrid.exhausted
    else:
        complete = len(found) < limit or (query.relevant_only and not candidates[-1].relevant)
    total_is_capped = not complete
    narrowed_total = None
    if not complete and filters.any and hybrid is not None:
        evidence = gather(_pushable(base, filters))
        kept = [c for c in evidence.candidates if matches(c, filters)]
        matching = [c for c in kept if c.relevant]
        if not query.relevant_only:
            further = sorted((c for c in kept if not c.relevant), key=lambda c: -c.rank_score)
            matching += further if query.loose_limit is None else further[: query.loose_limit]
        total_is_capped = not (evidence.complete if query.relevant_only else evidence.exhausted)
    elif not complete and filters.any:
        threshold = cutoff if query.relevant_only and not two_tests else None
        pushed = _pushable(base, filters)
        # The index applied every filter: facts are needed only to sort by a field.
        check = len(pushed.attributes) < len(filters.attributes)
        narrowed = index.candidates(
            space,
            vector,
            limit=limit,
            filters=pushed,
            score_threshold=threshold,
            with_vectors=with_vectors,
            with_facts=check or query.sort != "relevance",
        )
        every_one_relevant = threshold is not None or not query.relevant_only
        shortcut = query.sort == "relevance" and rank_vector is None and not effects.reorders
        if not check and shortcut and every_one_relevant:
            # The index filtered and cut, best first: only the page needs candidates.
            matching = candidates_from(narrowed[: query.offset + query.limit])
            narrowed_total = len(narrowed)
        else:
            matching = [
                c
                for c in candidates_from(narrowed)
                if (c.relevant or not query.relevant_only) and (not check or matches(c, filters))
            ]
        total_is_capped = len(narrowed) >= limit
    attribute_keys = (
        settings.VITRINE_FACET_ATTRIBUTES if query.facet_attributes is None else list(query.facet_attributes)
    )
    facets, buckets, prices = [], [], []
    if query.facets:
        facets = facets_count(universe, filters, attribute_keys, failures)
        prices_universe = [
            c for c, failed in zip(universe, failures, strict=True) if not failed or failed == ("price",)
        ]
        buckets = price_buckets(prices_universe)
        prices = [c.price for c in prices_universe if c.price is not None]
    loosely_related = sum(1 for c in hidden if matches(c, filters)) if filters.any else len(hidden)
    if hybrid is not None:
        loosely_related += hybrid.loose_count  # counted, not made (no filters to check)

    effects.boost(matching)  # relevance sort only (no boosts otherwise)
    matching = _sorted(matching, query.sort)
    if effects.pins:  # the shortcut above is not taken: ``matching`` is the whole list
        matching = _pins_placed(
            matching,
            effects,
            candidates,
            excluded=excluded,
            filters=filters,
            active=query.active,
            space=space,
            index=index,
            vector=vector,
        )
    total = len(matching) if narrowed_total is None else narrowed_total
    page = matching[query.offset : query.offset + query.limit]
    unscored = [c for c in page if c.score != c.score]  # NaN: a keyword match beyond the nearest
    if unscored:
        vectors = index.vectors(space, [c.image_id for c in unscored])
        for c in unscored:
            c.score = float(vectors[c.image_id] @ text_vector) if c.image_id in vectors else -1.0
    images = {}
    if page:  # the page's images with their products, in one query
        rows = ProductImage.objects.select_related("product").filter(pk__in=[c.image_id for c in page]).order_by()
        images = {image.pk: image for image in rows}
    hits = [
        SearchHit(
            product=images[c.image_id].product,
            image=images[c.image_id],
            score=c.score,
            explain=_explain(c, effects, hybrid=hybrid is not None),
        )
        for c in page
        # The DB is the truth: a point whose product is gone or was deactivated moments
        # ago (its index update still queued) is not shown.
        if c.image_id in images
        and images[c.image_id].product_id == c.product_id
        and (query.active is None or images[c.image_id].product.is_active == query.active)
    ]
    took_ms = (time.monotonic() - started) * 1000
    logger.debug("Catalog search (%s) found %d of %d candidates in %.1f ms", kind, len(matching), len(found), took_ms)
    return SearchPage(
        hits=hits,
        total=total,
        total_is_capped=total_is_capped,
        loosely_related=loosely_related,
        facets=facets,
        facet_counts_exact=complete,
        price_buckets=buckets,
        price_range=(min(prices), max(prices)) if prices else None,
        cutoff=cutoff,
        kind=kind,
        embedding_space=space.id,
        took_ms=took_ms,
        limit=query.limit,
        offset=query.offset,
        sort=query.sort,
        corrected_query=plan.corrected if plan is not None else None,
        suggestions=_suggestions(plan) if plan is not None and total == 0 else (),
        fusion=settings.VITRINE_SEARCH_FUSION if hybrid is not None else "",
        understood=_understood(plan) if plan is not None else None,
        rules_fired=effects.fired_shown(),
    )


def _explain(candidate: Candidate, effects: RuleEffects, *, hybrid: bool) -> dict:
    """How the hit scored: ``fused`` the order before rules (vectors alone: the ranking
    similarity), ``final`` after them (``factor``), ``pinned`` its pinned position."""
    before = candidate.fused if hybrid else effects.score_before(candidate)
    return {
        "keyword": round(candidate.keyword_score, 4) if candidate.keyword_score is not None else None,
        "vector": round(candidate.score, 4),
        "fused": round(before, 6),
        "relevant": candidate.relevant,
        "final": round(candidate.rank_score, 6),
        **effects.explain(candidate.product_id),
    }


def _pins_placed(
    matching: list[Candidate],
    effects: RuleEffects,
    made: list[Candidate],
    *,
    excluded: set[int],
    filters: FacetFilters,
    active: bool | None,
    space,
    index,
    vector: np.ndarray,
) -> list[Candidate]:
    """``matching`` (sorted) with the pinned products at their positions: taken from the
    list, from the candidates below the cutoff, or from the database (with the first
    indexed photo). A pin the search cannot list is skipped, with its reason."""
    listed = {c.product_id: c for c in matching}
    known = {c.product_id: c for c in made}
    wanted = [product_id for _, product_id, _ in effects.pins if product_id not in excluded]
    missing = [p for p in wanted if p not in listed and p not in known]
    outside, reasons = _pinned_from_database(missing, active, space, index, vector) if missing else ({}, {})
    placed = []
    for position, product_id, rule in effects.pins:
        candidate = listed.get(product_id) or known.get(product_id) or outside.get(product_id)
        if product_id in effects.hidden:
            reason = "hidden by a rule"
        elif product_id in excluded:
            reason = "left out of this search (the product itself, or rejected)"
        elif candidate is None:
            reason = reasons.get(product_id, "not found")
        elif product_id not in listed and filters.any and not matches(candidate, filters):
            reason = "does not match the chosen filters"
        else:
            placed.append((position, candidate, rule))
            continue
        effects.skipped.setdefault(rule.id, []).append(
            {"product_id": product_id, "position": position, "reason": reason}
        )
    moved = {candidate.product_id for _, candidate, _ in placed}
    ordered = [c for c in matching if c.product_id not in moved]
    for position, candidate, rule in placed:  # by position: each lands where asked
        ordered.insert(min(position - 1, len(ordered)), candidate)
        effects.pinned[candidate.product_id] = (position, rule)
    return ordered


def _pinned_from_database(
    product_ids: list[int], active: bool | None, space, index, vector: np.ndarray
) -> tuple[dict[int, Candidate], dict[int, str]]:
    """Candidates for pinned products the search did not find (their photo and vector are
    kept with the rules), and why the others cannot be listed."""
    pinned, reasons = pinned_products(product_ids, active=active, space=space, index=index)
    found = {}
    for product_id, product in pinned.items():
        score = float(product.vector @ vector) if product.vector is not None else -1.0
        found[product_id] = Candidate(
            product_id=product_id,
            image_id=product.image_id,
            score=score,
            rank_score=score,
            relevant=False,  # not found by the search: listed because pinned
            category=product.category,
            brand=product.brand,
            price=product.price,
            attributes=product.attributes,
        )
    return found, reasons


def _understood(plan) -> dict:
    return {
        "brands": list(plan.brands),
        "categories": list(plan.categories),
        "attributes": [{"key": key, "value": value} for key, value in plan.attributes],
        "unknown_words": list(plan.unknown),
    }


def _suggestions(plan) -> tuple[str, ...]:
    """Words to try when nothing matches: the query's own known words one at a time, then
    the catalog's most common categories."""
    vocab = vocabulary()
    words = [vocab.surface.get(group[0], group[0]) for group in plan.groups]
    common = sorted(set(vocab.categories.values()), key=lambda c: -vocab.products.get(whole_term(c), 0))
    return tuple(dict.fromkeys([*words, *common]))[:6]


def _candidate(
    found: IndexCandidate, rank_vector: np.ndarray | None, relevant: bool, keyword_score: float | None = None
) -> Candidate:
    facts = found.facts or {}
    price = facts.get("price")
    attributes = facts.get("attributes")
    return Candidate(
        product_id=found.product_id,
        image_id=found.image_id,
        score=found.score,
        rank_score=float(found.vector @ rank_vector) if rank_vector is not None else found.score,
        relevant=relevant,
        keyword_score=keyword_score,
        category=facts.get("category") or "",
        brand=facts.get("brand") or "",
        price=_price(price) if isinstance(price, (int, float)) else None,
        created_at=facts.get("created") or 0.0,
        attributes=attributes if isinstance(attributes, dict) else {},
    )


# "More like this": products of the product's kind first (VITRINE_SIMILAR_KIND_FIELDS: its
# category, its "kind" attribute…), nearest first, then the others. Each kind field shared
# is a tier: it outweighs any gap in photo resemblance (cosines differ by 2 at most) and
# the shared values' bonus below. Added to the resemblance as a mere bonus (0.05, 0.3), a
# look-alike of another kind still came first: a blue dotted bag's blue dotted hat, vase
# and clock before other bags, a red chair's red dotted clock before a black chair (the
# demo model's photo scores of one kind spread from 0.45 to 0.9).
SAME_KIND_WEIGHT = 3.0
# Each other attribute value shared with the product counts as this much resemblance, so
# that among look-alikes of its kind the same colour (pattern…) comes first. Translations
# (``colour_zh``) are the same fact again: they are not counted twice.
SHARED_VALUE_WEIGHT = 0.05
SHARED_VALUES_MAX_BONUS = 0.5


def _like_ordered(candidates: list[Candidate], category: str, attributes) -> None:
    attributes = attributes if isinstance(attributes, dict) else {}
    kind_fields = settings.VITRINE_SIMILAR_KIND_FIELDS
    kinds = [(key, attributes[key]) for key in kind_fields if isinstance(attributes.get(key), (str, int, float))]
    plain = [
        (key, value)
        for key, value in attributes.items()
        if isinstance(value, (str, int, float)) and key not in kind_fields and not is_translation_key(str(key))
    ]
    same_category = bool(category) and "category" in kind_fields
    for candidate in candidates:
        values = candidate.attributes or {}
        same_kind = sum(values.get(key) == value for key, value in kinds)
        same_kind += same_category and candidate.category == category
        shared = sum(values.get(key) == value for key, value in plain)
        bonus = min(SHARED_VALUE_WEIGHT * shared, SHARED_VALUES_MAX_BONUS)
        candidate.rank_score += SAME_KIND_WEIGHT * same_kind + bonus


@functools.lru_cache(maxsize=65536)
def _price(value: float) -> Decimal:
    """A payload's price as the shop wrote it (prices repeat: converted once each)."""
    return Decimal(str(round(value, 2)))


def _pushable(base: IndexFilters, filters: FacetFilters) -> IndexFilters:
    """The filters the index can apply: product fields and the faceted attributes it
    indexes (any other attribute is checked on the candidates)."""
    indexed = set(settings.VITRINE_FACET_ATTRIBUTES)
    return replace(
        base,
        categories=filters.categories,
        brands=filters.brands,
        price_min=filters.price_min,
        price_max=filters.price_max,
        attributes=tuple((key, values) for key, values in filters.attributes if key in indexed),
    )


def _validate(query: SearchQuery) -> None:
    has_text, has_image = bool(query.text.strip()), query.image is not None
    has_reference = bool(query.like_product_id or query.like_image_id)
    if not (has_text or has_image or has_reference or query.positive_ids):
        raise SearchError("bad_query", "Give a text, a photo, or a product to find similar ones.")
    if has_reference and (has_text or has_image or (query.like_product_id and query.like_image_id)):
        raise SearchError("bad_query", "“More like this” cannot be combined with words or a photo.")
    if query.sort not in SORTS:
        raise SearchError("bad_sort", f"sort must be one of: {', '.join(SORTS)}.")
    if not 1 <= query.limit <= MAX_LIMIT:
        raise SearchError("bad_limit", f"limit must be between 1 and {MAX_LIMIT}.")
    if query.offset < 0:
        raise SearchError("bad_offset", "offset cannot be negative.")
    if len(query.positive_ids) + len(query.negative_ids) > MAX_REFINEMENTS:
        raise SearchError("too_many_refinements", f"At most {MAX_REFINEMENTS} liked and rejected products at once.")
    if set(query.positive_ids) & set(query.negative_ids):
        raise SearchError("bad_refinement", "A product cannot be both liked and rejected.")


def _text_vector(encoder, text: str) -> np.ndarray:
    return _cached_vector(encoder, f"t:{text}", lambda: encoder.texts_encode([text])[0])


def _image_vector(encoder, image: Image.Image, image_key: str) -> np.ndarray:
    if not image_key:  # a photo without a stable name is encoded every time
        return encoder.images_encode([image])[0].astype(np.float32)
    return _cached_vector(encoder, f"i:{image_key}", lambda: encoder.images_encode([image])[0])


# Recent queries' vectors each process keeps per loaded model (2 KB each at 512
# dimensions), before asking the shared cache: shoppers repeat queries (paging, filters,
# popular words), and a model gives a text or a stored photo one vector, always.
KEPT_QUERY_VECTORS = 2048
_kept_vectors: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # encoder → {name: vector}
_kept_lock = threading.Lock()


def _cached_vector(encoder, name: str, encode) -> np.ndarray:
    """A query's vector (read-only): kept in this process, and in the shared cache for an
    hour (paging and filtering a search re-use it, in any process)."""
    kept = _kept_vectors.get(encoder)
    vector = kept.get(name) if kept is not None else None
    if vector is not None:
        return vector
    key = "vitrine:qv:" + hashlib.sha256(f"{encoder.space.id}\0{name}".encode()).hexdigest()
    cached = cache_call("get", None, key)
    if cached is not None:
        vector = np.frombuffer(cached, dtype=np.float32)
    else:
        vector = encode().astype(np.float32)
        cache_call("set", None, key, vector.tobytes(), 3600)
    vector.flags.writeable = False  # shared by every search of these words
    with _kept_lock:
        kept = _kept_vectors.setdefault(encoder, {})
        if len(kept) >= KEPT_QUERY_VECTORS:
            del kept[next(iter(kept))]  # the oldest
        kept[name] = vector
    return vector


def _sorted(candidates: list[Candidate], sort: str) -> list[Candidate]:
    if sort == "price":
        return sorted(candidates, key=lambda c: (c.price is None, c.price or 0, -c.rank_score))
    if sort == "-price":
        return sorted(candidates, key=lambda c: (c.price is None, -(c.price or 0), -c.rank_score))
    if sort == "newest":
        return sorted(candidates, key=lambda c: (c.created_at, c.product_id), reverse=True)
    return sorted(candidates, key=lambda c: -c.rank_score)
