"""Images/s that `import_images` indexes, against a bare open_clip encode of the same files.

    .venv/bin/python benchmarks/indexing_throughput.py [--images 256] [--model ViT-B-32] [--side 800]

The baseline, measured in the same run with the same loaded model and torch threads: read
each file, decode with Pillow, preprocess with open_clip's transform, encode in batches of
VITRINE_EMBED_BATCH_SIZE (a plain script's loop). Also timed: the forward passes alone, on
tensors prepared beforehand. Vitrine adds intake validation (a full decode), content-
addressed storage, DB rows, the index upsert, the near-duplicate check and the state
updates, and overlaps decoding with the forward passes (VITRINE_DECODE_THREADS) and
decodes JPEGs in draft mode (VITRINE_DECODE_DRAFT_FACTOR). The ratio says what it costs.

``--side`` upscales the demo drawings (160 px) to photos of that side, as cameras make
them; then the draft mode's effect is measured too: decode time per photo, and the cosine
between each photo's vector decoded fully and in draft mode.
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
    parser.add_argument("--side", type=int, default=0, help="upscale the photos to this side (default: 160 px)")
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
    from embeddings.model import get_encoder, torch_threads_configure

    folder = workdir / "photos"
    folder.mkdir()
    count = 0
    from PIL import Image

    for product in demo_products(count=args.images, seed=11, images_per_product=(1, 1)):
        content = product.render_images()[0]
        if args.side:
            image = Image.open(io.BytesIO(content)).resize((args.side, args.side), Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=90)
            content = buffer.getvalue()
        (folder / f"{product.external_id}.jpg").write_bytes(content)
        count += 1
    files = sorted(folder.iterdir())
    call_command("migrate", verbosity=0)
    encoder = get_encoder()  # loaded once, outside both timings
    batch_size = settings.VITRINE_EMBED_BATCH_SIZE
    side = args.side or 160
    print(
        f"model {encoder.space.model} ({encoder.space.weights}), {count} demo photos of {side}x{side}, "
        f"batch {batch_size}, torch threads {torch_threads_configure()}, decode threads "
        f"{settings.VITRINE_DECODE_THREADS}, draft factor {settings.VITRINE_DECODE_DRAFT_FACTOR}"
    )

    tensors = [encoder.preprocess(Image.open(p).convert("RGB")) for p in files]
    started = time.perf_counter()
    for start in range(0, len(files), batch_size):
        encoder.tensors_encode(tensors[start : start + batch_size])
    forward_seconds = time.perf_counter() - started
    del tensors

    started = time.perf_counter()
    for start in range(0, len(files), batch_size):
        batch = [Image.open(io.BytesIO(p.read_bytes())).convert("RGB") for p in files[start : start + batch_size]]
        encoder.images_encode(batch)
    bare_seconds = time.perf_counter() - started

    started = time.perf_counter()
    call_command("import_images", str(folder), verbosity=0, stdout=io.StringIO())
    vitrine_seconds = time.perf_counter() - started

    bare_rate, vitrine_rate = count / bare_seconds, count / vitrine_seconds
    print(f"forward passes alone  : {count / forward_seconds:8.1f} images/s ({forward_seconds:.2f} s)")
    print(f"bare open_clip encode : {bare_rate:8.1f} images/s ({bare_seconds:.2f} s)")
    print(f"vitrine import_images : {vitrine_rate:8.1f} images/s ({vitrine_seconds:.2f} s)")
    print(f"ratio vitrine / bare  : {vitrine_rate / bare_rate:8.2f}")

    if args.side:
        import numpy as np

        from catalog.intake import image_decode_rgb

        min_side = encoder.input_side * (settings.VITRINE_DECODE_DRAFT_FACTOR or 2)
        sample = [p.read_bytes() for p in files[:64]]
        timings = {}
        images = {}
        for label, wanted in (("full", 0), ("draft", min_side)):
            started = time.perf_counter()
            images[label] = [image_decode_rgb(content=content, min_side=wanted) for content in sample]
            timings[label] = (time.perf_counter() - started) / len(sample) * 1000
        full, draft = encoder.images_encode(images["full"]), encoder.images_encode(images["draft"])
        cosines = np.sum(full * draft, axis=1)
        print(
            f"decode per photo      : full {timings['full']:.1f} ms, draft (sides >= {min_side}) "
            f"{timings['draft']:.1f} ms, to {images['draft'][0].size[0]} px"
        )
        print(f"draft vs full vectors : cosine mean {cosines.mean():.5f}, min {cosines.min():.5f} ({len(sample)})")


if __name__ == "__main__":
    main()
