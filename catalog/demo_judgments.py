"""Judgments for the demo shop: which products a query should find.

Held-out renders (a separate random stream, never used in training or in the catalog)
become image queries; the shop's own attribute combinations become text queries in
English and Chinese.

Every text query is marked with its ``split``: ``trained`` for the phrasings the demo
model's captions use ("red striped mug", 红色条纹杯子), ``held-out`` for phrasings never
used in training (plurals, synonyms in and not in the demo shop's synonym table,
paraphrases, typos, filler words, traditional characters, measure words), and
``checks`` for brand, category, out-of-domain (``expect: none``: nothing should be
shown) and photo-with-words queries.
"""

from __future__ import annotations

import json
import os
import random
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from catalog.demo import (
    BRANDS,
    COLOURS,
    KINDS,
    PATTERN_NOUNS,
    PATTERNS,
    PLURALS,
    Attributes,
    DemoProduct,
    demo_attribute_render,
)

# Synonyms the demo shop's table lists (catalog.demo.DEMO_SYNONYMS) and ones it does not.
KIND_SYNONYMS_LISTED = {
    "mug": "cup",
    "t-shirt": "tee",
    "shoe": "sneaker",
    "bag": "handbag",
    "hat": "cap",
    "umbrella": "parasol",
    "bottle": "flask",
    "chair": "seat",
}
KIND_SYNONYMS_UNLISTED = {
    "mug": "tumbler",
    "bag": "purse",
    "hat": "beanie",
    "umbrella": "brolly",
    "bottle": "canteen",
    "chair": "stool",
    "lamp": "lantern",
    "clock": "timepiece",
    "vase": "urn",
}
COLOUR_SYNONYMS_LISTED = {"red": "crimson", "blue": "navy", "purple": "violet", "grey": "gray"}
COLOUR_SYNONYMS_UNLISTED = {"red": "maroon", "blue": "cobalt", "green": "emerald", "black": "ebony", "white": "ivory"}
# Held-out templates: never used in training (embeddings.training uses catalog.demo's
# TRAINED_* templates; a test checks the two do not overlap).
HELD_OUT_PARAPHRASES_EN = ("{k} in {c} with {p}", "{c} {k} with {p}", "{k}, {c}, {pa}")
HELD_OUT_FILLERS_EN = ("looking for a {} please", "do you have a {}", "a nice {} for me")
HELD_OUT_PARAPHRASES_ZH = ("{p}的{c}{k}", "{k}，{c}，{p}")
HELD_OUT_FILLERS_ZH = ("帮我找{}", "我要买{}", "请给我看看{}")
HELD_OUT_MEASURES_ZH = ("一只{c}{p}{k}", "一款{p}的{c}{k}")
# Families the demo model's captions include (plurals, the listed synonyms, typos,
# traditional characters, Chinese with an English noun): their queries are in the
# "trained" split; the other families' templates are held out.
TRAINED_FAMILIES = {"plural", "synonym-listed", "colour-synonym-listed", "typo", "traditional", "mixed"}
OUT_OF_DOMAIN = (
    "laptop",
    "asdfgh",
    "🙂",
    "一只可爱的猫咪",
    "pizza",
    "smartphone",
    "car tyre",
    "笔记本电脑",
    "qwerty",
    "😀",
    "a",
    "guitar",
    "手机",
    "bicycle",
    "dog food",
    "狗粮",
    "xyzzy",
    "electric drill",
    "汽车",
    "banana",
)
CHANGE_PHRASES_EN = ("in {}", "but in {}", "this, but in {}", "same in {}", "{}")
CHANGE_PHRASES_ZH = ("{}的", "换成{}", "要{}的")
HELD_OUT_SAMPLE = 48  # queries per held-out family and language


