"""The embedded index: Qdrant Edge, the Qdrant engine inside this process (the only module
that imports ``qdrant_edge``). https://qdrant.tech/documentation/edge/

Each embedding space is an Edge shard in its own folder under ``VITRINE_INDEX_PATH``; a
small JSON file there names the collections' spaces and the alias. One process owns the
folder (a lock file, taken when the index opens): the web server in the embedded mode, or
a command when no server runs. Payload indexes on every filterable field; the HNSW graph
is built by :meth:`EdgeIndex.optimize` once a collection is large enough to need one
(below ``indexing_threshold`` an exact scan is faster). Facts measured on this machine:
``docs/architecture.md`` ("The vector index").

Point ids encode the product and the image (``product_id << 32 | image_id``): the best
photo of each product is found from the ids alone, without reading payloads, and a retried
upsert overwrites its point.

The facts the search engine reads of its candidates (category, brand, price, …: product
fields, the same on every photo of a product) are kept in memory per product once read or
written: reading 1,000 payloads from the shard costs 10–15 ms, from the dict well under
one. The store belongs to this process alone, so every change passes through here and the
cache cannot go stale (a read that raced a write does not keep what it read).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
from django.conf import settings
from qdrant_edge import (
    CountRequest,
    Distance,
    EdgeConfig,
    EdgeOptimizersConfig,
    EdgeShard,
    EdgeSparseVectorParams,
    EdgeVectorParams,
    FieldCondition,
    Filter,
    HnswIndexConfig,
    MatchAny,
    MatchValue,
    Modifier,
    PayloadSchemaType,
    PayloadSelector,
    Point,
    PointVectors,
    Query,
    QueryBatchRequest,
    QueryRequest,
    RangeFloat,
    ScalarQuantizationConfig,
    ScalarType,
    ScrollRequest,
    SearchParams,
    SparseVector,
    UpdateOperation,
)

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
)
from embeddings.keywords import sparse
from embeddings.model import EmbeddingSpace

logger = logging.getLogger(__name__)

VECTOR = "image"
KEYWORDS = "keywords"  # the sparse vector of the product's terms (IDF applied by the engine)
META_FILE = "vitrine-index.json"
LOCK_FILE = ".lock"
IMAGE_BITS = 32
IMAGE_MASK = (1 << IMAGE_BITS) - 1
# Points fetched per product wanted, at most and at first: most products have one to three
# photos. Each query learns how many points it took to reach its products; a query that
# finds fewer products than asked in a full page of points asks again for more.
FANOUT = 3
MIN_FANOUT = 1.1
# Products whose facts are kept in memory per collection (about 0.4 KB each).
FACTS_CACHE_MAX = 2_000_000
UPSERT_BATCH = 1000
POINTS_SEEN_KEPT = 4096  # query shapes (filter combinations) remembered
PAYLOAD_INDEXES = {
    "product_id": PayloadSchemaType.Integer,
    "image_id": PayloadSchemaType.Integer,
    "category": PayloadSchemaType.Keyword,
    "brand": PayloadSchemaType.Keyword,
    "price": PayloadSchemaType.Float,
    "is_active": PayloadSchemaType.Bool,
    "terms": PayloadSchemaType.Keyword,
}


def edge_point_id(product_id: int, image_id: int) -> int:
    if not (0 <= image_id <= IMAGE_MASK and 0 <= product_id < 1 << (64 - IMAGE_BITS)):
        raise ValueError(f"Image {image_id} of product {product_id}: ids beyond 2^32 do not fit a point id.")
    return product_id << IMAGE_BITS | image_id


def _ids_of(point_id) -> tuple[int, int]:
    value = int(point_id)
    return value >> IMAGE_BITS, value & IMAGE_MASK


class EdgeIndex(VectorIndex):
    engine = "edge"

    def __init__(self, *, root: Path, alias: str):
        self.root = root
        self.location = str(root)
        self.alias = alias
        self._shards: dict[str, EdgeShard] = {}
        self._lock = threading.RLock()
        # collection → product id → facts (FACT_FIELDS); see the module's docstring.
        self._facts_cache: dict[str, dict[int, dict]] = {}
        self._shared_attributes: dict = {}
        self._writes = 0  # bumped by every payload change: reads started before keep nothing
        self._fanout = float(FANOUT)
        # (collection, query shape) → the most points such a query matched (see _grouped)
        self._points_seen: dict[tuple, int] = {}
        root.mkdir(parents=True, exist_ok=True)
        self._lock_handle = _lock_folder(root)

    # --- collections ----------------------------------------------------------------

    def ensure(self, space: EmbeddingSpace) -> str:
        name = collection_name(space)
        with self._lock:
            if name in self._shards:
                return name
            meta = self._meta()
            path = self.root / name
            if (path / "edge_config.json").exists():
                shard = _load(path, space.dimension)
            else:
                shard = EdgeShard.create(str(path), _config(space.dimension, keywords=True))
                logger.info("Created collection %s for %s", name, space.id)
            for key, schema in _payload_indexes().items():
                shard.update(UpdateOperation.create_field_index(key, schema))
            self._shards[name] = shard
            meta["collections"][name] = space.id
            meta["aliases"].setdefault(self.alias, name)
            self._meta_write(meta)
        return name

    def alias_point(self, space: EmbeddingSpace) -> None:
        name = self.ensure(space)
        with self._lock:
            meta = self._meta()
            meta["aliases"][self.alias] = name
            self._meta_write(meta)

    def alias_target(self) -> str | None:
        with self._lock:
            return self._meta()["aliases"].get(self.alias)

    def other_collections(self, space: EmbeddingSpace) -> dict[str, int]:
        current = collection_name(space)
        return {name: self._count(name) for name in self._collections() if name != current}

    def drop(self, name: str) -> None:
        with self._lock:
            shard = self._shards.pop(name, None)
            if shard is not None:
                shard.close()
            self._facts_cache.pop(name, None)
            self._points_seen = {key: n for key, n in self._points_seen.items() if key[0] != name}
            shutil.rmtree(self.root / name, ignore_errors=True)
            _stored_keywords.cache_clear()
            meta = self._meta()
            meta["collections"].pop(name, None)
            meta["aliases"] = {alias: target for alias, target in meta["aliases"].items() if target != name}
            self._meta_write(meta)

    # --- writes ---------------------------------------------------------------------

    def upsert(self, space: EmbeddingSpace, points: list[ImagePoint]) -> None:
        if not points:
            return
        name = self.ensure(space)
        shard = self._shard(name)
        keywords = _stored_keywords(self.root / name)
        structs = [
            Point(
                edge_point_id(point.product_id, point.image_id),
                _vectors(point.vector, point.keywords if keywords else None),
                {**point.payload, "image_id": point.image_id, "product_id": point.product_id},
            )
            for point in points
        ]
        try:
            for start in range(0, len(structs), UPSERT_BATCH):
                with _translate_errors(self.location):
                    shard.update(UpdateOperation.upsert_points(structs[start : start + UPSERT_BATCH]))
        finally:
            self._writes += 1
            cache = self._facts_cache.setdefault(name, {})
            for point in points:
                cache.pop(point.product_id, None)

    def delete_images(self, image_ids: list[int]) -> None:
        if not image_ids:
            return
        selector = Filter(must=[FieldCondition("image_id", match=MatchAny([int(i) for i in image_ids]))])
        for name in self._collections():
            with _translate_errors(self.location):
                self._shard(name).update(UpdateOperation.delete_points_by_filter(selector))

    def set_product_payload(self, product_id: int, payload: dict, keywords: dict[str, float] | None = None) -> None:
        selector = Filter(must=[FieldCondition("product_id", match=MatchValue(int(product_id)))])
        try:
            for name in self._collections():
                shard = self._shard(name)
                with _translate_errors(self.location):
                    shard.update(UpdateOperation.set_payload_by_filter(selector, payload))
                    if keywords is not None and _stored_keywords(self.root / name):
                        records, _ = shard.scroll(
                            ScrollRequest(limit=10_000, filter=selector, with_payload=False, with_vector=False)
                        )
                        if records:
                            vector = {KEYWORDS: SparseVector(*sparse(keywords))}
                            shard.update(UpdateOperation.update_vectors([PointVectors(r.id, vector) for r in records]))
        finally:
            self._writes += 1
            for cache in self._facts_cache.values():
                cache.pop(int(product_id), None)

    def optimize(self, space: EmbeddingSpace) -> bool:
        """Build the HNSW graph (and quantized vectors) of segments past the indexing
        threshold. Blocking, and it holds the GIL: run it from commands and workers."""
        with _translate_errors(self.location):
            return bool(self._shard(self.ensure(space)).optimize())

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
        query = Query.Nearest(np.asarray(vector, dtype=np.float32).tolist(), using=VECTOR)
        params = SearchParams(hnsw_ef=settings.VITRINE_INDEX_HNSW_EF) if settings.VITRINE_INDEX_HNSW_EF else None
        return self._grouped(
            name,
            query,
            limit,
            _filter(filters),
            score_threshold,
            params,
            with_vectors=with_vectors,
            with_facts=with_facts,
            # Without a threshold, how many points match depends on the filters alone.
            shape=replace(filters, exclude_product_ids=()) if score_threshold is None else None,
        )

    def has_keywords(self, space: EmbeddingSpace) -> bool:
        return _stored_keywords(self.root / self.ensure(space))

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
        if not weights or not _stored_keywords(self.root / name):
            return []
        condition = _filter(replace(filters, terms=require) if require else filters)
        query = Query.Nearest(SparseVector(*sparse(weights)), using=KEYWORDS)
        return self._grouped(name, query, limit, condition, None, None, with_vectors=False, with_facts=with_facts)

    def _grouped(
        self,
        name,
        query,
        limit,
        condition,
        score_threshold,
        params,
        *,
        with_vectors: bool,
        with_facts: bool,
        shape: IndexFilters | None = None,
    ) -> list[IndexCandidate]:
        """The best point of each of the first ``limit`` products for a query. ``shape``: the
        filters that alone decide how many points the query matches (None: not only they)."""
        shard = self._shard(name)
        fetch = max(limit + 8, int(limit * self._fanout))
        # Fewer products match than asked for (a small shop asked for its nearest 1,000): a
        # query of this shape returned all its points before, so ask for that many at once,
        # not for ``fetch`` first and then four times more.
        key = (name, shape)
        seen = self._points_seen.get(key, 0) if shape is not None else 0
        if fetch <= seen < 4 * fetch:
            fetch = seen + 1
        while True:
            with _translate_errors(self.location):
                hits = shard.query(
                    QueryRequest(
                        query=query,
                        limit=fetch,
                        filter=condition,
                        score_threshold=score_threshold,
                        params=params,
                        with_payload=False,
                        with_vector=[VECTOR] if with_vectors else False,
                    )
                )
            best, used = _best_per_product(hits, limit)
            if shape is not None and seen < len(hits) < fetch:  # all the points it matches
                if len(self._points_seen) >= POINTS_SEEN_KEPT:
                    self._points_seen.clear()
                self._points_seen[key] = seen = len(hits)
            if len(best) >= limit or len(hits) < fetch:
                break
            fetch *= 4  # products with many photos filled the page: look further
        if len(best) >= limit:  # learn how many points a product takes (a slow moving average)
            needed = min(float(FANOUT), max(MIN_FANOUT, 1.2 * used / limit))
            self._fanout = 0.8 * self._fanout + 0.2 * needed
        facts = self._facts(name, shard, [point_id for point_id, _ in best]) if with_facts else {}
        if with_vectors:
            return [
                IndexCandidate(
                    point_id >> IMAGE_BITS,
                    point_id & IMAGE_MASK,
                    hit.score,
                    np.asarray(hit.vector[VECTOR], dtype=np.float32),
                    facts.get(point_id),
                )
                for point_id, hit in best
            ]
        return [
            IndexCandidate(point_id >> IMAGE_BITS, point_id & IMAGE_MASK, hit.score, None, facts.get(point_id))
            for point_id, hit in best
        ]

    def _facts(self, name: str, shard: EdgeShard, point_ids: list[int]) -> dict[int, dict]:
        """The facts of these points' products: from memory, the shard for the rest."""
        cache = self._facts_cache.setdefault(name, {})
        cached = cache.get
        found: dict[int, dict] = {}
        missing = []
        for point_id in point_ids:
            facts = cached(point_id >> IMAGE_BITS)
            if facts is None:
                missing.append(point_id)
            else:
                found[point_id] = facts
        if not missing:
            return found
        writes = self._writes
        with _translate_errors(self.location):
            records = shard.retrieve(missing, PayloadSelector.Include(list(FACT_FIELDS)), False)
        keep = writes == self._writes  # nothing changed while reading
        if keep and len(cache) + len(records) > FACTS_CACHE_MAX:
            cache.clear()
        for record in records:
            facts = self._facts_kept(record.payload or {})
            point_id = int(record.id)
            found[point_id] = facts
            if keep:
                cache[point_id >> IMAGE_BITS] = facts
        return found

    def _facts_kept(self, payload: dict) -> dict:
        """A product's facts, with one shared copy of each distinct attributes dict (a
        catalog has far fewer distinct ones than products)."""
        facts = {field: payload.get(field) for field in FACT_FIELDS}
        attributes = facts["attributes"]
        key = _attributes_key(attributes) if isinstance(attributes, dict) else None
        if key is not None:
            if len(self._shared_attributes) > FACTS_CACHE_MAX:
                self._shared_attributes.clear()
            facts["attributes"] = self._shared_attributes.setdefault(key, attributes)
        return facts

    def vectors(self, space: EmbeddingSpace, image_ids: list[int]) -> dict[int, np.ndarray]:
        records = self._by_image(space, image_ids, with_payload=False, with_vector=True)
        return {_ids_of(r.id)[1]: np.asarray(r.vector[VECTOR], dtype=np.float32) for r in records}

    def payloads(self, space: EmbeddingSpace, image_ids: list[int]) -> dict[int, dict]:
        records = self._by_image(space, image_ids, with_payload=True, with_vector=False)
        return {_ids_of(r.id)[1]: r.payload for r in records}

    def _by_image(self, space: EmbeddingSpace, image_ids: list[int], *, with_payload: bool, with_vector: bool):
        if not image_ids:
            return []
        shard = self._shard(self.ensure(space))
        selector = Filter(must=[FieldCondition("image_id", match=MatchAny([int(i) for i in image_ids]))])
        with _translate_errors(self.location):
            records, _ = shard.scroll(
                ScrollRequest(limit=len(image_ids), filter=selector, with_payload=with_payload, with_vector=with_vector)
            )
        return records

    def image_ids(self, space: EmbeddingSpace, *, batch: int = 5000) -> set[int]:
        shard = self._shard(self.ensure(space))
        found: set[int] = set()
        offset = None
        while True:
            with _translate_errors(self.location):
                records, offset = shard.scroll(
                    ScrollRequest(limit=batch, offset=offset, with_payload=False, with_vector=False)
                )
            found.update(_ids_of(record.id)[1] for record in records)
            if offset is None:
                return found

    def nearest_older(self, space: EmbeddingSpace, vectors: dict[int, np.ndarray], *, threshold: float) -> dict:
        if not vectors:
            return {}
        shard = self._shard(self.ensure(space))
        ids = list(vectors)
        requests = [
            QueryRequest(
                query=Query.Nearest(np.asarray(vectors[i], dtype=np.float32).tolist(), using=VECTOR),
                limit=4,
                score_threshold=threshold,
            )
            for i in ids
        ]
        with _translate_errors(self.location):
            responses = shard.query_batch(QueryBatchRequest(requests))
        found = {}
        for image_id, hits in zip(ids, responses, strict=True):
            older = [(_ids_of(hit.id)[1], float(hit.score)) for hit in hits]
            older = [(other, score) for other, score in older if other < image_id]
            if older:
                found[image_id] = min(older)  # the original: the oldest of the copies
        return found

    def count(self, space: EmbeddingSpace) -> int:
        return self._count(self.ensure(space))

    def _count(self, name: str) -> int:
        with _translate_errors(self.location):
            return int(self._shard(name).count(CountRequest(exact=True)))

    def close(self) -> None:
        with self._lock:
            for shard in self._shards.values():
                with contextlib.suppress(Exception):
                    shard.close()
            self._shards.clear()
            if self._lock_handle is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
                self._lock_handle.close()
                self._lock_handle = None

    # --- plumbing -------------------------------------------------------------------

    def _shard(self, name: str) -> EdgeShard:
        with self._lock:
            shard = self._shards.get(name)
            if shard is None:
                path = self.root / name
                if not (path / "edge_config.json").exists():
                    raise IndexUnavailable(f"The collection {name} is missing from {self.location}.")
                shard = self._shards[name] = _load(path, _stored_dimension(path))
            return shard

    def _collections(self) -> list[str]:
        on_disk = [p.name for p in self.root.iterdir() if p.is_dir() and p.name.startswith(COLLECTION_PREFIX)]
        return sorted(name for name in on_disk if (self.root / name / "edge_config.json").exists())

    def _meta(self) -> dict:
        path = self.root / META_FILE
        meta = json.loads(path.read_text()) if path.exists() else {}
        return {"collections": meta.get("collections", {}), "aliases": meta.get("aliases", {})}

    def _meta_write(self, meta: dict) -> None:
        path = self.root / META_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(meta, indent=2, sort_keys=True))
        os.replace(temporary, path)


