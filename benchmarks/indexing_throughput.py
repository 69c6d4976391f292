"""Images/s that `import_images` indexes, against a bare open_clip encode of the same files.

    .venv/bin/python benchmarks/indexing_throughput.py [--images 256] [--model vitrine-tiny]

The baseline, measured in the same run with the same loaded model: read each file, decode
with Pillow, preprocess with open_clip's transform, encode in batches of the same size.
Vitrine adds intake validation, content-addressed storage, DB rows, the Qdrant upsert and
the state updates. The ratio says what that costs.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--model", default=None, help="VITRINE_CLIP_MODEL for this run (weights: random)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="vitrine-bench-"))
    os.environ["VITRINE_DATA_DIR"] = str(workdir / "data")
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.pop("QDRANT_URL", None)
    os.environ.pop("DATABASE_URL", None)
    if args.model:
        os.environ["VITRINE_CLIP_MODEL"] = args.model
        os.environ["VITRINE_CLIP_PRETRAINED"] = ""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "searchsite.settings")
    os.environ.setdefault("LOG_LEVEL", "warning")

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from catalog.demo import demo_products
    from embeddings.model import get_encoder

    folder = workdir / "photos"
    folder.mkdir()
    count = 0
    for product in demo_products(count=args.images, seed=11, images_per_product=(1, 1)):
        (folder / f"{product.external_id}.jpg").write_bytes(product.render_images()[0])
        count += 1
    files = sorted(folder.iterdir())
    call_command("migrate", verbosity=0)
    encoder = get_encoder()  # loaded once, outside both timings
    batch_size = settings.VITRINE_EMBED_BATCH_SIZE
    print(f"model {encoder.space.model} ({encoder.space.weights}), {count} demo photos of 160x160, batch {batch_size}")

    from PIL import Image

    started = time.perf_counter()
    for start in range(0, len(files), batch_size):
        batch = [Image.open(io.BytesIO(p.read_bytes())).convert("RGB") for p in files[start : start + batch_size]]
        encoder.images_encode(batch)
    bare_seconds = time.perf_counter() - started

    started = time.perf_counter()
    call_command("import_images", str(folder), verbosity=0, stdout=io.StringIO())
    vitrine_seconds = time.perf_counter() - started

    bare_rate, vitrine_rate = count / bare_seconds, count / vitrine_seconds
    print(f"bare open_clip encode : {bare_rate:8.1f} images/s ({bare_seconds:.2f} s)")
    print(f"vitrine import_images : {vitrine_rate:8.1f} images/s ({vitrine_seconds:.2f} s)")
    print(f"ratio vitrine / bare  : {vitrine_rate / bare_rate:8.2f}")


if __name__ == "__main__":
    main()