def demo_judgments_write(*, products: list[DemoProduct], folder: Path, image_queries: int = 200) -> Path:
    """Write ``judgments.jsonl`` and the held-out query images into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    by_attributes: dict[Attributes, list[str]] = defaultdict(list)
    by_colour_kind: dict[tuple[str, str], list[str]] = defaultdict(list)
    by_colour: dict[str, list[str]] = defaultdict(list)
    by_kind: dict[str, list[str]] = defaultdict(list)
    for product in products:
        a = product.attributes
        by_attributes[a].append(product.external_id)
        by_colour_kind[(a.colour, a.kind)].append(product.external_id)
        by_colour[a.colour].append(product.external_id)
        by_kind[a.kind].append(product.external_id)

    rows = []
    for attributes, ids in sorted(by_attributes.items(), key=lambda item: str(item[0])):
        if attributes.pattern == "plain":
            continue  # "red mug" means any red mug: covered by the colour-and-kind queries
        rows.append({"query": attributes.title.lower(), "relevant": ids, "language": "en", "group": "compositional"})
        rows.append({"query": attributes.title_zh, "relevant": ids, "language": "zh", "group": "compositional"})
    for (colour, kind), ids in sorted(by_colour_kind.items()):
        rows.append(
            {
                "query": f"{COLOURS[colour][0]} {KINDS[kind][0]}",
                "relevant": ids,
                "language": "en",
                "group": "colour+kind",
            }
        )
        rows.append(
            {
                "query": f"{COLOURS[colour][1]}{KINDS[kind][1]}",
                "relevant": ids,
                "language": "zh",
                "group": "colour+kind",
            }
        )
    for colour, ids in sorted(by_colour.items()):
        rows.append({"query": COLOURS[colour][0], "relevant": ids, "language": "en", "group": "colour"})
        rows.append({"query": COLOURS[colour][1], "relevant": ids, "language": "zh", "group": "colour"})
    for kind, ids in sorted(by_kind.items()):
        rows.append({"query": KINDS[kind][0], "relevant": ids, "language": "en", "group": "kind"})
        rows.append({"query": KINDS[kind][1], "relevant": ids, "language": "zh", "group": "kind"})

    rows.extend(_held_out_rows(by_attributes))
    rows.extend(_check_rows(products))

    images_folder = folder / "held-out"
    images_folder.mkdir(exist_ok=True)
    combos = sorted(by_attributes, key=str)
    queries = [(number, combos[number % len(combos)]) for number in range(min(image_queries, len(combos) * 2))]

    def draw(query: tuple[int, Attributes]) -> None:
        number, attributes = query
        demo_attribute_render(attributes, stream="held-out", index=number).save(
            images_folder / f"{number:04d}.jpg", quality=90
        )

    # Pillow releases the GIL while drawing: threads draw several at once.
    with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
        list(pool.map(draw, queries))
    for number, attributes in queries:
        rows.append({"image": f"held-out/{number:04d}.jpg", "relevant": by_attributes[attributes], "group": "image"})

    rows.extend(_photo_with_words_rows(by_attributes, images_folder))

    for row in rows:
        row.setdefault("split", "trained" if "query" in row else "image")

    path = folder / "judgments.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def _plural(kind: str) -> str:
    return PLURALS.get(kind, KINDS[kind][0] + "s")


def _typo(word: str, rng: random.Random) -> str:
    """One slip of the finger inside a word (never its first letter)."""
    position = rng.randrange(1, len(word) - 1)
    operation = rng.choice(("drop", "swap", "double", "change"))
    if operation == "drop":
        return word[:position] + word[position + 1 :]
    if operation == "swap":
        return word[:position] + word[position + 1] + word[position] + word[position + 2 :]
    if operation == "double":
        return word[:position] + word[position] + word[position:]
    letters = "aeiourstnl".replace(word[position], "")
    return word[:position] + rng.choice(letters) + word[position + 1 :]


def _held_out_rows(by_attributes: dict[Attributes, list[str]]) -> list[dict]:
    """Phrasings the demo model never saw in training, over the shop's patterned products."""
    from opencc import OpenCC

    traditional = OpenCC("s2t")
    rng = random.Random("held-out-phrasings")
    combos = [a for a in sorted(by_attributes, key=str) if a.pattern != "plain"]
    rows: list[dict] = []

    def add(family: str, language: str, make) -> None:
        chosen = rng.sample(combos, min(HELD_OUT_SAMPLE, len(combos)))
        for attributes in chosen:
            query = make(attributes)
            if query:
                rows.append(
                    {
                        "query": query,
                        "relevant": by_attributes[attributes],
                        "language": language,
                        "group": family,
                        "split": "trained" if family in TRAINED_FAMILIES else "held-out",
                    }
                )

    def words(a: Attributes) -> tuple[str, str, str]:
        return COLOURS[a.colour][0], PATTERNS[a.pattern][0], KINDS[a.kind][0]

    add("plural", "en", lambda a: f"{words(a)[0]} {words(a)[1]} {_plural(a.kind)}")
    add(
        "synonym-listed",
        "en",
        lambda a: (
            f"{words(a)[0]} {words(a)[1]} {KIND_SYNONYMS_LISTED[a.kind]}" if a.kind in KIND_SYNONYMS_LISTED else ""
        ),
    )
    add(
        "synonym-unlisted",
        "en",
        lambda a: (
            f"{words(a)[0]} {words(a)[1]} {KIND_SYNONYMS_UNLISTED[a.kind]}" if a.kind in KIND_SYNONYMS_UNLISTED else ""
        ),
    )
    add(
        "colour-synonym-listed",
        "en",
        lambda a: (
            f"{COLOUR_SYNONYMS_LISTED[a.colour]} {words(a)[1]} {words(a)[2]}"
            if a.colour in COLOUR_SYNONYMS_LISTED
            else ""
        ),
    )
    add(
        "colour-synonym-unlisted",
        "en",
        lambda a: (
            f"{COLOUR_SYNONYMS_UNLISTED[a.colour]} {words(a)[1]} {words(a)[2]}"
            if a.colour in COLOUR_SYNONYMS_UNLISTED
            else ""
        ),
    )
    paraphrases = HELD_OUT_PARAPHRASES_EN
    add(
        "paraphrase",
        "en",
        lambda a: rng.choice(paraphrases).format(
            k=KINDS[a.kind][0], c=COLOURS[a.colour][0], p=PATTERN_NOUNS[a.pattern], pa=PATTERNS[a.pattern][0]
        ),
    )
    add(
        "paraphrase",
        "zh",
        lambda a: rng.choice(HELD_OUT_PARAPHRASES_ZH).format(
            k=KINDS[a.kind][1], c=COLOURS[a.colour][1], p=PATTERNS[a.pattern][1]
        ),
    )

    def typo_query(a: Attributes) -> str:
        parts = list(words(a))
        longest = max(range(3), key=lambda i: len(parts[i]))
        parts[longest] = _typo(parts[longest], rng)
        return " ".join(parts)

    add("typo", "en", typo_query)
    add("filler", "en", lambda a: rng.choice(HELD_OUT_FILLERS_EN).format(a.title.lower()))
    add("filler", "zh", lambda a: rng.choice(HELD_OUT_FILLERS_ZH).format(a.title_zh))
    add("traditional", "zh", lambda a: traditional.convert(a.title_zh))
    measures = HELD_OUT_MEASURES_ZH
    add(
        "measure-word",
        "zh",
        lambda a: rng.choice(measures).format(c=COLOURS[a.colour][1], p=PATTERNS[a.pattern][1], k=KINDS[a.kind][1]),
    )
    add("mixed", "zh", lambda a: f"{COLOURS[a.colour][1]}{PATTERNS[a.pattern][1]} {KINDS[a.kind][0]}")
    return rows


