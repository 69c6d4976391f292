"""How good the calibrated relevance cutoff is, against every single threshold.

    .venv/bin/python benchmarks/cutoff_sweep.py [--cutoff 0.5086]

Renders all 528 demo combinations (kind × colour × pattern) once, from a stream the shop
does not use, and scores 215 attribute queries against them with the demo model: the 12
kinds, the 11 colours, the 132 colour + kind pairs and 60 full descriptions. A render is
relevant when it has every attribute the query names. For each threshold on a 0.01 grid
(and the calibrated one, `--cutoff`, by default what `calibrate_relevance` gives for the
demo shop), prints the mean per-query precision, recall and F1 of "score ≥ threshold".
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cutoff", type=float, default=0.5086)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "searchsite.settings")
    os.environ.setdefault("LOG_LEVEL", "warning")
    import django

    django.setup()
    from catalog.demo import COLOURS, KINDS, all_attributes, demo_attribute_render
    from embeddings.model import get_encoder

    encoder = get_encoder()
    looks = all_attributes()
    photos = encoder.images_encode([demo_attribute_render(a, stream="cutoff-sweep", index=0) for a in looks])
    queries = [(KINDS[k][0], lambda a, k=k: a.kind == k) for k in KINDS]
    queries += [(COLOURS[c][0], lambda a, c=c: a.colour == c) for c in COLOURS]
    queries += [
        (f"{COLOURS[c][0]} {KINDS[k][0]}", lambda a, c=c, k=k: a.colour == c and a.kind == k)
        for c in COLOURS
        for k in KINDS
    ]
    queries += [(a.title, lambda b, a=a: b == a) for a in random.Random(0).sample(looks, 60)]
    scores = encoder.texts_encode([text for text, _ in queries]) @ photos.T
    relevant = np.array([[is_relevant(a) for a in looks] for _, is_relevant in queries])

    def quality(threshold: float) -> tuple[float, float, float]:
        chosen = scores >= threshold
        hits = (chosen & relevant).sum(1)
        precision = np.where(chosen.sum(1) > 0, hits / np.maximum(chosen.sum(1), 1), 1.0)
        recall = hits / np.maximum(relevant.sum(1), 1)
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-9)
        return float(f1.mean()), float(precision.mean()), float(recall.mean())

    grid = [round(t, 2) for t in np.arange(0.30, 0.60, 0.01)]
    best = max(grid, key=lambda t: quality(t)[0])
    print(f"{len(queries)} queries × {len(looks)} renders, model {encoder.space.id}")
    print(f"{'threshold':>10} {'F1':>6} {'precision':>10} {'recall':>7}")
    for label, threshold in [("best", best), ("calibrated", args.cutoff), *((str(t), t) for t in grid[::5])]:
        f1, precision, recall = quality(threshold)
        print(f"{label:>10} {f1:6.3f} {precision:10.3f} {recall:7.3f}   (≥ {threshold:.4f})")


if __name__ == "__main__":
    main()
