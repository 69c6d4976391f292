"""The demo shop: products drawn with Pillow, deterministic from a seed.

Twelve kinds of product drawn as silhouettes, eleven colours, four patterns, on a studio
or textured background with random position, scale, rotation and noise. Each product
has English and Chinese names for every attribute, a title, a description, a brand, a
category and a price, and two or three distinct renders ("photos").

The same renderer makes the training pictures of the demo model and the held-out
pictures that measure it (``demo_attribute_render``), from separate random streams, so
evaluation never sees a picture the model was trained on.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from decimal import Decimal

from PIL import Image, ImageChops, ImageDraw, ImageFilter

IMAGE_SIZE = 160

# name: (English, Chinese, RGB)
COLOURS = {
    "red": ("red", "红色", (205, 32, 38)),
    "orange": ("orange", "橙色", (245, 128, 20)),
    "yellow": ("yellow", "黄色", (242, 204, 32)),
    "green": ("green", "绿色", (38, 150, 60)),
    "blue": ("blue", "蓝色", (32, 72, 205)),
    "purple": ("purple", "紫色", (122, 48, 165)),
    "pink": ("pink", "粉色", (240, 130, 185)),
    "brown": ("brown", "棕色", (118, 72, 32)),
    "black": ("black", "黑色", (28, 28, 28)),
    "white": ("white", "白色", (246, 246, 246)),
    "grey": ("grey", "灰色", (128, 128, 128)),
}
# name: (English adjective, Chinese)
PATTERNS = {
    "plain": ("plain", "纯色"),
    "striped": ("striped", "条纹"),
    "dotted": ("dotted", "圆点"),
    "checked": ("checked", "格子"),
}
# name: (English noun, Chinese noun, category, price range in EUR)
KINDS = {
    "t-shirt": ("t-shirt", "T恤", "clothing", (12, 45)),
    "sock": ("sock", "袜子", "clothing", (4, 15)),
    "hat": ("hat", "帽子", "clothing", (10, 50)),
    "shoe": ("shoe", "鞋", "footwear", (35, 140)),
    "bag": ("bag", "包", "accessories", (25, 160)),
    "umbrella": ("umbrella", "雨伞", "accessories", (12, 60)),
    "mug": ("mug", "杯子", "kitchen", (6, 25)),
    "bottle": ("bottle", "瓶子", "kitchen", (8, 35)),
    "vase": ("vase", "花瓶", "home", (15, 90)),
    "lamp": ("lamp", "台灯", "home", (30, 180)),
    "chair": ("chair", "椅子", "home", (45, 320)),
    "clock": ("clock", "时钟", "home", (15, 80)),
}
CATEGORY_NAMES_ZH = {
    "clothing": "服装",
    "footwear": "鞋类",
    "accessories": "配饰",
    "kitchen": "厨房",
    "home": "家居",
}
BRANDS = ("Nordlys", "Casa Mora", "Kito", "Alder & Finch", "Yunshan", "Pebble & Co")
DESCRIPTION_ENDINGS = (
    "Made to last and easy to care for.",
    "A small everyday pleasure.",
    "Designed in our studio, made in small batches.",
    "Pairs well with the rest of the collection.",
    "A customer favourite since the first season.",
)
DESCRIPTION_ENDINGS_ZH = (
    "经久耐用，易于打理。",
    "日常的小确幸。",
    "我们工作室设计，小批量制作。",
    "与本系列其他单品很好搭配。",
    "第一季以来的顾客最爱。",
)


@dataclass(frozen=True)
class Attributes:
    kind: str
    colour: str
    pattern: str

    @property
    def title(self) -> str:
        pattern = "" if self.pattern == "plain" else f"{PATTERNS[self.pattern][0]} "
        text = f"{COLOURS[self.colour][0]} {pattern}{KINDS[self.kind][0]}"
        return text[:1].upper() + text[1:]

    @property
    def title_zh(self) -> str:
        pattern = "" if self.pattern == "plain" else PATTERNS[self.pattern][1]
        return f"{COLOURS[self.colour][1]}{pattern}{KINDS[self.kind][1]}"

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "colour": self.colour,
            "pattern": self.pattern,
            "kind_zh": KINDS[self.kind][1],
            "colour_zh": COLOURS[self.colour][1],
            "pattern_zh": PATTERNS[self.pattern][1],
            "title_zh": self.title_zh,
        }


def all_attributes() -> list[Attributes]:
    return [Attributes(k, c, p) for k in KINDS for c in COLOURS for p in PATTERNS]


@dataclass(frozen=True)
class DemoProduct:
    external_id: str
    title: str
    description: str
    brand: str
    category: str
    price: Decimal
    attributes: Attributes
    image_seeds: tuple[int, ...]
    description_zh: str = ""

    def attributes_dict(self) -> dict:
        """The product's attributes as the shop sends them, with its Chinese category and
        description (catalog.translations) beside the attribute translations."""
        return {
            **self.attributes.as_dict(),
            "category_zh": CATEGORY_NAMES_ZH.get(self.category, ""),
            "description_zh": self.description_zh,
        }

    def render_images(self) -> list[bytes]:
        """The product's photos as JPEG bytes (drawn on demand: about 25 ms each)."""
        return [render_product(self.attributes, rng=random.Random(seed)) for seed in self.image_seeds]


