"""The index on a Qdrant server, through qdrant-client (the only module that imports it).

Production sets ``QDRANT_URL``; the tests run the same code on qdrant-client's local mode
(``VITRINE_INDEX_ENGINE=qdrant-local``), which one process may open at a time
(https://python-client.qdrant.tech/: "local mode"). Point ids are uuid5(image pk), so
retries overwrite; the server groups hits by product. An unreachable server raises
:class:`IndexUnavailable`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
from django.conf import settings
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from embeddings.index.base import (
    COLLECTION_PREFIX,
    FACT_FIELDS,
    NO_FILTERS,
    ImagePoint,
    IndexCandidate,
    IndexFilters,
    IndexUnavailable,
    VectorIndex,
    attribute_field,
    collection_name,
    image_point_id,
)
from embeddings.keywords import sparse
from embeddings.model import EmbeddingSpace

logger = logging.getLogger(__name__)

# Payload fields that filters use; a Qdrant server gets an index on each.
PAYLOAD_SCHEMA = {
    "product_id": qm.PayloadSchemaType.INTEGER,
    "image_id": qm.PayloadSchemaType.INTEGER,
    "category": qm.PayloadSchemaType.KEYWORD,
    "brand": qm.PayloadSchemaType.KEYWORD,
    "price": qm.PayloadSchemaType.FLOAT,
    "is_active": qm.PayloadSchemaType.BOOL,
    "terms": qm.PayloadSchemaType.KEYWORD,
}
KEYWORDS = "keywords"  # the sparse vector of the product's terms (IDF applied by Qdrant)


class QdrantIndex(VectorIndex):
    engine = "qdrant"

    def __init__(
        self, *, client: QdrantClient, is_local: bool, location: str, alias: str, reads: QdrantClient | None = None
    ):
        self.client = client
        # A search's reads wait VITRINE_INDEX_READ_TIMEOUT, not the writes' QDRANT_TIMEOUT:
        # a server that accepts and never answers must not hold a shopper ten seconds.
        self.reads = reads or client
        self.is_local = is_local
        self.location = location
        self.alias = alias
        # Local mode is not thread-safe; the embedded server's threads take turns.
        self._lock = threading.RLock() if is_local else contextlib.nullcontext()
        self._ensured: set[str] = set()
        self._keywords: dict[str, bool] = {}

    # --- collections ----------------------------------------------------------------

    def ensure(self, space: EmbeddingSpace) -> str:
        """Create the space's collection if missing; point the alias at it if it has none."""
        name = collection_name(space)
        if name in self._ensured:
            return name
        with self._guard():
            # Reads on the search path (the first search of a process ensures its collection).
            if not self.reads.collection_exists(name):
                self.client.create_collection(name, **_collection_config(space, is_local=self.is_local))
                if not self.is_local:  # local mode has no payload indexes (it scans)
                    for key, schema in _payload_schema().items():
                        self.client.create_payload_index(name, field_name=key, field_schema=schema)
                logger.info("Created collection %s for %s", name, space.id)
            aliases = {a.alias_name: a.collection_name for a in self.reads.get_aliases().aliases}
            if self.alias not in aliases:
                self.client.update_collection_aliases(
                    change_aliases_operations=[
                        qm.CreateAliasOperation(
                            create_alias=qm.CreateAlias(collection_name=name, alias_name=self.alias)
                        )
                    ]
                )
        self._ensured.add(name)
        return name

    def drop(self, name: str) -> None:
        with self._guard():
            self.client.delete_collection(name)
        self._ensured.discard(name)
        self._keywords.pop(name, None)

    def has_keywords(self, space: EmbeddingSpace) -> bool:
        return self._has_keywords(self.ensure(space))

    def _has_keywords(self, name: str) -> bool:
        known = self._keywords.get(name)
        if known is None:
            with self._guard():
                sparse_config = self.reads.get_collection(name).config.params.sparse_vectors or {}
            known = self._keywords[name] = KEYWORDS in sparse_config
        return known

    def _vitrine_collections(self) -> list[str]:
        names = [c.name for c in self.client.get_collections().collections]
        return [name for name in names if name.startswith(COLLECTION_PREFIX)]

    # --- writes ---------------------------------------------------------------------

    def upsert(self, space: EmbeddingSpace, points: list[ImagePoint]) -> None:
        if not points:
            return
        name = self.ensure(space)
        keywords = self._has_keywords(name)
        structs = [
            qm.PointStruct(
                id=image_point_id(point.image_id),
                vector=_vectors(point.vector, point.keywords if keywords else None),
                payload={**point.payload, "image_id": point.image_id, "product_id": point.product_id},
            )
            for point in points
        ]
        with self._guard():
            self.client.upsert(name, points=structs, wait=True)

    def delete_images(self, image_ids: list[int]) -> None:
        """Remove the images' points from every space (an image may be in old ones too)."""
        if not image_ids:
            return
        selector = qm.PointIdsList(points=[image_point_id(image_id) for image_id in image_ids])
        with self._guard():
            for name in self._vitrine_collections():
                self.client.delete(name, points_selector=selector, wait=True)

    def set_product_payload(self, product_id: int, payload: dict, keywords: dict[str, float] | None = None) -> None:
        """Update the filterable fields (and the keyword vector) on all of a product's
        points, in every space."""
        selector = _product_filter(product_id)
        with self._guard():
            for name in self._vitrine_collections():
                self.client.set_payload(name, payload=payload, points=selector, wait=True)
                if keywords is None or not self._has_keywords(name):
                    continue
                records, _ = self.client.scroll(
                    name, scroll_filter=selector, limit=10_000, with_payload=False, with_vectors=False
                )
                if records:
                    indices, values = sparse(keywords)
                    vector = {KEYWORDS: qm.SparseVector(indices=indices, values=values)}
                    self.client.update_vectors(
                        name, points=[qm.PointVectors(id=r.id, vector=vector) for r in records], wait=True
                    )

    # --- reads ----------------------------------------------------------------------

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
        name = self.ensure(space)
        payload = ["product_id", "image_id", *FACT_FIELDS] if with_facts else ["product_id", "image_id"]
        with self._guard():
            result = self.reads.query_points_groups(
                name,
                query=np.asarray(vector, dtype=np.float32).tolist(),
                group_by="product_id",
                group_size=1,
                limit=limit,
                query_filter=_filter(filters),
                score_threshold=score_threshold,
                search_params=qm.SearchParams(hnsw_ef=settings.VITRINE_INDEX_HNSW_EF)
                if settings.VITRINE_INDEX_HNSW_EF
                else None,
                with_payload=payload,
                with_vectors=with_vectors,
            )
        found = []
        for group in result.groups:
            hit = group.hits[0]
            found.append(
                IndexCandidate(
                    product_id=int(group.id),
                    image_id=int(hit.payload["image_id"]),
                    score=float(hit.score),
                    vector=_dense(hit.vector) if with_vectors else None,
                    facts={key: hit.payload.get(key) for key in FACT_FIELDS} if with_facts else None,
                )
            )
        return found

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
        name = self.ensure(space)
        if not weights or not self._has_keywords(name):
            return []
        condition = _filter(replace(filters, terms=require) if require else filters)
        indices, values = sparse(weights)
        payload = ["product_id", "image_id", *FACT_FIELDS] if with_facts else ["product_id", "image_id"]
        with self._guard():
            result = self.reads.query_points_groups(
                name,
                query=qm.SparseVector(indices=indices, values=values),
                using=KEYWORDS,
                group_by="product_id",
                group_size=1,
                limit=limit,
                query_filter=condition,
                with_payload=payload,
            )
        return [
            IndexCandidate(
                product_id=int(group.id),
                image_id=int(group.hits[0].payload["image_id"]),
                score=float(group.hits[0].score),
                facts={key: group.hits[0].payload.get(key) for key in FACT_FIELDS} if with_facts else None,
            )
            for group in result.groups
        ]

    def vectors(self, space: EmbeddingSpace, image_ids: list[int]) -> dict[int, np.ndarray]:
        if not image_ids:
            return {}
        name = self.ensure(space)
        with self._guard():
            records = self.reads.retrieve(
                name, ids=[image_point_id(i) for i in image_ids], with_vectors=True, with_payload=["image_id"]
            )
        return {int(r.payload["image_id"]): _dense(r.vector) for r in records}

    def payloads(self, space: EmbeddingSpace, image_ids: list[int]) -> dict[int, dict]:
        if not image_ids:
            return {}
        name = self.ensure(space)
        with self._guard():
            records = self.client.retrieve(name, ids=[image_point_id(i) for i in image_ids], with_payload=True)
        return {int(r.payload["image_id"]): r.payload for r in records}

    def image_ids(self, space: EmbeddingSpace, *, batch: int = 1000) -> set[int]:
        """Every image id with a point in the space's collection (scrolled in batches)."""
        name = self.ensure(space)
        found: set[int] = set()
        offset = None
        while True:
            with self._guard():
                records, offset = self.client.scroll(
                    name, limit=batch, offset=offset, with_payload=["image_id"], with_vectors=False
                )
            found.update(int(r.payload["image_id"]) for r in records if r.payload and "image_id" in r.payload)
            if offset is None:
                return found

    def other_collections(self, space: EmbeddingSpace) -> dict[str, int]:
        """Vitrine's collections of other embedding spaces, with their point counts."""
        current = collection_name(space)
        with self._guard():
            names = [name for name in self._vitrine_collections() if name != current]
            return {name: self.client.count(name, exact=True).count for name in names}

    def nearest_older(self, space: EmbeddingSpace, vectors: dict[int, np.ndarray], *, threshold: float) -> dict:
        """For each image, the oldest (smallest id) of its nearest images with a smaller id
        scoring at least ``threshold``: {image_id: (other_image_id, score)}."""
        if not vectors:
            return {}
        name = self.ensure(space)
        ids = list(vectors)
        requests = [
            qm.QueryRequest(
                query=vectors[i].astype(np.float32).tolist(),
                limit=4,
                score_threshold=threshold,
                with_payload=["image_id"],
            )
            for i in ids
        ]
        with self._guard():
            responses = self.client.query_batch_points(name, requests=requests)
        found = {}
        for image_id, response in zip(ids, responses, strict=True):
            older = [(int(p.payload["image_id"]), float(p.score)) for p in response.points]
            older = [(other, score) for other, score in older if other < image_id]
            if older:
                found[image_id] = min(older)  # the original: the oldest of the copies
        return found

    def count(self, space: EmbeddingSpace) -> int:
        name = self.ensure(space)
        with self._guard():
            return self.client.count(name, exact=True).count

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        if self.reads is not self.client:
            with contextlib.suppress(Exception):
                self.reads.close()

    def alias_point(self, space: EmbeddingSpace) -> None:
        """Make the alias name this space's collection (after a complete re-index)."""
        name = self.ensure(space)
        with self._guard():
            aliases = {a.alias_name: a.collection_name for a in self.client.get_aliases().aliases}
            operations = []
            if self.alias in aliases:
                operations.append(qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=self.alias)))
            operations.append(
                qm.CreateAliasOperation(create_alias=qm.CreateAlias(collection_name=name, alias_name=self.alias))
            )
            self.client.update_collection_aliases(change_aliases_operations=operations)

    def alias_target(self) -> str | None:
        with self._guard():
            aliases = {a.alias_name: a.collection_name for a in self.reads.get_aliases().aliases}
        return aliases.get(self.alias)

    @contextlib.contextmanager
    def _guard(self):
        try:
            with self._lock, _translate_errors(self.location):
                yield
        except IndexUnavailable:
            # A collection deleted behind our back is created again on the next call.
            self._ensured.clear()
            raise


