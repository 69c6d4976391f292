"""The search service: encode the query, ask the index, hydrate products from the DB.

Queries are a text, an image, or an existing product or image ("more like this", which
excludes the product itself). Results are one hit per product (its best image), in rank
order, with the cosine score.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, replace
from decimal import Decimal

import numpy as np
from django.conf import settings
from django.core.cache import cache
from PIL import Image

from catalog.models import Product, ProductImage
from embeddings.index import IndexFilters, get_index
from embeddings.model import get_encoder
from embeddings.relevance import cutoffs_get
from searchsite.errors import InputRejected

logger = logging.getLogger(__name__)

MAX_LIMIT = 100
NO_FILTERS = IndexFilters()


class SearchError(InputRejected):
    """The query cannot be run as asked."""


@dataclass(frozen=True)
class SearchHit:
    product: Product
    image: ProductImage
    score: float


@dataclass(frozen=True)
class SearchResult:
    hits: list[SearchHit]
    limit: int
    offset: int
    embedding_space: str
    took_ms: float


def product_search(
    *,
    text: str = "",
    image: Image.Image | None = None,
    like_product_id: int | None = None,
    like_image_id: int | None = None,
    filters: IndexFilters = NO_FILTERS,
    limit: int = 24,
    offset: int = 0,
) -> SearchResult:
    started = time.monotonic()
    text = text.strip()
    given = sum(bool(x) for x in (text, image is not None, like_product_id, like_image_id))
    if given != 1:
        raise SearchError(
            "bad_query", "Give exactly one of: a text, an image, a product to find similar ones, or an image id."
        )
    if not 1 <= limit <= MAX_LIMIT:
        raise SearchError("bad_limit", f"limit must be between 1 and {MAX_LIMIT}.")
    if offset < 0:
        raise SearchError("bad_offset", "offset cannot be negative.")

    encoder = get_encoder()
    space = encoder.space
    index = get_index()
    if text:
        vector = encoder.texts_encode([text])[0]
    elif image is not None:
        vector = encoder.images_encode([image])[0]
    else:
        vector, product_id = _reference_vector(space, index, like_product_id, like_image_id)
        filters = replace(filters, exclude_product_ids=(*filters.exclude_product_ids, product_id))

    index_hits = index.query(space, vector, filters=filters, limit=limit, offset=offset)
    products = Product.objects.in_bulk([hit.product_id for hit in index_hits])
    images = ProductImage.objects.in_bulk([hit.image_id for hit in index_hits])
    hits = []
    for hit in index_hits:
        product, product_image = products.get(hit.product_id), images.get(hit.image_id)
        # The DB is the truth: a point whose row is gone (deleted while the index lagged,
        # or a product deactivated moments ago) is not shown.
        if product is None or product_image is None or (filters.active_only and not product.is_active):
            continue
        hits.append(SearchHit(product=product, image=product_image, score=float(hit.score)))
    took_ms = (time.monotonic() - started) * 1000
    logger.debug("Search returned %d hits in %.1f ms", len(hits), took_ms)
    return SearchResult(hits=hits, limit=limit, offset=offset, embedding_space=space.id, took_ms=took_ms)


def _reference_vector(space, index, like_product_id: int | None, like_image_id: int | None) -> tuple[np.ndarray, int]:
    if like_image_id:
        image = ProductImage.objects.filter(pk=like_image_id).first()
        if image is None:
            raise SearchError("not_found", f"There is no image with id {like_image_id}.")
        image_ids, product_id = [image.pk], image.product_id
    else:
        product = Product.objects.filter(pk=like_product_id).first()
        if product is None:
            raise SearchError("not_found", f"There is no product with id {like_product_id}.")
        image_ids, product_id = list(product.images.values_list("pk", flat=True)), product.pk
    vectors = list(index.vectors(space, image_ids).values())
    if not vectors:
        raise SearchError("not_indexed", "That product has no indexed image yet, so there is nothing to compare.")
    mean = np.mean(vectors, axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12), product_id


# --- The shoppers' search: relevance cutoff, facets, sorting, refinement ------------------

SORTS = {
    "relevance": "Best match",
    "price": "Price: low to high",
    "-price": "Price: high to low",
    "newest": "Newest",
}
MAX_REFINEMENTS = 20
# Rocchio weights for "like" and "not this": the query moves towards liked products and
# away from rejected ones (rejected ones are also left out).
LIKE_WEIGHT = 0.75
NOT_WEIGHT = 0.35


@dataclass(frozen=True)
class FacetFilters:
    categories: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    price_min: Decimal | None = None
    price_max: Decimal | None = None
    # ((attribute key, (values…)), …): a product matches if any of its values is chosen.
    attributes: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def any(self) -> bool:
        has_price = self.price_min is not None or self.price_max is not None
        return bool(self.categories or self.brands or has_price or self.attributes)


@dataclass(frozen=True)
class SearchQuery:
    text: str = ""
    image: Image.Image | None = None
    # A stable name for ``image`` (the stored query photo's token) so its vector is cached.
    image_key: str = ""
    like_product_id: int | None = None
    like_image_id: int | None = None
    positive_ids: tuple[int, ...] = ()
    negative_ids: tuple[int, ...] = ()
    filters: FacetFilters = FacetFilters()
    # True: active products only (shoppers); False: inactive ones only; None: both.
    active: bool | None = True
    # Attribute keys to count as facets (None: VITRINE_FACET_ATTRIBUTES).
    facet_attributes: tuple[str, ...] | None = None
    relevant_only: bool = True
    sort: str = "relevance"
    limit: int = 24
    offset: int = 0

    @property
    def kind(self) -> str:
        if self.image is not None:
            return "image+text" if self.text.strip() else "image"
        if self.like_product_id or self.like_image_id:
            return "product"
        if self.positive_ids and not self.text.strip():
            return "products"  # recommendations: more like the liked products
        return "text"


@dataclass(frozen=True)
class FacetValue:
    value: str
    count: int
    selected: bool


@dataclass(frozen=True)
class Facet:
    name: str  # the query parameter: category, brand, or attr.<key>
    label: str
    values: list[FacetValue]


@dataclass(frozen=True)
class PriceBucket:
    low: Decimal | None
    high: Decimal | None
    count: int


@dataclass(frozen=True)
class SearchPage:
    hits: list[SearchHit]
    total: int  # products matching the query and filters (relevant ones only, unless loosely related asked)
    total_is_capped: bool
    loosely_related: int  # products below the cutoff matching the filters (hidden when relevant_only)
    facets: list[Facet]
    price_buckets: list[PriceBucket]
    price_range: tuple[Decimal, Decimal] | None
    cutoff: float | None
    kind: str
    embedding_space: str
    took_ms: float
    limit: int
    offset: int
    sort: str


@dataclass
class _Candidate:
    product_id: int
    image_id: int
    score: float  # against the query as asked: decides relevance
    rank_score: float  # against the refined query (likes / not this): decides order
    relevant: bool = True  # above the cutoff
    category: str = ""
    brand: str = ""
    price: Decimal | None = None
    created_at: object = None
    attributes: dict | None = None


def catalog_search(query: SearchQuery) -> SearchPage:
    """Search the catalog for shoppers: the nearest products, cut at the space's relevance
    cutoff, filtered, counted per facet value, sorted and paged.

    Filters and facets work on the database's product fields for the nearest
    ``VITRINE_SEARCH_CANDIDATES`` products, so counts agree with what the page lists.
    """
    started = time.monotonic()
    _validate(query)
    encoder = get_encoder()
    space = encoder.space
    index = get_index()
    kind = query.kind
    excluded = set(query.negative_ids)
    text_vector = image_vector = None
    if kind == "text":
        vector = _text_vector(encoder, query.text.strip())
    elif kind in ("image", "image+text"):
        vector = image_vector = _image_vector(encoder, query.image, query.image_key)
        if kind == "image+text":
            text_vector = _text_vector(encoder, query.text.strip())
            vector = _unit(image_vector + text_vector)
    elif kind == "products":
        vector = _liked_vector(space, index, query.positive_ids)
        excluded.update(query.positive_ids)
    else:
        vector, product_id = _reference_vector(space, index, query.like_product_id, query.like_image_id)
        excluded.add(product_id)
    cutoffs = cutoffs_get(space)
    cutoff = cutoffs.for_query("product" if kind == "products" else kind)
    # A photo with words: relevant when the words match and the item still resembles the photo.
    two_tests = kind == "image+text" and cutoffs.text is not None and cutoffs.resemblance is not None
    if two_tests:
        cutoff = cutoffs.text

    rank_vector = None
    if query.positive_ids or query.negative_ids:
        rank_vector = _refined_vector(space, index, vector, query.positive_ids, query.negative_ids)

    limit = settings.VITRINE_SEARCH_CANDIDATES
    raw = index.candidates(
        space,
        vector,
        limit=limit,
        active_only=query.active is True,
        exclude_product_ids=tuple(sorted(excluded)),
        with_vectors=rank_vector is not None or two_tests,
    )
    capped = len(raw) >= limit
    rows = {
        row["pk"]: row
        for row in Product.objects.filter(pk__in=[c.product_id for c in raw]).values(
            "pk", "category", "brand", "price", "created_at", "attributes", "is_active"
        )
    }
    candidates = []
    for c in raw:
        row = rows.get(c.product_id)
        # The DB is the truth: a point whose product is gone or was deactivated moments ago is not shown.
        if row is None or (query.active is not None and row["is_active"] != query.active):
            continue
        rank_score = float(c.vector @ rank_vector) if rank_vector is not None else c.score
        if two_tests:
            relevant = (
                float(c.vector @ text_vector) >= cutoffs.text and float(c.vector @ image_vector) >= cutoffs.resemblance
            )
        else:
            relevant = cutoff is None or c.score >= cutoff
        candidates.append(
            _Candidate(
                product_id=c.product_id,
                image_id=c.image_id,
                score=c.score,
                rank_score=rank_score,
                relevant=relevant,
                category=row["category"],
                brand=row["brand"],
                price=row["price"],
                created_at=row["created_at"],
                attributes=row["attributes"] if isinstance(row["attributes"], dict) else {},
            )
        )
    relevant = [c for c in candidates if c.relevant]
    loose = [c for c in candidates if not c.relevant]
    universe = relevant if query.relevant_only else relevant + loose
    filters = query.filters
    matching = [c for c in universe if _matches(c, filters)]
    attribute_keys = (
        settings.VITRINE_FACET_ATTRIBUTES if query.facet_attributes is None else list(query.facet_attributes)
    )
    facets = _facets(universe, filters, attribute_keys)
    prices_universe = [c for c in universe if _matches(c, filters, skip="price")]
    price_buckets = _price_buckets(prices_universe)
    prices = [c.price for c in prices_universe if c.price is not None]
    loosely_related = sum(1 for c in loose if _matches(c, filters)) if query.relevant_only else 0

    matching = _sorted(matching, query.sort)
    page = matching[query.offset : query.offset + query.limit]
    products = Product.objects.in_bulk([c.product_id for c in page])
    images = ProductImage.objects.in_bulk([c.image_id for c in page])
    hits = [
        SearchHit(product=products[c.product_id], image=images[c.image_id], score=c.score)
        for c in page
        if c.product_id in products and c.image_id in images
    ]
    took_ms = (time.monotonic() - started) * 1000
    logger.debug("Catalog search (%s) found %d of %d candidates in %.1f ms", kind, len(matching), len(raw), took_ms)
    return SearchPage(
        hits=hits,
        total=len(matching),
        total_is_capped=capped,
        loosely_related=loosely_related,
        facets=facets,
        price_buckets=price_buckets,
        price_range=(min(prices), max(prices)) if prices else None,
        cutoff=cutoff,
        kind=kind,
        embedding_space=space.id,
        took_ms=took_ms,
        limit=query.limit,
        offset=query.offset,
        sort=query.sort,
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


def _unit(vector: np.ndarray) -> np.ndarray:
    return (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)


def _text_vector(encoder, text: str) -> np.ndarray:
    return _cached_vector(encoder, f"t:{text}", lambda: encoder.texts_encode([text])[0])


def _image_vector(encoder, image: Image.Image, image_key: str) -> np.ndarray:
    if not image_key:  # a photo without a stable name is encoded every time
        return encoder.images_encode([image])[0].astype(np.float32)
    return _cached_vector(encoder, f"i:{image_key}", lambda: encoder.images_encode([image])[0])


def _cached_vector(encoder, name: str, encode) -> np.ndarray:
    """A query's vector, cached for an hour (paging and filtering a search re-use it)."""
    key = "vitrine:qv:" + hashlib.sha256(f"{encoder.space.id}\0{name}".encode()).hexdigest()
    cached = cache.get(key)
    if cached is not None:
        return np.frombuffer(cached, dtype=np.float32)
    vector = encode().astype(np.float32)
    cache.set(key, vector.tobytes(), 3600)
    return vector


