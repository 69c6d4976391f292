"""A circuit breaker for an index across the network (a Qdrant server, the index server).

A store that accepts connections and never answers would otherwise hold every search for
its whole timeout. After ``failures`` calls in a row fail with :class:`IndexUnavailable`
(a timeout, a refused connection, a 5xx), the breaker opens: calls fail at once, for
``reset_seconds``; then one call is let through to try (half open): its success closes
the breaker, its failure opens it again. Per process; every call of the index counts.
"""

from __future__ import annotations

import logging
import threading
import time

from embeddings.index.base import IndexUnavailable

logger = logging.getLogger(__name__)


class Breaker:
    def __init__(self, *, failures: int, reset_seconds: float, clock=time.monotonic):
        self.failures = failures
        self.reset_seconds = reset_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._failed = 0
        self._open_until = 0.0
        self._trying = False
        self._last_error = ""

    @property
    def is_open(self) -> bool:
        return self._failed >= self.failures and self.clock() < self._open_until

    def before(self, location: str) -> None:
        with self._lock:
            if self._failed < self.failures:
                return
            now = self.clock()
            if now < self._open_until or self._trying:
                wait = max(0.0, self._open_until - now)
                raise IndexUnavailable(
                    f"The vector store at {location} failed {self._failed} times in a row ({self._last_error}); "
                    f"not asking it again for {wait:.0f} s."
                )
            self._trying = True  # half open: this call tries

    def succeeded(self) -> None:
        with self._lock:
            if self._failed >= self.failures:
                logger.info("Vector store answering again; circuit closed")
            self._failed, self._trying = 0, False

    def failed(self, error: Exception) -> None:
        with self._lock:
            self._failed += 1
            self._trying = False
            self._last_error = str(error)[:200]
            if self._failed >= self.failures:
                self._open_until = self.clock() + self.reset_seconds
                if self._failed == self.failures:
                    logger.warning("Vector store failing; circuit open for %.0f s: %s", self.reset_seconds, error)


class GuardedIndex:
    """``index`` with every call going through ``breaker``."""

    def __init__(self, index, breaker: Breaker):
        self._index = index
        self.breaker = breaker

    def __getattr__(self, name: str):
        value = getattr(self._index, name)
        if name.startswith("_") or not callable(value) or name == "close":
            return value

        def call(*args, **kwargs):
            self.breaker.before(self._index.location)
            try:
                result = value(*args, **kwargs)
            except IndexUnavailable as exc:
                self.breaker.failed(exc)
                raise
            except Exception:
                self.breaker.succeeded()  # it answered, if only to refuse
                raise
            self.breaker.succeeded()
            return result

        call.__name__ = name
        return call
