"""The shared cache (Redis in production) as an optional helper: every use here is an
optimisation (a query's vector, a recheck timer, a pruning timer), so when the cache is
down the caller gets its default and goes on. A Redis restart must not turn into 500s,
nor into a timeout per call: after a failure the cache is not asked for a few seconds.
Said in the log once a minute at most."""

from __future__ import annotations

import logging
import time

from django.core.cache import cache

logger = logging.getLogger(__name__)

_last_logged = 0.0


# After a failure the cache is left alone this long: a Redis that is restarting (or hung)
# would otherwise cost every cache call of every request its timeout.
RETRY_AFTER_SECONDS = 5.0
_down_until = 0.0


def cache_is_down() -> bool:
    """A call failed less than RETRY_AFTER_SECONDS ago: do not try now."""
    return time.monotonic() < _down_until


def cache_call(operation: str, default, *args, **kwargs):
    """``cache.<operation>(*args, **kwargs)``, or ``default`` when the cache fails (or
    failed moments ago)."""
    if cache_is_down():
        return default
    try:
        return getattr(cache, operation)(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any backend error means "no cache right now"
        cache_outage_log(exc)
        return default


def cache_outage_forget() -> None:
    """Try the cache again at once (tests; each starts with a cache that answers)."""
    global _down_until
    _down_until = 0.0


def cache_outage_log(exc: Exception) -> None:
    """Say it (once a minute at most) and leave the cache alone for a few seconds."""
    global _last_logged, _down_until
    now = time.monotonic()
    _down_until = now + RETRY_AFTER_SECONDS
    if now - _last_logged > 60:
        _last_logged = now
        logger.warning("The cache is unavailable (%s: %s); going on without it.", type(exc).__name__, exc)