def _liked_vector(space, index, product_ids: tuple[int, ...]) -> np.ndarray:
    """The mean of the liked products' mean photo vectors (each product counts once)."""
    image_ids = dict(ProductImage.objects.filter(product_id__in=product_ids).values_list("pk", "product_id"))
    by_product: dict[int, list[np.ndarray]] = {}
    for image_id, image_vector in index.vectors(space, list(image_ids)).items():
        by_product.setdefault(image_ids[image_id], []).append(image_vector)
    if not by_product:
        raise SearchError("not_indexed", "None of these products has an indexed photo yet.")
    return _unit(np.mean([_unit(np.mean(vectors, axis=0)) for vectors in by_product.values()], axis=0))


def _refined_vector(
    space, index, vector: np.ndarray, positive: tuple[int, ...], negative: tuple[int, ...]
) -> np.ndarray:
    image_ids = dict(ProductImage.objects.filter(product_id__in=[*positive, *negative]).values_list("pk", "product_id"))
    vectors = index.vectors(space, list(image_ids))
    by_product: dict[int, list[np.ndarray]] = {}
    for image_id, image_vector in vectors.items():
        by_product.setdefault(image_ids[image_id], []).append(image_vector)

    def mean_of(product_ids) -> np.ndarray | None:
        found = [_unit(np.mean(by_product[p], axis=0)) for p in product_ids if p in by_product]
        return np.mean(found, axis=0) if found else None

    refined = vector.astype(np.float32).copy()
    liked, rejected = mean_of(positive), mean_of(negative)
    if liked is not None:
        refined += LIKE_WEIGHT * liked
    if rejected is not None:
        refined -= NOT_WEIGHT * rejected
    return _unit(refined)