def _check_rows(products: list[DemoProduct]) -> list[dict]:
    """Brand + kind, category, and out-of-domain queries."""
    by_brand_kind: dict[tuple[str, str], list[str]] = defaultdict(list)
    by_category: dict[str, list[str]] = defaultdict(list)
    for product in products:
        by_brand_kind[(product.brand, product.attributes.kind)].append(product.external_id)
        by_category[product.category].append(product.external_id)
    rows = []
    for brand in BRANDS:
        for kind in KINDS:
            ids = by_brand_kind.get((brand, kind))
            if ids:
                rows.append(
                    {
                        "query": f"{brand} {KINDS[kind][0]}",
                        "relevant": ids,
                        "language": "en",
                        "group": "brand+kind",
                        "split": "checks",
                    }
                )
    for category, ids in sorted(by_category.items()):
        rows.append({"query": category, "relevant": ids, "language": "en", "group": "category", "split": "checks"})
    for query in OUT_OF_DOMAIN:
        language = "zh" if any("\u4e00" <= ch <= "\u9fff" for ch in query) else "en"
        rows.append(
            {
                "query": query,
                "relevant": [],
                "expect": "none",
                "language": language,
                "group": "out-of-domain",
                "split": "checks",
            }
        )
    return rows


def _photo_with_words_rows(by_attributes: dict[Attributes, list[str]], folder: Path) -> list[dict]:
    """A held-out photo of one product and words changing its colour: the same kind and
    pattern in the new colour should come first."""
    rng = random.Random("photo-with-words")
    combos = [a for a in sorted(by_attributes, key=str) if a.pattern != "plain"]
    rows = []
    for number, attributes in enumerate(rng.sample(combos, min(40, len(combos)))):
        colours = [c for c in COLOURS if c != attributes.colour]
        rng.shuffle(colours)
        target = next(
            (
                Attributes(attributes.kind, c, attributes.pattern)
                for c in colours
                if Attributes(attributes.kind, c, attributes.pattern) in by_attributes
            ),
            None,
        )
        if target is None:
            continue
        name = f"change-{number:03d}.jpg"
        demo_attribute_render(attributes, stream="held-out-change", index=number).save(folder / name, quality=90)
        zh = number % 3 == 0
        phrase = rng.choice(CHANGE_PHRASES_ZH if zh else CHANGE_PHRASES_EN)
        words = phrase.format(COLOURS[target.colour][1] if zh else COLOURS[target.colour][0])
        rows.append(
            {
                "image": f"held-out/{name}",
                "query": words,
                "relevant": by_attributes[target],
                "language": "zh" if zh else "en",
                "group": "photo+words",
                "split": "checks",
            }
        )
    return rows