def _dense(vector) -> np.ndarray:
    """A point's image vector (the unnamed one, beside the named keyword vector)."""
    if isinstance(vector, dict):
        vector = vector[""]
    return np.asarray(vector, dtype=np.float32)


def _vectors(vector: np.ndarray, keywords: dict[str, float] | None):
    dense = vector.astype(np.float32).tolist()
    if not keywords:
        return {"": dense}
    indices, values = sparse(keywords)
    return {"": dense, KEYWORDS: qm.SparseVector(indices=indices, values=values)}


def _product_filter(product_id: int) -> qm.Filter:
    return qm.Filter(must=[qm.FieldCondition(key="product_id", match=qm.MatchValue(value=product_id))])


def _filter(filters: IndexFilters) -> qm.Filter | None:
    must: list = []
    must_not: list = []
    if filters.active is not None:
        must.append(qm.FieldCondition(key="is_active", match=qm.MatchValue(value=filters.active)))
    if filters.categories:
        must.append(qm.FieldCondition(key="category", match=qm.MatchAny(any=list(filters.categories))))
    if filters.brands:
        must.append(qm.FieldCondition(key="brand", match=qm.MatchAny(any=list(filters.brands))))
    if filters.price_min is not None or filters.price_max is not None:
        must.append(
            qm.FieldCondition(
                key="price",
                range=qm.Range(
                    gte=float(filters.price_min) if filters.price_min is not None else None,
                    lte=float(filters.price_max) if filters.price_max is not None else None,
                ),
            )
        )
    for key, values in filters.attributes:
        if values:
            must.append(qm.FieldCondition(key=attribute_field(key), match=qm.MatchAny(any=[str(v) for v in values])))
    must.extend(qm.FieldCondition(key="terms", match=qm.MatchAny(any=list(group))) for group in filters.terms)
    if filters.exclude_product_ids:
        must_not.append(qm.FieldCondition(key="product_id", match=qm.MatchAny(any=list(filters.exclude_product_ids))))
    if not must and not must_not:
        return None
    return qm.Filter(must=must or None, must_not=must_not or None)


