"""The vector index, behind one interface (``base.VectorIndex``) with two engines:

- ``edge``: Qdrant Edge, the Qdrant engine inside this process: the embedded mode's index
  (``VITRINE_INDEX_PATH``), with payload indexes and an HNSW graph for large collections;
- ``server``: a Qdrant server through qdrant-client (``QDRANT_URL``); qdrant-client's local
  mode runs the same code in this process (``VITRINE_INDEX_ENGINE=qdrant-local``), which is
  how the tests exercise the server's code path;
- ``remote``: the embedded store opened by another process, ``manage.py serve_index``
  (``VITRINE_INDEX_SERVER``), for several processes on one machine without a Qdrant server.

The engines across a network sit behind a circuit breaker (``breaker``).

The rest of Vitrine speaks to it in domain terms: image and product ids, vectors, filters.
Nothing outside this package imports an engine's library.
"""

from __future__ import annotations

import atexit
import threading
from pathlib import Path

from django.conf import settings

from embeddings.index.base import (
    FACT_FIELDS,
    ImagePoint,
    IndexCandidate,
    IndexFilters,
    IndexHit,
    IndexUnavailable,
    VectorIndex,
    attribute_field,
    collection_name,
    image_point_id,
)

__all__ = [
    "FACT_FIELDS",
    "ImagePoint",
    "IndexCandidate",
    "IndexFilters",
    "IndexHit",
    "IndexUnavailable",
    "VectorIndex",
    "attribute_field",
    "collection_name",
    "get_index",
    "image_point_id",
    "reset_index",
]

_index: VectorIndex | None = None
_index_lock = threading.Lock()
_exit_hook_registered = False


def get_index() -> VectorIndex:
    """The process's index, opened on first use (raises IndexUnavailable)."""
    global _index
    if _index is None:
        with _index_lock:
            if _index is None:
                _index = _open()
    return _index


def reset_index() -> None:
    """Close and forget the index (tests; and a worker releasing the embedded store)."""
    global _index
    with _index_lock:
        if _index is not None:
            _index.close()
        _index = None


def _open() -> VectorIndex:
    if settings.QDRANT_URL:
        from embeddings.index.server import server_index_open

        return _guarded(server_index_open())
    if settings.VITRINE_INDEX_SERVER:
        from embeddings.index.remote import RemoteIndex

        return _guarded(
            RemoteIndex(
                settings.VITRINE_INDEX_SERVER,
                read_timeout=settings.VITRINE_INDEX_READ_TIMEOUT,
                write_timeout=settings.QDRANT_TIMEOUT,
            )
        )
    return open_local()


def open_local() -> VectorIndex:
    """The store in this process (the embedded engines), whatever the settings say of a
    server: ``manage.py serve_index`` serves it."""
    global _exit_hook_registered
    path = Path(settings.VITRINE_INDEX_PATH)
    if settings.VITRINE_INDEX_ENGINE == "qdrant-local":
        from embeddings.index.server import local_index_open

        index = local_index_open(path)
    else:
        from embeddings.index.edge import EdgeIndex

        index = EdgeIndex(root=path, alias=settings.VITRINE_INDEX_ALIAS)
    if not _exit_hook_registered:
        # Close explicitly at exit: the engines' own finalisers run too late.
        atexit.register(reset_index)
        _exit_hook_registered = True
    return index


def _guarded(index) -> VectorIndex:
    """An index across the network, behind a circuit breaker (``breaker``)."""
    from embeddings.index.breaker import Breaker, GuardedIndex

    breaker = Breaker(
        failures=settings.VITRINE_INDEX_BREAKER_FAILURES, reset_seconds=settings.VITRINE_INDEX_BREAKER_SECONDS
    )
    return GuardedIndex(index, breaker)
