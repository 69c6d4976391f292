from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from tqdm import tqdm

from catalog import services
from catalog.demo import demo_products, demo_taxonomy_create
from catalog.demo_judgments import demo_judgments_write
from catalog.models import ProductImage, TagFacet
from embeddings import sync
from embeddings.commands import images_embed_with_progress, index_claim_for_command
from embeddings.model import get_encoder
from embeddings.models import RelevanceCutoff
from embeddings.relevance import cutoffs_calibrate


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

    def handle(self, *args, products: int, seed: int, judgments: Path | None, verbosity: int, **options):
        index_claim_for_command()
        specs = demo_products(count=products, seed=seed)
        created_products = 0
        new_image_ids = []
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
                    attributes=spec.attributes.as_dict(),
                )
                sync.product_changed(result)
                created_products += result.is_created
                if not result.is_created and result.product.images.count() >= len(spec.image_seeds):
                    continue  # already there: do not draw its photos again
                for position, content in enumerate(spec.render_images()):
                    image = services.image_create(product=result.product, content=content, position=position)
                    new_image_ids += [image.image.pk] if image.needs_indexing else []
        # Also finish what an interrupted earlier run left pending.
        pending = list(ProductImage.objects.filter(state=ProductImage.State.PENDING).values_list("pk", flat=True))
        to_embed = sorted(set(new_image_ids) | set(pending))
        run = images_embed_with_progress(to_embed, show_progress=verbosity > 0)
        folder = judgments or Path(settings.DATA_DIR) / "demo"
        judgments_file = folder / "judgments.jsonl"
        if created_products or not judgments_file.exists():
            demo_judgments_write(products=specs, folder=folder)
        if created_products or not RelevanceCutoff.objects.filter(embedding_space=get_encoder().space.id).exists():
            cutoffs_calibrate()
        if not TagFacet.objects.exists():
            demo_taxonomy_create()
        self.stdout.write(
            f"Demo catalog: {created_products} products created, {len(new_image_ids)} images added, "
            f"{run.queued} embedded, {len(run.failures)} failed. Judged queries: {judgments_file}"
        )