def _payload_schema() -> dict:
    schema = dict(PAYLOAD_SCHEMA)
    for key in settings.VITRINE_FACET_ATTRIBUTES:
        schema[attribute_field(key)] = qm.PayloadSchemaType.KEYWORD
    return schema


def _collection_config(space: EmbeddingSpace, *, is_local: bool) -> dict:
    """Vectors, HNSW, quantization and sharding from settings (a server only: local mode
    takes the vectors and ignores the rest)."""
    quantization = None
    if settings.VITRINE_INDEX_QUANTIZATION == "int8":
        quantization = qm.ScalarQuantization(
            scalar=qm.ScalarQuantizationConfig(type=qm.ScalarType.INT8, quantile=0.99, always_ram=True)
        )
    return {
        "vectors_config": qm.VectorParams(
            size=space.dimension, distance=qm.Distance.COSINE, on_disk=settings.VITRINE_INDEX_ON_DISK or None
        ),
        "sparse_vectors_config": {KEYWORDS: qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
        "hnsw_config": qm.HnswConfigDiff(
            m=settings.VITRINE_INDEX_HNSW_M,
            ef_construct=settings.VITRINE_INDEX_HNSW_EF_CONSTRUCT,
            full_scan_threshold=settings.VITRINE_INDEX_FULL_SCAN_KB,
        ),
        "quantization_config": quantization,
        "shard_number": settings.QDRANT_SHARDS,
        "replication_factor": settings.QDRANT_REPLICAS,
        "metadata": {"embedding_space": space.id} if not is_local else None,
    }


@contextlib.contextmanager
def _translate_errors(location: str):
    try:
        yield
    except ResponseHandlingException as exc:
        raise IndexUnavailable(f"The Qdrant server at {location} did not answer: {exc}") from exc
    except UnexpectedResponse as exc:
        status = exc.status_code or 0
        if status >= 500:
            raise IndexUnavailable(f"The Qdrant server at {location} failed: HTTP {status}") from exc
        if status in (401, 403):
            raise IndexUnavailable(
                f"The Qdrant server at {location} refused the request (HTTP {status}); check QDRANT_API_KEY."
            ) from exc
        if status == 404:
            raise IndexUnavailable(f"A collection is missing on the Qdrant server at {location}: {exc}") from exc
        raise


def server_index_open() -> QdrantIndex:
    """The Qdrant server at QDRANT_URL."""

    def client(timeout: float) -> QdrantClient:
        return QdrantClient(
            url=settings.QDRANT_URL,
            api_key=settings.QDRANT_API_KEY or None,
            timeout=max(1, math.ceil(timeout)),  # whole seconds (qdrant-client rounds up)
            # The version check is a request at construction; a down server would stall start-up.
            check_compatibility=False,
        )

    return QdrantIndex(
        client=client(settings.QDRANT_TIMEOUT),
        reads=client(settings.VITRINE_INDEX_READ_TIMEOUT),
        is_local=False,
        location=settings.QDRANT_URL,
        alias=settings.VITRINE_INDEX_ALIAS,
    )


def local_index_open(path: Path) -> QdrantIndex:
    """qdrant-client's local mode in a folder: the server's code path, in this process."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        client = QdrantClient(path=str(path))
    except RuntimeError as exc:
        if "already accessed" not in str(exc):
            raise
        raise IndexUnavailable(
            f"The embedded vector store at {path} is in use by another Vitrine process (most likely the "
            "server started by `make run`, or a worker). Only one process can open it at a time: stop that "
            "process and try again, or run Qdrant as a server (QDRANT_URL) to share it."
        ) from None
    return QdrantIndex(client=client, is_local=True, location=str(path), alias=settings.VITRINE_INDEX_ALIAS)
