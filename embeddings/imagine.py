"""Imagine it: a description is drawn by the image API and the picture is stored as a
query photo, so that it is searched with like any photo (``/?photo=<token>``).

One service for every face (the search page, the API, the admin's search preview): the
description is tidied (spaces collapsed, cut at ``VITRINE_IMAGINE_MAX_CHARS``), then the
picture drawn for the same words (compared case- and width-folded) in the last
``VITRINE_IMAGINE_CACHE_SECONDS`` is reused while its file is still there, so the same
words never cost a second call (two requests for the same words at once make one call: the
second waits for the first one's picture); else ``embeddings.generative.image_generate`` draws it
(its budget, retries and photo intake apply) and the picture is stored. A failure raises
the client's ``GenerativeError`` and stores nothing.
"""

from __future__ import annotations

import hashlib
import logging
import time
import unicodedata
from dataclasses import dataclass

from django.conf import settings

from embeddings.generative import MAX_BACKOFF_SECONDS, GenerativeError, image_generate
from embeddings.query_photos import query_photo_path, query_photo_store
from searchsite.caching import cache_call
from searchsite.errors import RETRY_AFTER_UNAVAILABLE

logger = logging.getLogger(__name__)

# GenerativeError codes by what the asker can do about them: wait (429), try later (503:
# the service is not answering), or nothing (502: it answered with something unusable).
WAIT_CODES = frozenset({"budget_exhausted", "rate_limited"})
UNAVAILABLE_CODES = frozenset({"timeout", "unreachable", "server_error"})
BAD_ANSWER_CODES = frozenset({"not_an_image", "malformed_response", "refused"})
# Retry-After when the service did not say how long (a budget always says).
DEFAULT_RETRY_SECONDS = int(RETRY_AFTER_UNAVAILABLE)
# How often a request waiting for the same words' drawing looks whether it is done.
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Imagined:
    """A picture drawn for ``prompt``, stored as the query photo ``token``; ``cached``
    when it was drawn earlier for the same words (no call made)."""

    prompt: str
    token: str
    cached: bool


def imagine_prompt_clean(prompt: str) -> str:
    """The description as it is sent and shown: spaces collapsed, at most
    VITRINE_IMAGINE_MAX_CHARS characters."""
    return " ".join((prompt or "").split())[: settings.VITRINE_IMAGINE_MAX_CHARS].strip()


def imagine_photo(prompt: str) -> Imagined:
    """The query photo drawn for ``prompt`` (reused when the same words were drawn lately)."""
    prompt = imagine_prompt_clean(prompt)
    if not prompt:
        raise GenerativeError("empty_prompt", "Describe what to draw.")
    key = _cache_key(prompt)
    token = _drawn_earlier(key)
    if token:
        return Imagined(prompt=prompt, token=token, cached=True)
    caching = bool(settings.VITRINE_IMAGINE_CACHE_SECONDS)
    # One drawing at a time for the same words: a second asker (a double click, a shared
    # link opened by many) waits for the first one's picture instead of paying for another.
    # The cache down (or caching off) means no marker: each asker draws, as before.
    drawing = f"{key}:drawing"
    wait = _drawing_seconds()
    mine = cache_call("add", True, drawing, 1, wait) if caching else True
    if not mine:
        token = _drawn_meanwhile(key, drawing, wait)
        if token:
            return Imagined(prompt=prompt, token=token, cached=True)
    try:
        image = image_generate(prompt)
        token = query_photo_store(image)
        if caching:
            cache_call("set", None, key, token, settings.VITRINE_IMAGINE_CACHE_SECONDS)
    finally:
        if mine and caching:
            cache_call("delete", None, drawing)
    logger.info("Imagined a query photo for %d characters of description", len(prompt))
    return Imagined(prompt=prompt, token=token, cached=False)


def _drawn_earlier(key: str) -> str | None:
    token = cache_call("get", None, key)
    return token if token and query_photo_path(token) is not None else None


def _drawing_seconds() -> float:
    """The longest one drawing may take: every attempt's timeout, and the backoff between."""
    attempts = settings.VITRINE_IMAGE_RETRIES + 1
    return attempts * (settings.VITRINE_IMAGE_TIMEOUT + MAX_BACKOFF_SECONDS)


def _drawn_meanwhile(key: str, drawing: str, wait: float) -> str | None:
    """The picture another request is drawing for the same words, once it is stored; None
    when that drawing failed or outlasted ``wait`` (the caller then draws)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        token = _drawn_earlier(key)
        if token:
            return token
        if not cache_call("get", None, drawing):  # it ended without a picture (or the cache went)
            return _drawn_earlier(key)
        time.sleep(POLL_SECONDS)
    return None


def imagine_retry_after(error: GenerativeError) -> int:
    """Whole seconds to suggest in Retry-After for a failure the asker may retry."""
    if error.retry_after is not None:
        return max(1, round(error.retry_after))
    return DEFAULT_RETRY_SECONDS


def imagine_status(error: GenerativeError) -> tuple[int, int | None] | None:
    """The HTTP status every face answers for a drawing that failed, with the Retry-After
    seconds: 429 wait, 503 the image API is not answering, 502 its answer is unusable;
    None for the faces' own cases (an empty description, the service off)."""
    if error.code in WAIT_CODES:
        return 429, imagine_retry_after(error)
    if error.code in UNAVAILABLE_CODES:
        return 503, imagine_retry_after(error)
    if error.code in BAD_ANSWER_CODES:
        return 502, None
    return None


def _cache_key(prompt: str) -> str:
    # NFKC and case folding: "A Blue Vase" and "a blue vase", full- and half-width letters
    # are the same words; the model the picture is drawn by is part of what it looks like.
    words = unicodedata.normalize("NFKC", prompt).casefold()
    digest = hashlib.sha256(f"{settings.VITRINE_IMAGE_MODEL}|{settings.VITRINE_IMAGE_SIZE}|{words}".encode())
    return f"vitrine:imagine:{digest.hexdigest()[:40]}"
