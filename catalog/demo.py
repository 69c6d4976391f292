"""A small procedural demo shop: products drawn with Pillow, deterministic from a seed.

Placeholder-sized until the demo-catalog issue grows it; it only needs Pillow.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from decimal import Decimal

from PIL import Image, ImageDraw, ImageFilter

IMAGE_SIZE = 192

COLOURS = {
    "red": (200, 30, 35),
    "blue": (30, 70, 200),
    "green": (40, 150, 60),
    "yellow": (240, 200, 30),
    "black": (25, 25, 25),
    "white": (245, 245, 245),
    "orange": (245, 130, 20),
    "purple": (120, 50, 160),
}
PATTERNS = ("plain", "striped", "dotted")
KINDS = {
    # kind: (category, price range)
    "mug": ("kitchen", (6, 25)),
    "t-shirt": ("clothing", (12, 40)),
    "bag": ("accessories", (25, 120)),
    "hat": ("accessories", (10, 45)),
    "bottle": ("kitchen", (8, 30)),
    "lamp": ("home", (30, 150)),
}
BRANDS = ("Nordlys", "Casa Mora", "Kito", "Alder & Finch")


@dataclass(frozen=True)
class DemoProduct:
    external_id: str
    title: str
    description: str
    brand: str
    category: str
    price: Decimal
    attributes: dict
    images: tuple[bytes, ...]


def demo_products(*, count: int, seed: int, images_per_product: tuple[int, int] = (1, 2)) -> list[DemoProduct]:
    rng = random.Random(seed)
    products = []
    for number in range(count):
        kind = rng.choice(sorted(KINDS))
        colour = rng.choice(sorted(COLOURS))
        pattern = rng.choice(PATTERNS)
        category, (low, high) = KINDS[kind]
        brand = rng.choice(BRANDS)
        renders = tuple(
            render_product(kind=kind, colour=colour, pattern=pattern, rng=rng)
            for _ in range(rng.randint(*images_per_product))
        )
        pattern_word = "" if pattern == "plain" else f"{pattern} "
        products.append(
            DemoProduct(
                external_id=f"demo-{seed}-{number:04d}",
                title=f"{colour.capitalize()} {pattern_word}{kind}",
                description=f"A {colour} {pattern_word}{kind} by {brand}.",
                brand=brand,
                category=category,
                price=Decimal(rng.randint(low * 100, high * 100)) / 100,
                attributes={"colour": colour, "pattern": pattern, "kind": kind},
                images=renders,
            )
        )
    return products


def render_product(*, kind: str, colour: str, pattern: str, rng: random.Random) -> bytes:
    size = IMAGE_SIZE
    background = tuple(rng.randint(215, 250) for _ in range(3))
    canvas = Image.new("RGB", (size, size), background)
    shape = Image.new("L", (size, size), 0)
    _draw_silhouette(ImageDraw.Draw(shape), kind, size)
    fill = _pattern_fill(COLOURS[colour], pattern, size, rng)
    scale = rng.uniform(0.75, 1.0)
    angle = rng.uniform(-12, 12)
    shape = shape.rotate(angle, resample=Image.BICUBIC).resize((int(size * scale),) * 2, Image.BICUBIC)
    fill = fill.rotate(angle, resample=Image.BICUBIC).resize(shape.size, Image.BICUBIC)
    offset = (rng.randint(0, size - shape.width), rng.randint(0, size - shape.height))
    canvas.paste(fill, offset, shape)
    canvas = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.6)))
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _pattern_fill(rgb: tuple[int, int, int], pattern: str, size: int, rng: random.Random) -> Image.Image:
    fill = Image.new("RGB", (size, size), rgb)
    draw = ImageDraw.Draw(fill)
    contrast = (255, 255, 255) if sum(rgb) < 500 else (40, 40, 40)
    step = rng.randint(14, 22)
    if pattern == "striped":
        for y in range(0, size, step):
            draw.rectangle([0, y, size, y + step // 3], fill=contrast)
    elif pattern == "dotted":
        radius = step // 5
        for y in range(step // 2, size, step):
            for x in range(step // 2, size, step):
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=contrast)
    return fill


def _draw_silhouette(draw: ImageDraw.ImageDraw, kind: str, size: int) -> None:
    s = size / 100

    def box(*xy: float) -> list[float]:
        return [v * s for v in xy]

    if kind == "mug":
        draw.rounded_rectangle(box(25, 25, 68, 80), radius=4 * s, fill=255)
        draw.ellipse(box(58, 38, 84, 66), outline=255, width=int(6 * s))
    elif kind == "t-shirt":
        draw.polygon(
            box(30, 20, 42, 20, 50, 27, 58, 20, 70, 20, 88, 36, 78, 46, 70, 40, 70, 85, 30, 85, 30, 40, 22, 46, 12, 36),
            fill=255,
        )
    elif kind == "bag":
        draw.rounded_rectangle(box(22, 40, 78, 85), radius=5 * s, fill=255)
        draw.arc(box(35, 18, 65, 55), start=180, end=360, fill=255, width=int(5 * s))
    elif kind == "hat":
        draw.ellipse(box(12, 58, 88, 76), fill=255)
        draw.rounded_rectangle(box(30, 28, 70, 67), radius=10 * s, fill=255)
    elif kind == "bottle":
        draw.rectangle(box(44, 12, 56, 30), fill=255)
        draw.rounded_rectangle(box(34, 28, 66, 88), radius=8 * s, fill=255)
    elif kind == "lamp":
        draw.polygon(box(32, 18, 68, 18, 80, 48, 20, 48), fill=255)
        draw.rectangle(box(47, 48, 53, 80), fill=255)
        draw.ellipse(box(30, 78, 70, 88), fill=255)
    else:
        raise ValueError(f"Unknown kind {kind!r}")
