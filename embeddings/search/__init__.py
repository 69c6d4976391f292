"""Search: the one engine every face and the evaluation use (``engine``), its filters and
facet counts (``facets``), and queries made of products (``refinement``)."""

from embeddings.search.engine import catalog_search
from embeddings.search.types import (
    MAX_LIMIT,
    SORTS,
    Facet,
    FacetFilters,
    FacetValue,
    PriceBucket,
    SearchError,
    SearchHit,
    SearchPage,
    SearchQuery,
)

__all__ = [
    "MAX_LIMIT",
    "SORTS",
    "Facet",
    "FacetFilters",
    "FacetValue",
    "PriceBucket",
    "SearchError",
    "SearchHit",
    "SearchPage",
    "SearchQuery",
    "catalog_search",
]