def _best_per_product(hits: list, limit: int) -> tuple[list[tuple[int, object]], int]:
    """The best hit of each of the first ``limit`` products (hits come best first), as
    (point id, hit), and how many hits were read to find them."""
    best: list[tuple[int, object]] = []
    seen: set[int] = set()
    for position, hit in enumerate(hits):
        point_id = int(hit.id)
        product_id = point_id >> IMAGE_BITS
        if product_id not in seen:
            seen.add(product_id)
            best.append((point_id, hit))
            if len(best) == limit:
                return best, position + 1
    return best, len(hits)


def _attributes_key(attributes: dict) -> tuple | None:
    """A hashable key equal for equal attributes dicts (None if a value cannot be hashed)."""
    key = tuple(attributes.items())  # flat, the common case: cheap
    try:
        hash(key)
        return key
    except TypeError:
        pass
    try:
        return _frozen(attributes)
    except TypeError:
        return None


def _frozen(value):
    if isinstance(value, dict):
        return tuple(sorted((key, _frozen(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("[]", *(_frozen(item) for item in value))
    hash(value)
    return (type(value).__name__, value)


def _lock_folder(root: Path):
    """One process owns the embedded index (Edge shards also refuse a second opener, but
    only when a shard is first used; this refuses at once, with advice)."""
    handle = (root / LOCK_FILE).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise IndexUnavailable(_in_use(root)) from None
    return handle


def _in_use(root: Path) -> str:
    return (
        f"The embedded vector store at {root} is in use by another Vitrine process (most likely the "
        "server started by `make run`, or a worker). Only one process can open it at a time: stop that "
        "process and try again, or run Qdrant as a server (QDRANT_URL) to share it."
    )


def _vectors(vector: np.ndarray, keywords: dict[str, float] | None) -> dict:
    vectors = {VECTOR: np.asarray(vector, dtype=np.float32)}
    if keywords:
        vectors[KEYWORDS] = SparseVector(*sparse(keywords))
    return vectors


@functools.lru_cache(maxsize=64)
def _stored_keywords(path: Path) -> bool:
    """Whether the shard at ``path`` was made with keyword vectors (a shard's vector
    layout cannot change once made)."""
    try:
        stored = json.loads((path / "edge_config.json").read_text())
    except (OSError, ValueError):
        return True  # not made yet: it will be made with them
    return KEYWORDS in (stored.get("sparse_vectors") or {})


def _stored_dimension(path: Path) -> int | None:
    try:
        stored = json.loads((path / "edge_config.json").read_text())
        return int(stored["vectors"][VECTOR]["size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _load(path: Path, dimension: int | None) -> EdgeShard:
    """Open a shard with the current settings (HNSW, full-scan threshold, quantization,
    on-disk vectors: a changed setting applies to the stored collection, and the next
    ``optimize`` rebuilds what it changes)."""
    try:
        config = _config(dimension, keywords=_stored_keywords(path)) if dimension else None
        return EdgeShard.load(str(path), config)
    except Exception as exc:  # noqa: BLE001 - Edge raises bare Exception; say what it means
        if "WouldBlock" in str(exc):
            raise IndexUnavailable(_in_use(path.parent)) from None
        raise IndexUnavailable(f"The embedded vector store at {path} cannot be opened: {exc}") from exc


def _config(dimension: int, *, keywords: bool) -> EdgeConfig:
    quantization = (
        ScalarQuantizationConfig(type=ScalarType.Int8, quantile=0.99, always_ram=True)
        if settings.VITRINE_INDEX_QUANTIZATION == "int8"
        else None
    )
    return EdgeConfig(
        vectors={
            VECTOR: EdgeVectorParams(
                size=dimension,
                distance=Distance.Cosine,
                on_disk=settings.VITRINE_INDEX_ON_DISK or None,
                quantization_config=quantization,
            )
        },
        sparse_vectors={KEYWORDS: EdgeSparseVectorParams(modifier=Modifier.Idf)} if keywords else None,
        hnsw_config=HnswIndexConfig(
            m=settings.VITRINE_INDEX_HNSW_M,
            ef_construct=settings.VITRINE_INDEX_HNSW_EF_CONSTRUCT,
            full_scan_threshold=settings.VITRINE_INDEX_FULL_SCAN_KB,
        ),
        optimizers=EdgeOptimizersConfig(indexing_threshold=settings.VITRINE_INDEX_FULL_SCAN_KB),
    )


def _payload_indexes() -> dict:
    indexes = dict(PAYLOAD_INDEXES)
    for key in settings.VITRINE_FACET_ATTRIBUTES:
        indexes[attribute_field(key)] = PayloadSchemaType.Keyword
    return indexes


def _filter(filters: IndexFilters) -> Filter | None:
    must: list = []
    if filters.active is not None:
        # A Python bool becomes the integer 1 in Edge's MatchValue and matches nothing:
        # numpy's bool is kept a bool (measured, qdrant-edge-py 0.9.0).
        must.append(FieldCondition("is_active", match=MatchValue(np.bool_(filters.active))))
    if filters.categories:
        must.append(FieldCondition("category", match=MatchAny(list(filters.categories))))
    if filters.brands:
        must.append(FieldCondition("brand", match=MatchAny(list(filters.brands))))
    if filters.price_min is not None or filters.price_max is not None:
        must.append(
            FieldCondition(
                "price",
                range=RangeFloat(
                    gte=float(filters.price_min) if filters.price_min is not None else None,
                    lte=float(filters.price_max) if filters.price_max is not None else None,
                ),
            )
        )
    for key, values in filters.attributes:
        if values:
            must.append(FieldCondition(attribute_field(key), match=MatchAny([str(v) for v in values])))
    must.extend(FieldCondition("terms", match=MatchAny(list(group))) for group in filters.terms)
    must_not = []
    if filters.exclude_product_ids:
        must_not.append(FieldCondition("product_id", match=MatchAny([int(p) for p in filters.exclude_product_ids])))
    if not must and not must_not:
        return None
    return Filter(must=must or None, must_not=must_not or None)


@contextlib.contextmanager
def _translate_errors(location: str):
    try:
        yield
    except IndexUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - Edge raises bare Exception for every engine error
        if type(exc) is not Exception:
            raise  # TypeError, ValueError…: a bug of ours, not an unavailable store
        raise IndexUnavailable(f"The embedded vector store at {location} failed: {exc}") from exc
