"""Warming a web process up before it takes shoppers.

A fresh process pays, on its first search, for torch and open_clip (seconds), the model,
its first forward pass and jieba's dictionary (~1.6 s): measured 5 s for a first search
against 2 s for the next on this machine, and the difference is CPU-bound, so three times
that on a busy one. ``start`` does that work in a background thread while the server starts;
readiness (``/api/v1/health/ready``) says ``loading`` meanwhile, so a load balancer keeps
shoppers away from a process that would make them wait, and ``unavailable`` when the model
could not be loaded (every search would fail).
"""

from __future__ import annotations

import gc
import logging
import threading

logger = logging.getLogger(__name__)

_thread: threading.Thread | None = None
_failure = ""


def start() -> None:
    """Warm this process up in the background (once)."""
    global _thread
    if _thread is None:
        _thread = threading.Thread(target=_warm_up, name="vitrine-warm-up", daemon=True)
        _thread.start()


def state() -> str:
    """``loading`` while warming up, ``unavailable`` when the model failed to load, else
    ``ok`` (also in a process that never warms up: it loads on first use)."""
    if _thread is not None and _thread.is_alive():
        return "loading"
    return "unavailable" if _failure else "ok"


def wait(timeout: float | None = None) -> str:
    """Wait for the warm-up to end (tests, management commands); its ``state``."""
    if _thread is not None:
        _thread.join(timeout)
    return state()


def _warm_up() -> None:
    global _failure
    from embeddings.keywords import tokenizer_ready
    from embeddings.model import ModelUnavailable, get_encoder

    try:
        encoder = get_encoder()
        encoder.texts_encode(["warm up"])  # the first forward pass costs more than the next ones
    except ModelUnavailable as exc:
        _failure = str(exc)
        logger.error("The model could not be loaded; searches will answer 503: %s", exc)
        return
    except Exception:  # noqa: BLE001 - a failed warm-up must not kill the server
        logger.exception("Warming up failed; the first search will load what it needs")
    try:
        tokenizer_ready()
    except Exception:  # noqa: BLE001 - the first search tries again
        logger.exception("Loading the Chinese tokenizer's dictionary failed")
    # torch, open_clip and the model are ~400,000 objects that live as long as the
    # process: out of the garbage collector's sight, a full collection (every few thousand
    # requests) takes ~25 ms instead of ~300 ms, during which every thread of the worker waits.
    gc.freeze()
