"""Photos people search with, kept for a while so that a photo search has a URL.

A search by photo is a POST; the photo is decoded by the intake (every check of an
upload applies), shrunk to at most 512 px, stored as JPEG under an unguessable name, and
the browser is redirected to ``/?photo=<token>``, which can be reloaded, paged, filtered,
shared and reached again with the back button. Photos older than
``VITRINE_QUERY_PHOTO_DAYS`` are deleted (checked at most hourly, when one is stored).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import tempfile
import time
from pathlib import Path

from django.conf import settings
from PIL import Image

from searchsite.caching import cache_call

logger = logging.getLogger(__name__)

MAX_SIDE = 512
TOKEN_PATTERN = re.compile(r"^[0-9a-f]{32}$")
PRUNE_EVERY_SECONDS = 3600


def _folder() -> Path:
    return Path(settings.MEDIA_ROOT) / "query-photos"


def query_photo_path(token: str) -> Path | None:
    """The stored photo's file, or None for a malformed or unknown (expired) token."""
    if not TOKEN_PATTERN.match(token or ""):
        return None
    path = _folder() / f"{token}.jpg"
    return path if path.is_file() else None


def query_photo_store(image: Image.Image) -> str:
    """Store an RGB image (already through the intake); returns its token."""
    small = image.copy()
    small.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=90)
    content = buffer.getvalue()
    # The salt keeps tokens unguessable from the photo (someone holding the same picture
    # cannot find out whether it was searched for).
    token = hashlib.sha256(settings.SECRET_KEY.encode() + b"\0" + content).hexdigest()[:32]
    folder = _folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{token}.jpg"
    if not path.exists():
        descriptor, temporary = tempfile.mkstemp(dir=folder, suffix=".part")
        with os.fdopen(descriptor, "wb") as out:
            out.write(content)
        os.replace(temporary, path)
    else:
        path.touch()  # searched again: keep it longer
    _prune()
    return token


def query_photo_load(token: str) -> Image.Image | None:
    path = query_photo_path(token)
    if path is None:
        return None
    with Image.open(path) as image:
        return image.convert("RGB")


def _prune() -> None:
    if not cache_call("add", False, "vitrine:query-photos-pruned", True, PRUNE_EVERY_SECONDS):
        return
    oldest = time.time() - settings.VITRINE_QUERY_PHOTO_DAYS * 86400
    removed = 0
    for path in _folder().glob("*.jpg"):
        try:
            if path.stat().st_mtime < oldest:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    if removed:
        logger.info("Deleted %d query photos older than %d days", removed, settings.VITRINE_QUERY_PHOTO_DAYS)
