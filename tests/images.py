"""Real image files made by the tests (good and bad), as bytes."""

from __future__ import annotations

import io
import random
import struct
import zlib

import numpy as np
from PIL import Image


def image_bytes(fmt: str = "JPEG", *, size=(64, 48), color=(200, 30, 30), mode: str = "RGB", **save) -> bytes:
    image = Image.new(mode, size, color if mode in ("RGB", "RGBA", "CMYK") else None)
    if mode not in ("RGB", "RGBA", "CMYK") and color is not None:
        image = Image.new(mode, size, color)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def noise_jpeg(seed: int, size=(96, 96)) -> bytes:
    """A distinct photo-like image per seed (random blocks of colour)."""
    rng = random.Random(seed)
    image = Image.new("RGB", size)
    step = 16
    for y in range(0, size[1], step):
        for x in range(0, size[0], step):
            image.paste(tuple(rng.randint(0, 255) for _ in range(3)), (x, y, x + step, y + step))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def truncated_jpeg() -> bytes:
    content = noise_jpeg(1, size=(256, 256))
    return content[: len(content) // 2]


def decompression_bomb_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A tiny PNG that claims (and holds, compressed) a huge all-black greyscale image."""
    raw_row = b"\x00" + b"\x00" * width
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(raw_row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def exif_rotated_jpeg() -> bytes:
    """Stored 80 wide × 40 high with orientation 6 (rotate 90° clockwise to view): upright 40×80.

    The left half is red, the right half blue, so the upright image is red on top.
    """
    image = Image.new("RGB", (80, 40), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 40, 40))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes(), quality=95)
    return buffer.getvalue()


def sixteen_bit_grey_png(value: int = 40_000) -> bytes:
    array = np.full((32, 32), value, dtype=np.uint16)
    image = Image.fromarray(array)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def palette_with_transparency_png() -> bytes:
    """A palette image: index 0 transparent (left half), index 1 green (right half)."""
    image = Image.new("P", (40, 20), 0)
    image.putpalette([0, 0, 0, 0, 200, 0] + [0, 0, 0] * 254)
    image.paste(1, (20, 0, 40, 20))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", transparency=0)
    return buffer.getvalue()
