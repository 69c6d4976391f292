"""Recording searches without slowing them: rows are buffered in the process and written
in batches by a background thread.

A search calls :func:`search_record` (a few microseconds: a row built, appended to a
deque) and hands the returned ``search_id`` to the shopper or the shop. The writer thread
wakes every ``FLUSH_SECONDS``, or as soon as ``FLUSH_ROWS`` rows wait, and writes them with
one ``bulk_create``; what is left is written at exit (atexit). A database that is down
keeps the rows waiting, up to ``MAX_BUFFERED``: past that the oldest are dropped and
counted in the log. Nothing here ever raises into a search.

Tests turn the thread off (:func:`background_writes`) and call :func:`flush` themselves.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import threading
import time
from collections import deque

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections
from django.utils import timezone

from analytics.models import SearchRecord, new_search_id
from embeddings.keywords import normalise

logger = logging.getLogger(__name__)

# One write a second at most in steady state; a burst writes as soon as this many wait.
FLUSH_SECONDS = 1.0
FLUSH_ROWS = 200
# About a minute of a busy shop's searches (~150/s): enough to ride out a database restart;
# a longer outage loses the oldest rows rather than the process's memory.
MAX_BUFFERED = 10_000
# Names what answered a search, with the embedding space and the fusion: bump when the
# engine's ranking changes in a way that makes figures before and after not comparable.
ENGINE_VERSION = "engine-1"
# The search engine's query kinds → the analytics' (the shop's words for them).
KINDS = {
    "text": SearchRecord.Kind.TEXT,
    "image": SearchRecord.Kind.PHOTO,
    "image+text": SearchRecord.Kind.PHOTO_WORDS,
    "product": SearchRecord.Kind.SIMILAR,
    "products": SearchRecord.Kind.PRODUCTS,
}
# A photo search whose photo was drawn for a description ("Imagine it").
IMAGINED_KINDS = {
    SearchRecord.Kind.PHOTO: SearchRecord.Kind.IMAGINED,
    SearchRecord.Kind.PHOTO_WORDS: SearchRecord.Kind.IMAGINED_WORDS,
}
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

_buffer: deque[SearchRecord] = deque()
_lock = threading.Lock()  # guards _buffer and the counters
_flush_lock = threading.Lock()  # one flush at a time (the thread's, a test's, atexit's)
_wake = threading.Event()
_writer: threading.Thread | None = None
_writer_pid = 0
_background = True
_dropped = 0


def query_normalise(text: str) -> str:
    """What the dashboard groups by: the words as the keyword index reads them (NFKC, case
    folded, traditional Chinese as simplified), spaces collapsed."""
    return " ".join(normalise(text or "").split())[:500]


def query_language(text: str) -> str:
    """The words' language when it shows cheaply: Chinese characters → ``zh``; else unknown
    (Latin letters alone do not say which language)."""
    return "zh" if _CJK.search(text or "") else ""


def engine_version_of(page) -> str:
    """What answered: the version, the embedding space and how evidence was fused."""
    return f"{ENGINE_VERSION} {page.embedding_space} fusion={page.fusion or 'none'}"[:300]


def search_record(*, page, query: str, language: str, source: str, imagined: str = "") -> str:
    """Record a search that was answered (``page``: its SearchPage); its random id, or ""
    when analytics are off (VITRINE_ANALYTICS=0). Never raises. ``imagined``: the
    description an "Imagine it" photo was drawn for, recorded as the query (what the
    shopper asked for in words) with the kind ``imagined`` (``imagined+words``)."""
    if not settings.VITRINE_ANALYTICS:
        return ""
    try:
        kind = KINDS.get(page.kind, page.kind)
        if imagined and kind in IMAGINED_KINDS:
            kind, query = IMAGINED_KINDS[kind], imagined
        row = SearchRecord(
            search_id=new_search_id(),
            created_at=timezone.now(),
            query=query_normalise(query),
            language=(language or "")[:16],
            kind=kind,
            source=source,
            result_count=page.total,
            zero_results=page.total == 0,
            latency_ms=round(page.took_ms, 2),  # the engine's own time for the search
            engine_version=engine_version_of(page),
        )
        _append([row])
        return row.search_id
    except Exception:  # noqa: BLE001 - analytics must never fail a search
        logger.exception("A search could not be recorded")
        return ""


def search_buffered(search_id: str) -> bool:
    with _lock:
        return any(row.search_id == search_id for row in _buffer)


def flush() -> int:
    """Write the waiting rows now; how many were written (0 when the database refused:
    they wait for the next flush)."""
    with _flush_lock:
        with _lock:
            rows = list(_buffer)
            _buffer.clear()
        if not rows:
            return 0
        try:
            SearchRecord.objects.bulk_create(rows, batch_size=500)
        except DatabaseError as exc:
            logger.warning("Search analytics: %d rows wait, the database refused them (%s)", len(rows), exc)
            _append(rows, front=True)
            return 0
        return len(rows)


def buffered_count() -> int:
    with _lock:
        return len(_buffer)


def dropped_count() -> int:
    return _dropped


def background_writes(enabled: bool) -> None:
    """Turn the writer thread on or off (tests write with :func:`flush` in their own thread,
    inside their own transaction); off also forgets what waits."""
    global _background
    _background = enabled
    with _lock:
        _buffer.clear()
    _wake.set()  # a running writer that was turned off lets its connection go


def _append(rows: list[SearchRecord], *, front: bool = False) -> None:
    global _dropped
    with _lock:
        if front:  # rows that failed to be written go back before the newer ones
            _buffer.extendleft(reversed(rows))
        else:
            _buffer.extend(rows)
        over = len(_buffer) - MAX_BUFFERED
        for _ in range(max(0, over)):
            _buffer.popleft()  # the oldest
        if over > 0:
            _dropped += over
            logger.warning(
                "Search analytics: the buffer is full (%d rows; the database is away?): %d oldest dropped, %d so far",
                MAX_BUFFERED,
                over,
                _dropped,
            )
        waiting = len(_buffer)
    if _background:
        _writer_ensure()
        if waiting >= FLUSH_ROWS:
            _wake.set()


def _writer_ensure() -> None:
    """The writer thread of this process (started again in a forked child)."""
    global _writer, _writer_pid
    if _writer is not None and _writer_pid == os.getpid() and _writer.is_alive():
        return
    with _lock:
        if _writer is not None and _writer_pid == os.getpid() and _writer.is_alive():
            return
        _writer_pid = os.getpid()
        _writer = threading.Thread(target=_write_loop, name="vitrine-analytics-writer", daemon=True)
        _writer.start()


def _write_loop() -> None:
    while True:
        _wake.wait(FLUSH_SECONDS)
        _wake.clear()
        if not _background:
            # Turned off (tests): hold no connection, or the test database could not be
            # dropped at the end of the run (PostgreSQL refuses while one is open).
            connections.close_all()
            continue
        if not buffered_count():
            continue
        try:
            close_old_connections()  # honours CONN_MAX_AGE and health checks, as a request would
            flush()
        except Exception:  # noqa: BLE001 - the thread must outlive any one failure
            logger.exception("Search analytics: a flush failed")
            time.sleep(FLUSH_SECONDS)


def _flush_at_exit() -> None:
    if _background and buffered_count():
        try:
            flush()
        except Exception:  # noqa: BLE001 - at exit, said in the log and nothing more
            logger.exception("Search analytics: the last rows could not be written at exit")


def _forget_after_fork() -> None:
    """A forked child (gunicorn's workers) starts with no rows and its own writer: the
    parent writes its own rows."""
    global _writer, _lock, _flush_lock
    _buffer.clear()
    _writer = None
    _lock = threading.Lock()
    _flush_lock = threading.Lock()


atexit.register(_flush_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
