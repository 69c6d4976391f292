"""What every vector-index engine offers Vitrine, in domain terms: image and product ids,
vectors, filters on product fields. ``edge`` (embedded) and ``server`` (Qdrant) implement it.

One collection per embedding space (model + weights + dimension), cosine distance, one
point per image, its payload the product's filterable fields (``embeddings.indexing``
writes it). A stable alias (``VITRINE_INDEX_ALIAS``) names the live collection.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from embeddings.model import EmbeddingSpace
from searchsite.errors import ServiceUnavailable

POINT_NAMESPACE = uuid.UUID("6f1c3a52-6a43-4e0a-9d7f-2f4f1c3b9a10")
COLLECTION_PREFIX = "vitrine-"
# What a candidate carries from its point's payload for the search engine's filters,
# facets and sorting (so it need not read 1,000 product rows from the database).
FACT_FIELDS = ("category", "brand", "price", "is_active", "created", "attributes")


class IndexUnavailable(ServiceUnavailable):
    """The vector store cannot be used right now; the message says why and what to do."""


@dataclass(frozen=True)
class ImagePoint:
    image_id: int
    product_id: int
    vector: np.ndarray
    payload: dict
    # The product's keyword terms and weights (``embeddings.keywords``): the sparse vector
    # of the keyword side of hybrid search. None: none written.
    keywords: dict[str, float] | None = None


@dataclass(frozen=True)
class IndexFilters:
    """Conditions on the product fields the points carry. Values of one field are
    alternatives (any of them); fields are all required."""

    categories: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    price_min: Decimal | None = None
    price_max: Decimal | None = None
    # ((attribute key, (values…)), …) on keys the points carry as ``attr_<key>``
    # (VITRINE_FACET_ATTRIBUTES): a product matches if any of its values is chosen.
    attributes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # True: active products only; False: inactive ones only; None: both.
    active: bool | None = True
    # Groups of alternative keyword terms: a product must hold one term of each group
    # (the ``terms`` payload: "every word matches", a word's group being it and its synonyms).
    terms: tuple[tuple[str, ...], ...] = ()
    exclude_product_ids: tuple[int, ...] = field(default=())


NO_FILTERS = IndexFilters()


@dataclass(frozen=True)
class IndexHit:
    product_id: int
    image_id: int
    score: float


@dataclass(slots=True)  # made by the thousand per search: not frozen (3× cheaper to build)
class IndexCandidate:
    """A product's best image for a query, with what the search engine asked for."""

    product_id: int
    image_id: int
    score: float
    vector: np.ndarray | None = None
    facts: dict | None = None  # FACT_FIELDS from the point's payload

    def __reduce__(self):
        # Pickled by the thousand per search between processes (``embeddings.index.remote``):
        # the dataclass's own pickling of slots calls ``fields()`` for every object, which
        # made sending a search's candidates cost more than finding them.
        return IndexCandidate, (self.product_id, self.image_id, self.score, self.vector, self.facts)


def image_point_id(image_id: int) -> str:
    """The server's point id of an image: the same id for every retry, never a duplicate."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"image:{image_id}"))


def collection_name(space: EmbeddingSpace) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", space.model.lower()).strip("-")[:40]
    digest = hashlib.sha256(space.id.encode()).hexdigest()[:10]
    return f"{COLLECTION_PREFIX}{slug}-{space.dimension}-{digest}"


def attribute_field(key: str) -> str:
    return f"attr_{key}"


class VectorIndex(ABC):
    """One engine's index. ``location`` says where it is (a folder or a URL), for messages."""

    engine: str
    location: str
    alias: str

    # --- collections ----------------------------------------------------------------

    @abstractmethod
    def ensure(self, space: EmbeddingSpace) -> str:
        """Create the space's collection if missing; point the alias at it if it has none."""

    @abstractmethod
    def alias_point(self, space: EmbeddingSpace) -> None:
        """Make the alias name this space's collection (after a complete re-index)."""

    @abstractmethod
    def alias_target(self) -> str | None: ...

    @abstractmethod
    def other_collections(self, space: EmbeddingSpace) -> dict[str, int]:
        """Vitrine's collections of other embedding spaces, with their point counts."""

    @abstractmethod
    def drop(self, name: str) -> None:
        """Delete a collection of an embedding space no longer used."""

    # --- writes ---------------------------------------------------------------------

    @abstractmethod
    def upsert(self, space: EmbeddingSpace, points: list[ImagePoint]) -> None: ...

    @abstractmethod
    def delete_images(self, image_ids: list[int]) -> None:
        """Remove the images' points from every space (an image may be in old ones too)."""

    @abstractmethod
    def set_product_payload(self, product_id: int, payload: dict, keywords: dict[str, float] | None = None) -> None:
        """Update the filterable fields (and, given, the keyword vector) on all of a
        product's points, in every space."""

    def optimize(self, space: EmbeddingSpace) -> bool:
        """Build what makes large collections fast (the HNSW graph) where the engine does
        not do it by itself; True if something was built."""
        return False

    # --- reads ----------------------------------------------------------------------

    @abstractmethod
    def candidates(
        self,
        space: EmbeddingSpace,
        vector: np.ndarray,
        *,
        limit: int,
        filters: IndexFilters = NO_FILTERS,
        score_threshold: float | None = None,
        with_vectors: bool = False,
        with_facts: bool = False,
    ) -> list[IndexCandidate]:
        """The best image of each of the ``limit`` nearest products matching the filters
        (and scoring at least ``score_threshold``), best first."""

    @abstractmethod
    def has_keywords(self, space: EmbeddingSpace) -> bool:
        """Whether the space's collection holds keyword vectors (collections made before
        hybrid search do not: ``manage.py reindex --rebuild`` makes one that does)."""

    @abstractmethod
    def keyword_candidates(
        self,
        space: EmbeddingSpace,
        weights: dict[str, float],
        *,
        limit: int,
        filters: IndexFilters = NO_FILTERS,
        require: tuple[tuple[str, ...], ...] = (),
        with_facts: bool = False,
    ) -> list[IndexCandidate]:
        """The best image of each of the ``limit`` products scoring best on the query's
        terms (``weights``; the engine multiplies each by its IDF), best first. ``require``:
        groups of alternative terms, each of which a product must hold one of."""

    def query(
        self, space: EmbeddingSpace, vector: np.ndarray, *, filters: IndexFilters, limit: int, offset: int
    ) -> list[IndexHit]:
        """The best image of each product, best products first, one page of them."""
        found = self.candidates(space, vector, limit=offset + limit, filters=filters)
        return [IndexHit(product_id=c.product_id, image_id=c.image_id, score=c.score) for c in found[offset:]]

    @abstractmethod
    def vectors(self, space: EmbeddingSpace, image_ids: list[int]) -> dict[int, np.ndarray]: ...

    @abstractmethod
    def payloads(self, space: EmbeddingSpace, image_ids: list[int]) -> dict[int, dict]:
        """The images' points' payloads (for people and tests looking inside the index)."""

    @abstractmethod
    def image_ids(self, space: EmbeddingSpace) -> set[int]:
        """Every image id with a point in the space's collection."""

    @abstractmethod
    def nearest_older(self, space: EmbeddingSpace, vectors: dict[int, np.ndarray], *, threshold: float) -> dict:
        """For each image, the oldest (smallest id) of its nearest images with a smaller id
        scoring at least ``threshold``: {image_id: (other_image_id, score)}."""

    @abstractmethod
    def count(self, space: EmbeddingSpace) -> int: ...

    @abstractmethod
    def close(self) -> None: ...
