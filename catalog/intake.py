"""Image intake: decide whether bytes are an image Vitrine accepts, before anything is written.

Every check gives its own :class:`ImageRejected` code and a message a person can act on.
The same decoder (:func:`image_decode_rgb`) is used again when the image is embedded, so
what was accepted is read the same way later.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError

from searchsite.errors import InputRejected

# Pillow format name -> the extension the stored file gets. MPO is the multi-picture JPEG
# that many phones write; its first picture is a plain JPEG.
ACCEPTED_FORMATS = {
    "JPEG": "jpg",
    "MPO": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "GIF": "gif",
    "BMP": "bmp",
    "TIFF": "tiff",
}
ACCEPTED_FORMATS_TEXT = "JPEG, PNG, WebP, GIF, BMP or TIFF"

# Transparent areas become white, like a product photo on a studio background.
BACKGROUND_RGB = (255, 255, 255)


class ImageRejected(InputRejected):
    """The bytes are not an image Vitrine accepts."""


@dataclass(frozen=True)
class AcceptedImage:
    content: bytes
    sha256: str
    format: str
    extension: str
    width: int
    height: int

    @property
    def byte_size(self) -> int:
        return len(self.content)


def image_accept(*, content: bytes) -> AcceptedImage:
    """Validate ``content`` fully (decode included) and describe it; raise ImageRejected."""
    rgb, image_format = _decode(content)
    return AcceptedImage(
        content=content,
        sha256=hashlib.sha256(content).hexdigest(),
        format=image_format,
        extension=ACCEPTED_FORMATS[image_format],
        width=rgb.width,
        height=rgb.height,
    )


def image_decode_rgb(*, content: bytes, min_side: int = 0) -> Image.Image:
    """Decode accepted bytes to an upright 8-bit RGB image (raises ImageRejected).

    ``min_side``: the size a model needs; a JPEG is then decoded at the smallest of its
    built-in 1/2, 1/4, 1/8 scales that keeps both sides at least that long (Pillow's draft
    mode: a large photo decodes several times faster; benchmarks/indexing_throughput.py
    measures what it changes in the vectors)."""
    rgb, _ = _decode(content, min_side=min_side)
    return rgb


def _check_size(content: bytes) -> None:
    max_bytes = settings.VITRINE_MAX_IMAGE_BYTES
    if len(content) == 0:
        raise ImageRejected("empty_file", "The file is empty (0 bytes).")
    if len(content) > max_bytes:
        raise ImageRejected(
            "file_too_large",
            f"The file is {_megabytes(len(content))}; the limit is {_megabytes(max_bytes)} (VITRINE_MAX_IMAGE_BYTES).",
        )


def _decode(content: bytes, *, min_side: int = 0) -> tuple[Image.Image, str]:
    _check_size(content)
    max_pixels = settings.VITRINE_MAX_IMAGE_PIXELS
    # Pillow's own guard stays as a backstop at twice our limit, so that our check (after
    # reading the header, before decoding) is the one that speaks, with the dimensions.
    Image.MAX_IMAGE_PIXELS = max_pixels * 2
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice its limit; we make both an error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(content))
            image_format = image.format or ""
            if image_format not in ACCEPTED_FORMATS:
                raise ImageRejected(
                    "unsupported_format",
                    f"{image_format or 'This'} images are not accepted; use {ACCEPTED_FORMATS_TEXT}.",
                )
            pixels = image.width * image.height
            if pixels > max_pixels:
                raise _too_many_pixels(image.width, image.height, max_pixels)
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)  # animated GIF/WebP, multi-page TIFF: the first frame
            if min_side and image_format == "JPEG":
                image.draft("RGB", (min_side, min_side))
            image.load()
            upright = ImageOps.exif_transpose(image)
    except ImageRejected:
        raise
    except UnidentifiedImageError:
        raise ImageRejected(
            "not_an_image", f"The file is not an image Vitrine can read; use {ACCEPTED_FORMATS_TEXT}."
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected(
            "too_many_pixels",
            f"The image has more pixels than the limit of {max_pixels:,} (VITRINE_MAX_IMAGE_PIXELS); "
            "it may be a decompression bomb.",
        ) from None
    except Exception as exc:  # noqa: BLE001 - hostile files make Pillow raise all sorts
        raise ImageRejected(
            "damaged_image", f"The image data is damaged or incomplete and cannot be decoded ({exc})."
        ) from None
    if upright.width == 0 or upright.height == 0:
        raise ImageRejected("damaged_image", "The image has no pixels (width or height is 0).")
    return _to_rgb(upright), image_format


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _high_bit_depth_to_rgb(image)
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, BACKGROUND_RGB)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    # CMYK, YCbCr, LAB, HSV, P, L, 1: Pillow's own conversions are correct for these.
    return image.convert("RGB")


def _high_bit_depth_to_rgb(image: Image.Image) -> Image.Image:
    # Pillow's convert("L") clips 16-bit values at 255, which turns most 16-bit greys
    # white; scale the full range down instead.
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        low, high = float(values.min()), float(values.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        grey = (values - low) * scale
    else:
        grey = values / 257.0  # 65535 -> 255
    grey_image = Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8))
    return grey_image.convert("RGB")


def _too_many_pixels(width: int, height: int, limit: int) -> ImageRejected:
    return ImageRejected(
        "too_many_pixels",
        f"The image is {width}×{height} = {width * height:,} pixels, more than the limit of "
        f"{limit:,} (VITRINE_MAX_IMAGE_PIXELS); it may be a decompression bomb.",
    )


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