def _attribute_values(candidate: _Candidate, key: str) -> list[str]:
    value = (candidate.attributes or {}).get(key)
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, (int, float)):
        return [str(value)]
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, (str, int, float)) and str(v)]
    return []


def _matches(candidate: _Candidate, filters: FacetFilters, skip: str = "") -> bool:
    if skip != "category" and filters.categories and candidate.category not in filters.categories:
        return False
    if skip != "brand" and filters.brands and candidate.brand not in filters.brands:
        return False
    if skip != "price" and (filters.price_min is not None or filters.price_max is not None):
        if candidate.price is None:
            return False
        if filters.price_min is not None and candidate.price < filters.price_min:
            return False
        if filters.price_max is not None and candidate.price > filters.price_max:
            return False
    for key, values in filters.attributes:
        if skip != f"attr.{key}" and values and not set(values) & set(_attribute_values(candidate, key)):
            return False
    return True


def _facets(universe: list[_Candidate], filters: FacetFilters, attribute_keys: list[str]) -> list[Facet]:
    """Counts per value over the results that match every *other* active filter, so a
    shopper sees how many results each choice would give (chosen values always listed)."""
    chosen_attributes = dict(filters.attributes)
    dimensions = [
        ("category", "Category", lambda c: [c.category] if c.category else [], filters.categories),
        ("brand", "Brand", lambda c: [c.brand] if c.brand else [], filters.brands),
    ]
    for key in attribute_keys:
        dimensions.append(
            (
                f"attr.{key}",
                key.replace("_", " ").capitalize(),
                lambda c, key=key: _attribute_values(c, key),
                chosen_attributes.get(key, ()),
            )
        )
    facets = []
    for name, label, values_of, chosen in dimensions:
        counts: dict[str, int] = {}
        for candidate in universe:
            if _matches(candidate, filters, skip=name):
                for value in set(values_of(candidate)):
                    counts[value] = counts.get(value, 0) + 1
        for value in chosen:
            counts.setdefault(value, 0)
        if not counts:
            continue
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        facets.append(Facet(name=name, label=label, values=[FacetValue(v, n, v in chosen) for v, n in ordered]))
    return facets


