"""What a search takes and gives: the query, the page of results, facets, and the
candidates the engine works on."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from PIL import Image

from catalog.models import Product, ProductImage
from searchsite.errors import InputRejected

MAX_LIMIT = 100


class SearchError(InputRejected):
    """The query cannot be run as asked."""


@dataclass(frozen=True)
class SearchHit:
    product: Product
    image: ProductImage
    score: float
    # How the result was scored: keyword, vector and fused scores, the rules' effect, the final score.
    explain: dict | None = None


SORTS = {
    "relevance": "Best match",
    "price": "Price: low to high",
    "-price": "Price: high to low",
    "newest": "Newest",
}


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
    # With relevant_only False: how many loosely related products to add (None: all).
    loose_limit: int | None = None
    # Correct misspelt words against the catalog's vocabulary ("search instead for" turns it off).
    correct: bool = True
    # Cutoffs to use instead of the space's (the admin's preview of a changed cutoff).
    text_cutoff: float | None = None
    image_cutoff: float | None = None
    # Merchandising rules to apply instead of the saved ones (embeddings.search.rules.Rule;
    # the admin's search preview of a rule changed but not saved). None: the saved rules.
    rules_override: tuple | None = None
    sort: str = "relevance"
    limit: int = 24
    offset: int = 0
    # Count facets and price buckets (False: the page has no filters to offer, e.g. the
    # product page's similar products; SearchPage.facets and price_buckets are then empty).
    facets: bool = True

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
    # False when the nearest VITRINE_SEARCH_CANDIDATES products were all relevant: the
    # counts are then over those, and products further away are not counted.
    facet_counts_exact: bool
    price_buckets: list[PriceBucket]
    price_range: tuple[Decimal, Decimal] | None
    cutoff: float | None
    kind: str
    embedding_space: str
    took_ms: float
    limit: int
    offset: int
    sort: str
    # The words searched when the query's spelling was corrected ("Showing results for …").
    corrected_query: str | None = None
    # Words to try when nothing matches.
    suggestions: tuple[str, ...] = ()
    # What the words were read as: brands, categories, attribute values, words the catalog lacks.
    understood: dict | None = None
    # How keyword and vector evidence were combined ("rrf", "score"; "" when vectors alone).
    fusion: str = ""
    # The merchandising rules that fired: [{id, name, skipped_pins: [{product_id, position, reason}]}].
    rules_fired: tuple[dict, ...] = ()


@dataclass(slots=True)
class Candidate:
    """One of the nearest products, with the fields filters, facets and sorting read."""

    product_id: int
    image_id: int
    score: float  # against the query as asked: decides relevance
    rank_score: float  # against the refined query (likes / not this): decides order
    relevant: bool = True  # above the cutoff
    keyword_score: float | None = None  # the keyword side's score (None: no keyword match)
    fused: float = 0.0  # the order of a hybrid search
    category: str = ""
    brand: str = ""
    price: Decimal | None = None
    created_at: float = 0.0  # the product's creation time (seconds since the epoch)
    attributes: dict | None = None
