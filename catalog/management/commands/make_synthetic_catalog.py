"""A large synthetic catalog, for trying Vitrine at scale (benchmarks/scale.py uses it).

Products are demo products (every attribute combination before any repeats), one photo
each, written through the catalog's services like any import. Drawing a demo photo takes
about 25 ms, so a pool of ``--photos`` distinct drawings is made once and each product gets
a copy of one of its own attributes with a few pixels of its own (distinct bytes, a
distinct vector very close to its pool photo's: like variants of one product photographed
the same way). So a product's photo shows what its title says, and the demo judgments
(``demo_judgments_write`` for the same products) measure relevance at scale.
"""

from __future__ import annotations

import io
import os
import time
from concurrent.futures import ThreadPoolExecutor

from django.core.management.base import BaseCommand, CommandError
from PIL import Image
from tqdm import tqdm

from catalog import services, signals
from catalog.commands import held_images_index, intake_finish, intake_start
from catalog.demo import demo_products
from catalog.intake import ImageRejected

# Products written together (the bulk services' batch).
BATCH = 500


class Command(BaseCommand):
    help = (
        "Create a synthetic catalog of demo products with one photo each, through the catalog's services, "
        "and index it (e.g. --products 100000 to try Vitrine at scale)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--products", type=int, required=True)
        parser.add_argument("--photos", type=int, default=2000, help="Distinct drawings to vary (default 2000).")
        parser.add_argument("--seed", type=int, default=1, help="The same seed gives the same catalog.")

    def handle(self, *args, products: int, photos: int, seed: int, verbosity: int, **options):
        if products < 1 or photos < 1:
            raise CommandError("--products and --photos must be positive.")
        intake_start(self)
        specs = demo_products(count=products, seed=seed, images_per_product=(1, 1))
        started = time.monotonic()
        # The pool: the first products' drawings. Every product gets a drawing of its own
        # attributes (its photo shows what its title says), the pool's that have them.
        pool_specs = specs[: min(photos, products)]
        with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as threads:
            drawn = list(threads.map(lambda spec: spec.render_images()[0], pool_specs))
        pool: dict = {}
        for spec, content in zip(pool_specs, drawn, strict=True):
            pool.setdefault(spec.attributes, []).append(Image.open(io.BytesIO(content)).convert("RGB"))
        missing = {spec.attributes: spec for spec in specs if spec.attributes not in pool}
        for attributes, spec in missing.items():  # a combination the pool lacks: drawn once
            pool[attributes] = [Image.open(io.BytesIO(spec.render_images()[0])).convert("RGB")]
        drawings = sum(len(images) for images in pool.values())
        self.stdout.write(f"Drew {drawings} photos in {time.monotonic() - started:.1f} s.")
        failed = 0
        with signals.deferred() as held:
            for start in tqdm(range(0, products, BATCH), desc="Catalog", unit="batch", disable=verbosity == 0):
                batch = specs[start : start + BATCH]
                written = services.products_bulk_upsert(
                    products=[
                        {
                            "external_id": spec.external_id,
                            "title": spec.title,
                            "description": spec.description,
                            "brand": spec.brand,
                            "category": spec.category,
                            "price": spec.price,
                            "currency": "EUR",
                            "attributes": spec.attributes_dict(),
                        }
                        for spec in batch
                    ]
                )
                items = [
                    (result.product, _variant(pool[batch[offset].attributes], start + offset))
                    for offset, result in enumerate(written)
                    if not isinstance(result, services.ProductWriteError) and result.is_created
                ]
                results = services.images_create_many(items=items)
                failed += sum(isinstance(result, ImageRejected) for result in results)
            run = held_images_index(held, show_progress=verbosity > 0)
        intake_finish(self)
        self.stdout.write(
            f"{products} products, {run.queued} photos embedded in {time.monotonic() - started:.1f} s; "
            f"{failed + len(run.failures)} failed."
        )


def _variant(pool: list[Image.Image], number: int) -> bytes:
    """Product ``number``'s photo: its pool drawing with a few pixels of its own."""
    image = pool[number % len(pool)].copy()
    for bit in range(8):
        shade = 255 if number >> bit & 1 else 0
        image.putpixel((bit, 0), (shade, 255 - shade, (number >> 8) % 256))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()