def _price_buckets(candidates: list[_Candidate]) -> list[PriceBucket]:
    """Up to four price ranges with round edges, each holding a similar share of results."""
    prices = sorted(c.price for c in candidates if c.price is not None)
    if len(prices) < 4:
        return []
    edges: list[Decimal] = []
    for share in (0.25, 0.5, 0.75):
        edge = _round_price(prices[int(len(prices) * share)])
        if edge > prices[0] and edge < prices[-1] and (not edges or edge > edges[-1]):
            edges.append(edge)
    if not edges:
        return []
    bounds = [(None, edges[0]), *zip(edges, edges[1:], strict=False), (edges[-1], None)]
    buckets = []
    for low, high in bounds:
        count = sum(1 for p in prices if (low is None or p >= low) and (high is None or p < high))
        if count:
            buckets.append(PriceBucket(low=low, high=high, count=count))
    return buckets


def _round_price(price: Decimal) -> Decimal:
    """A price edge a person would pick: the price rounded down to half its power of ten
    (37.40 → 35, 123 → 100, 8.70 → 8)."""
    value = float(price)
    step = max(1.0, 10 ** int(np.floor(np.log10(max(value, 1.0)))) / 2)
    return Decimal(int(value // step * step))


def _sorted(candidates: list[_Candidate], sort: str) -> list[_Candidate]:
    if sort == "price":
        return sorted(candidates, key=lambda c: (c.price is None, c.price or 0, -c.rank_score))
    if sort == "-price":
        return sorted(candidates, key=lambda c: (c.price is None, -(c.price or 0), -c.rank_score))
    if sort == "newest":
        return sorted(candidates, key=lambda c: (c.created_at, c.product_id), reverse=True)
    return sorted(candidates, key=lambda c: -c.rank_score)
