"""Judgments for the demo shop: which products a query should find.

Held-out renders (a separate random stream, never used in training or in the catalog)
become image queries; the shop's own attribute combinations become text queries in
English and Chinese.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from catalog.demo import COLOURS, KINDS, Attributes, DemoProduct, demo_attribute_render


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

    path = folder / "judgments.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path
