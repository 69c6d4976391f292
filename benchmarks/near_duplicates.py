"""Where to put VITRINE_NEAR_DUPLICATE_THRESHOLD for a model: cosine between a photo and
its copies (re-saved, resized, cropped, mirrored) against another photo of the same
product and the nearest other product.

    .venv/bin/python benchmarks/near_duplicates.py [--products 200] [--model NAME --pretrained TAG]

Uses the demo shop's renders (two photos per product). A good threshold sits above
"another photo of the same product" (max) and below the copies you want caught (p1).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--model", default=None)
    parser.add_argument("--pretrained", default=None)
    args = parser.parse_args()
    if args.model:
        os.environ["VITRINE_CLIP_MODEL"] = args.model
        os.environ["VITRINE_CLIP_PRETRAINED"] = args.pretrained or ""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "searchsite.settings")
    os.environ.setdefault("LOG_LEVEL", "warning")
    import django

    django.setup()
    from PIL import Image

    from catalog.demo import demo_products
    from embeddings.model import get_encoder

    encoder = get_encoder()
    originals, seconds = [], []
    copies: dict[str, list] = {
        "re-saved as JPEG quality 40": [],
        "resized to 60 %": [],
        "cropped 8 %": [],
        "mirrored": [],
    }
    for product in demo_products(count=args.products, seed=21, images_per_product=(2, 2)):
        first, second = (Image.open(io.BytesIO(b)).convert("RGB") for b in product.render_images())
        originals.append(first)
        seconds.append(second)
        buffer = io.BytesIO()
        first.save(buffer, format="JPEG", quality=40)
        copies["re-saved as JPEG quality 40"].append(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        width, height = first.size
        copies["resized to 60 %"].append(first.resize((width * 6 // 10, height * 6 // 10)))
        margin = width * 8 // 100
        copies["cropped 8 %"].append(first.crop((margin, margin, width - margin, height - margin)))
        copies["mirrored"].append(first.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    base = encoder.images_encode(originals)
    print(f"{args.products} products, model {encoder.space.id}")
    for name, images in copies.items():
        scores = (base * encoder.images_encode(images)).sum(1)
        p1, p5, median = np.percentile(scores, [1, 5, 50])
        print(f"{name:40} p1 {p1:.4f}  p5 {p5:.4f}  median {median:.4f}")
    same = (base * encoder.images_encode(seconds)).sum(1)
    median, p99 = np.percentile(same, [50, 99])
    print(f"{'another photo of the same product':40} median {median:.4f}  p99 {p99:.4f}  max {same.max():.4f}")
    others = base @ base.T
    np.fill_diagonal(others, -1)
    nearest = others.max(1)
    print(f"{'the nearest other product':40} median {np.median(nearest):.4f}  max {nearest.max():.4f}")


if __name__ == "__main__":
    main()