def demo_products(*, count: int, seed: int, images_per_product: tuple[int, int] = (2, 3)) -> list[DemoProduct]:
    """The demo shop's products. Same ``count`` and ``seed``, same shop, byte for byte."""
    rng = random.Random(f"catalog-{seed}")
    # Every combination once (in a shuffled order) before any repeats, so that a shop of
    # 528 products or more has a product for every query, "red striped mug" included.
    combinations = all_attributes()
    rng.shuffle(combinations)
    products = []
    for number in range(count):
        attributes = combinations[number] if number < len(combinations) else rng.choice(combinations)
        kind_name, _, category, (low, high) = KINDS[attributes.kind]
        brand = rng.choice(BRANDS)
        price = Decimal(rng.randint(low * 100, high * 100)) / 100
        image_count = rng.randint(*images_per_product)
        image_seeds = tuple(rng.getrandbits(32) for _ in range(image_count))
        ending = rng.choice(DESCRIPTION_ENDINGS)
        colour, pattern = COLOURS[attributes.colour][0], PATTERNS[attributes.pattern][0]
        description = f"A {colour} {pattern} {kind_name} by {brand}. {ending}"
        ending_zh = DESCRIPTION_ENDINGS_ZH[DESCRIPTION_ENDINGS.index(ending)]
        description_zh = f"{brand} 出品的{attributes.title_zh}。{ending_zh}"
        products.append(
            DemoProduct(
                external_id=f"demo-{seed}-{number:04d}",
                title=attributes.title,
                description=description,
                brand=brand,
                category=category,
                price=price,
                attributes=attributes,
                image_seeds=image_seeds,
                description_zh=description_zh,
            )
        )
    return products


def demo_attribute_render(attributes: Attributes, *, stream: str, index: int, size: int = IMAGE_SIZE) -> Image.Image:
    """A render from a named random stream ("train", "held-out"…): streams never overlap."""
    return render_image(attributes, rng=random.Random(f"{stream}-{attributes}-{index}"), size=size)


def render_product(attributes: Attributes, *, rng: random.Random) -> bytes:
    buffer = io.BytesIO()
    render_image(attributes, rng=rng).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def render_image(attributes: Attributes, *, rng: random.Random, size: int = IMAGE_SIZE) -> Image.Image:
    canvas = _background(rng, size)
    # Draw large, then scale: smooth edges at any size.
    mask = Image.new("L", (size * 2, size * 2), 0)
    _draw_silhouette(ImageDraw.Draw(mask), attributes.kind, size * 2)
    base = COLOURS[attributes.colour][2]
    jitter = [max(0, min(255, channel + rng.randint(-14, 14))) for channel in base]
    fill = _pattern_fill(tuple(jitter), attributes.pattern, size * 2, rng)

    angle = rng.uniform(-12, 12)
    mask = mask.rotate(angle, resample=Image.BICUBIC)
    fill = fill.rotate(angle, resample=Image.BICUBIC)
    scale = rng.uniform(0.62, 0.95)
    side = max(8, int(size * scale))
    mask = mask.resize((side, side), Image.LANCZOS)
    fill = fill.resize((side, side), Image.LANCZOS)
    offset = (rng.randint(0, size - side), rng.randint(0, size - side))

    # A soft shadow and a thin edge, as in a studio shot: white items stay visible.
    shadow = Image.new("L", (size, size), 0)
    shadow.paste(mask, (offset[0] + 3, offset[1] + 4))
    shadow = shadow.filter(ImageFilter.GaussianBlur(4)).point(lambda v: v * 0.45)
    canvas.paste((60, 60, 60), (0, 0), shadow)
    edge = ImageChops.subtract(mask.filter(ImageFilter.MaxFilter(3)), mask)
    canvas.paste((70, 70, 70), offset, edge)
    canvas.paste(fill, offset, mask)

    noise = _noise(rng, size, rng.uniform(4, 14)).convert("RGB")
    canvas = Image.blend(canvas, ImageChops.overlay(canvas, noise), 0.25)
    return canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.7)))


