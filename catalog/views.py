"""Catalog images as pages show them: WebP thumbnails, made on first request and cached.

Used by every face (search page, admin, API results), so they live with the images.
"""

from __future__ import annotations

import logging
import re

from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from catalog.intake import ImageRejected
from catalog.models import ProductImage
from catalog.thumbnails import SIZES, thumbnail_get_or_create, thumbnail_path

logger = logging.getLogger(__name__)

THUMBNAIL_NAME = re.compile(r"^(?P<sha>[0-9a-f]{64})-(?P<size>\d{2,4})\.webp$")


@require_GET
def thumbnail(request: HttpRequest, name: str) -> HttpResponse:
    match = THUMBNAIL_NAME.match(name)
    if not match or int(match["size"]) not in SIZES:
        raise Http404("No such thumbnail.")
    images = ProductImage.objects.filter(sha256=match["sha"])
    path = thumbnail_path(match["sha"], int(match["size"]))
    if path.exists():  # made before: only whether an image still has these bytes matters
        if not images.exists():
            raise Http404("No such image.")
    else:
        image = images.first()
        if image is None:
            raise Http404("No such image.")
        try:
            path = thumbnail_get_or_create(image, int(match["size"]))
        except (OSError, ImageRejected) as exc:
            logger.warning("Cannot make a thumbnail of image %s: %s", image.pk, exc)
            raise Http404("The image file cannot be read.") from None
    response = FileResponse(path.open("rb"), content_type="image/webp")
    # The name is the content's hash: it never changes meaning.
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    return response
