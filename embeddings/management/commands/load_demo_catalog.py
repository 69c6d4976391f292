import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django.db.models import Count
from tqdm import tqdm

from catalog import services, signals
from catalog.commands import held_images_index
from catalog.demo import DEMO_SYNONYMS, demo_products
from catalog.demo_judgments import demo_judgments_write
from catalog.models import Product, ProductImage
from embeddings.commands import index_claim_for_command, index_optimize
from embeddings.model import get_encoder
from embeddings.models import RelevanceCutoff, Synonym, TagFacet
from embeddings.reconcile import reconcile
from embeddings.relevance import cutoffs_calibrate
from embeddings.tagging import demo_taxonomy_create

# Drawing the photos is Pillow's work, which releases the GIL: threads draw the next
# products' photos while this one is written (1.7x faster drawing on 2 cores, measured).
RENDER_THREADS = min(4, os.cpu_count() or 1)


class Command(BaseCommand):
    help = (
        "Create the demo shop (products drawn by Vitrine itself), index it, and write judged queries "
        "for evaluate_search. Safe to run again: an existing shop is left as it is."
    )

    def add_arguments(self, parser):
        parser.add_argument("--products", type=int, default=600, help="How many products (default 600).")
        parser.add_argument("--seed", type=int, default=7, help="Random seed; the same seed gives the same shop.")
        parser.add_argument(
            "--judgments",
            type=Path,
            default=None,
            help="Folder for judgments.jsonl and held-out query photos (default: DATA_DIR/demo).",
        )
        parser.add_argument(
            "--no-judgments",
            action="store_true",
            help="Do not write judged queries (nor render their held-out photos).",
        )

    def handle(
        self, *args, products: int, seed: int, judgments: Path | None, no_judgments: bool, verbosity: int, **options
    ):
        index_claim_for_command()
        specs = demo_products(count=products, seed=seed)
        created_products = 0
        new_image_ids = []
        # Products already there with their photos are not drawn again.
        photos_held = dict(
            Product.objects.filter(external_id__in=[spec.external_id for spec in specs])
            .annotate(photos=Count("images"))
            .values_list("external_id", "photos")
        )
        to_draw = [spec for spec in specs if photos_held.get(spec.external_id, 0) < len(spec.image_seeds)]
        # The photos are embedded at the end, in full batches, with a progress bar.
        with signals.deferred() as held, ThreadPoolExecutor(RENDER_THREADS) as pool:
            drawing = {spec.external_id for spec in to_draw}
            drawn = pool.map(_draw, to_draw)  # in order, drawn ahead while rows are written
            for spec in tqdm(specs, desc="Catalog", unit="product", disable=verbosity == 0):
                with transaction.atomic():
                    result = services.product_upsert(
                        external_id=spec.external_id,
                        title=spec.title,
                        description=spec.description,
                        brand=spec.brand,
                        category=spec.category,
                        price=spec.price,
                        currency="EUR",
                        attributes=spec.attributes_dict(),
                    )
                    created_products += result.is_created
                    if spec.external_id not in drawing:
                        continue  # already there with its photos
                    for position, content in enumerate(next(drawn)):
                        image = services.image_create(product=result.product, content=content, position=position)
                        new_image_ids += [image.image.pk] if image.needs_indexing else []
            # Also finish what an interrupted earlier run left pending.
            pending = ProductImage.objects.filter(state=ProductImage.State.PENDING).values_list("pk", flat=True)
            known = set(held.added)
            held.added.extend(pk for pk in sorted(pending) if pk not in known)
            run = held_images_index(held, show_progress=verbosity > 0)
        # A store that lost points, or a data folder from before the embedded engine
        # changed: embed again what the index lacks (cheap when nothing is missing).
        repaired = reconcile()
        index_optimize()
        folder = judgments or Path(settings.DATA_DIR) / "demo"
        judgments_file = folder / "judgments.jsonl"
        if not no_judgments and (created_products or not judgments_file.exists()):
            demo_judgments_write(products=specs, folder=folder)
        if created_products or not RelevanceCutoff.objects.filter(embedding_space=get_encoder().space.id).exists():
            cutoffs_calibrate()
        if not TagFacet.objects.exists():
            demo_taxonomy_create()
        if not Synonym.objects.exists():
            Synonym.objects.bulk_create(
                [Synonym(terms=terms, one_way=one_way, note="Demo shop") for terms, one_way in DEMO_SYNONYMS]
            )
        self.stdout.write(
            f"Demo catalog: {created_products} products created, {len(new_image_ids)} images added, "
            f"{run.queued} embedded, {len(run.failures)} failed."
            + (f" {repaired.requeued} images the index lacked were embedded again." if repaired.requeued else "")
            + ("" if no_judgments else f" Judged queries: {judgments_file}")
        )


def _draw(spec) -> list[bytes]:
    return spec.render_images()