def _background(rng: random.Random, size: int) -> Image.Image:
    top = [rng.randint(200, 250) for _ in range(3)]
    bottom = [max(150, c - rng.randint(10, 45)) for c in top]
    gradient = Image.linear_gradient("L").resize((size, size))
    canvas = Image.composite(
        Image.new("RGB", (size, size), tuple(bottom)), Image.new("RGB", (size, size), tuple(top)), gradient
    )
    if rng.random() < 0.5:  # textured: a table top or a wall
        texture = _noise(rng, size // 8, 40).resize((size, size), Image.BICUBIC).convert("RGB")
        canvas = Image.blend(canvas, ImageChops.multiply(canvas, texture), 0.18)
    return canvas


def _noise(rng: random.Random, size: int, sigma: float) -> Image.Image:
    """Grey noise around 128 from our own generator (Pillow's effect_noise is not seeded)."""
    uniform = Image.frombytes("L", (size, size), rng.randbytes(size * size))
    spread = sigma / 74.0  # 74 is the standard deviation of uniform bytes
    return uniform.point(lambda v: int(128 + (v - 128) * spread))


def _pattern_fill(rgb: tuple[int, ...], pattern: str, size: int, rng: random.Random) -> Image.Image:
    fill = Image.new("RGB", (size, size), rgb)
    draw = ImageDraw.Draw(fill)
    brightness = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    contrast = (250, 250, 250) if brightness < 150 else (35, 35, 35)
    step = rng.randint(size // 11, size // 7)
    if pattern == "striped":
        width = max(2, step // 3)
        for y in range(0, size, step):
            draw.rectangle([0, y, size, y + width], fill=contrast)
    elif pattern == "dotted":
        radius = max(2, step // 5)
        for row, y in enumerate(range(step // 2, size, step)):
            shift = step // 2 if row % 2 else 0
            for x in range(step // 2 + shift, size, step):
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=contrast)
    elif pattern == "checked":
        tint = tuple((a + b) // 2 for a, b in zip(rgb, contrast, strict=True))
        for row, y in enumerate(range(0, size, step)):
            for column, x in enumerate(range(0, size, step)):
                if (row + column) % 2:
                    draw.rectangle([x, y, x + step - 1, y + step - 1], fill=tint)
    return fill


def _draw_silhouette(draw: ImageDraw.ImageDraw, kind: str, size: int) -> None:
    unit = size / 100

    def box(*xy: float) -> list[float]:
        return [v * unit for v in xy]

    def line_width(value: float) -> int:
        return max(1, int(value * unit))

    if kind == "t-shirt":
        draw.polygon(
            box(32, 18, 43, 18, 50, 26, 57, 18, 68, 18, 90, 36, 80, 48, 70, 41, 70, 86, 30, 86, 30, 41, 20, 48, 10, 36),
            fill=255,
        )
    elif kind == "sock":
        draw.polygon(box(38, 10, 60, 10, 60, 58, 82, 70, 86, 80, 78, 90, 50, 84, 40, 74, 38, 60), fill=255)
    elif kind == "hat":
        draw.ellipse(box(10, 60, 90, 78), fill=255)
        draw.rounded_rectangle(box(28, 28, 72, 69), radius=12 * unit, fill=255)
    elif kind == "shoe":
        draw.polygon(box(12, 72, 12, 40, 36, 36, 48, 52, 78, 58, 90, 66, 90, 78, 12, 78), fill=255)
    elif kind == "bag":
        draw.rounded_rectangle(box(20, 42, 80, 88), radius=6 * unit, fill=255)
        draw.arc(box(34, 16, 66, 58), start=180, end=360, fill=255, width=line_width(6))
    elif kind == "umbrella":
        draw.pieslice(box(10, 18, 90, 78), start=180, end=360, fill=255)
        draw.rectangle(box(48, 46, 52, 82), fill=255)
        draw.arc(box(38, 74, 52, 90), start=0, end=180, fill=255, width=line_width(4))
    elif kind == "mug":
        draw.rounded_rectangle(box(22, 24, 66, 82), radius=5 * unit, fill=255)
        draw.ellipse(box(56, 36, 86, 68), outline=255, width=line_width(7))
    elif kind == "bottle":
        draw.rectangle(box(44, 8, 56, 26), fill=255)
        draw.polygon(box(44, 24, 56, 24, 66, 36, 34, 36), fill=255)
        draw.rounded_rectangle(box(34, 34, 66, 90), radius=7 * unit, fill=255)
    elif kind == "vase":
        draw.ellipse(box(22, 36, 78, 90), fill=255)
        draw.polygon(box(40, 12, 60, 12, 56, 44, 44, 44), fill=255)
        draw.rectangle(box(36, 10, 64, 16), fill=255)
    elif kind == "lamp":
        draw.polygon(box(32, 14, 68, 14, 82, 46, 18, 46), fill=255)
        draw.rectangle(box(47, 46, 53, 80), fill=255)
        draw.ellipse(box(28, 78, 72, 90), fill=255)
    elif kind == "chair":
        draw.rectangle(box(28, 10, 36, 86), fill=255)  # back leg and back
        draw.rectangle(box(28, 10, 70, 18), fill=255)
        draw.rectangle(box(28, 50, 74, 58), fill=255)  # seat
        draw.rectangle(box(66, 50, 74, 86), fill=255)  # front leg
        draw.rectangle(box(36, 30, 66, 36), fill=255)  # back rail
    elif kind == "clock":
        draw.ellipse(box(20, 20, 80, 80), fill=255)
        draw.ellipse(box(18, 10, 36, 28), fill=255)
        draw.ellipse(box(64, 10, 82, 28), fill=255)
        draw.polygon(box(26, 74, 34, 74, 24, 90, 18, 90), fill=255)
        draw.polygon(box(66, 74, 74, 74, 82, 90, 76, 90), fill=255)
    else:
        raise ValueError(f"Unknown kind {kind!r}")


# The synonym table a merchandiser of the demo shop would start with (loaded into the
# admin's Synonyms by load_demo_catalog). (words, one way: only the first stands for the rest)
DEMO_SYNONYMS = (
    ("mug, cup, coffee cup, 马克杯, 杯子", False),
    ("t-shirt, tee, tshirt, t恤, 短袖", False),
    ("shoe, sneaker, trainer, 鞋, 鞋子", False),
    ("bag, handbag, tote, 包, 包包, 手提包", False),
    ("hat, cap, 帽子", False),
    ("umbrella, parasol, 雨伞, 伞", False),
    ("bottle, flask, water bottle, 瓶子, 水瓶", False),
    ("chair, seat, 椅子", False),
    ("lamp, light, desk lamp, 台灯, 灯", False),
    ("clock, 时钟, 钟, 钟表", False),
    ("vase, 花瓶", False),
    ("sock, 袜子", False),
    ("grey, gray, 灰色, 灰", False),
    ("crimson, red", True),
    ("scarlet, red", True),
    ("红, 红色", True),
    ("navy, blue", True),
    ("蓝, 蓝色", True),
    ("violet, purple", True),
    ("checked, plaid, checkered, tartan, 格子, 格纹", False),
    ("dotted, polka dot, spotted, 圆点, 波点", False),
    ("striped, stripy, 条纹", False),
)


# Phrasings the demo model is trained on besides the bare "colour pattern kind": shoppers
# write plurals, synonyms, sentences, typos, measure words and traditional characters.
# ``catalog.demo_judgments`` evaluates on other templates of each family (held out): the
# templates here are the trained ones, and the judgments check they do not overlap.
TRAINED_PARAPHRASES_EN = ("a {k} with {c} {pn}",)
TRAINED_FILLERS_EN = ("i want a {}", "show me a {}")
TRAINED_PARAPHRASES_ZH = ("{c}的{p}{k}",)
TRAINED_FILLERS_ZH = ("我想要{}", "有没有{}")
TRAINED_MEASURES_ZH = ("一个{c}的{k}", "一个{t}")
PATTERN_NOUNS = {"striped": "stripes", "dotted": "dots", "checked": "checks", "plain": "plain"}
PLURALS = {"t-shirt": "t-shirts", "shoe": "shoes", "bag": "bags", "hat": "hats", "sock": "socks"}
# Words the demo shop's synonym table lists (DEMO_SYNONYMS below): the model learns
# them too, so the vector side agrees with the keyword side.
KIND_SYNONYMS = {
    "mug": ("cup",),
    "t-shirt": ("tee",),
    "shoe": ("sneaker", "trainer"),
    "bag": ("handbag", "tote"),
    "hat": ("cap",),
    "umbrella": ("parasol",),
    "bottle": ("flask",),
    "chair": ("seat",),
    "lamp": ("light",),
}
COLOUR_SYNONYMS = {"red": ("crimson", "scarlet"), "blue": ("navy",), "purple": ("violet",), "grey": ("gray",)}
