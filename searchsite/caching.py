"""The shared cache (Redis in production) as an optional helper: every use here is an
optimisation (a query's vector, a recheck timer, a pruning timer), so when the cache is
down the caller gets its default and goes on. A Redis restart must not turn into 500s.
Said in the log once a minute at most."""

from __future__ import annotations

import logging
import time

from django.core.cache import cache

logger = logging.getLogger(__name__)

_last_logged = 0.0


def cache_call(operation: str, default, *args, **kwargs):
    """``cache.<operation>(*args, **kwargs)``, or ``default`` when the cache fails."""
    try:
        return getattr(cache, operation)(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any backend error means "no cache right now"
        cache_outage_log(exc)
        return default


def cache_outage_log(exc: Exception) -> None:
    global _last_logged
    now = time.monotonic()
    if now - _last_logged > 60:
        _last_logged = now
        logger.warning("The cache is unavailable (%s: %s); going on without it.", type(exc).__name__, exc)
