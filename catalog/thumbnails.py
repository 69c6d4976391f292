"""WebP thumbnails: made once per stored image and size, on first request, then served
from disk. Content-addressed (by the original's sha256), so a URL never changes meaning
and can be cached forever, and products sharing a photo share its thumbnails."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.urls import get_script_prefix, get_urlconf, reverse
from PIL import Image

from catalog.intake import image_decode_rgb
from catalog.models import ProductImage

# Gallery thumbnails (160 covers a 72 px button on a 2x screen), grid cards (320 covers a
# 160 px card on a 2x screen) and the product page's main photo, offered in a srcset from
# 320 to 1024 so a phone and a 2x desktop each take the smallest file that is sharp.
SIZES = (160, 320, 640, 1024)
PHOTO_SIZES = (320, 640, 1024)
WEBP_QUALITY = 82


def thumbnail_dimensions(width: int, height: int, size: int) -> tuple[int, int]:
    """The thumbnail's size: the original fitted inside size×size, never enlarged."""
    scale = min(1.0, size / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


def thumbnail_srcset(sha256: str, width: int, height: int, sizes=PHOTO_SIZES) -> list[tuple[str, int, int]]:
    """The distinct thumbnails of a photo as (url, width, height), smallest first: sizes
    past the original's would repeat its own size (thumbnails are never enlarged), so a
    160 px original has one entry."""
    candidates, seen = [], set()
    for size in sizes:
        dimensions = thumbnail_dimensions(width, height, size)
        if dimensions not in seen:
            seen.add(dimensions)
            candidates.append((thumbnail_url(sha256, size), *dimensions))
    return candidates


def thumbnail_url(sha256: str, size: int) -> str:
    """The thumbnail's URL (``catalog.views.thumbnail``). Pages show dozens: the view's
    path is reversed once per script prefix and URLconf, and the name appended."""
    key = (get_script_prefix(), get_urlconf(), settings.ROOT_URLCONF)
    prefix = _url_prefixes.get(key)
    if prefix is None:
        prefix = _url_prefixes[key] = reverse("thumbnail", args=["_"]).removesuffix("_")
    return f"{prefix}{sha256}-{size}.webp"


_url_prefixes: dict[tuple, str] = {}


def thumbnail_path(sha256: str, size: int) -> Path:
    return Path(settings.MEDIA_ROOT) / "thumbnails" / sha256[:2] / f"{sha256}-{size}.webp"


def thumbnail_get_or_create(image: ProductImage, size: int) -> Path:
    """The thumbnail's file, made now if missing (written atomically: readers never see
    half a file, and two requests racing both write the same bytes)."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}")
    path = thumbnail_path(image.sha256, size)
    if path.exists():
        return path
    with image.file.open("rb") as handle:
        rgb = image_decode_rgb(content=handle.read())
    rgb.thumbnail((size, size), Image.Resampling.LANCZOS)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, suffix=".part")
    try:
        with os.fdopen(descriptor, "wb") as out:
            rgb.save(out, format="WEBP", quality=WEBP_QUALITY, method=4)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
